"""Sweeps on the built-in 8x8 digits: trial run folders, the table, the report, the advice, Optuna, presets."""
import csv
import importlib
import json

import pytest
import yaml

import deepix
from deepix.cli import main
from deepix.errors import UserError
from deepix.report.sweep import analyse
from deepix.sweep import PRESETS, plan

sweep_module = importlib.import_module("deepix.sweep")  # `deepix.sweep` itself is the function
TINY = dict(data="digits", model="seed-cnn", epochs=1, batch=64)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    return deepix.sweep(grid=["kernel=3,5", "act=relu,tanh"], project=str(root), name="g", parallel=2, quiet=True,
                        **TINY)


def test_a_2x2_grid_makes_four_runs_a_sorted_table_and_a_report(grid):
    folder = grid["folder"]
    rows = list(csv.DictReader(open(f"{folder}/sweep.csv")))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    vals = [float(r["val_accuracy"]) for r in rows]
    assert vals == sorted(vals, reverse=True)
    assert {(r["kernel_size"], r["activation"]) for r in rows} == {("3", "relu"), ("3", "tanh"), ("5", "relu"),
                                                                   ("5", "tanh")}
    for r in rows:  # each trial is a normal run folder holding its own setting
        cfg = yaml.safe_load(open(f"{r['run']}/config.yaml"))
        assert (str(cfg["kernel_size"]), cfg["activation"], cfg["epochs"]) == (r["kernel_size"], r["activation"], 1)
        assert r["run"].startswith(f"{folder}/classify/trial") and float(r["test_accuracy"]) > 0.3
    report = open(f"{folder}/report.html").read()
    assert report.count("data:image/png;base64,") == 2 and "src=\"http" not in report
    for name in ("kernel_size.png", "activation.png"):
        assert open(f"{folder}/plots/{name}", "rb").read(4) == b"\x89PNG"
    saved = json.loads(open(f"{folder}/sweep.json").read())
    assert saved["analysis"]["best"]["command"].startswith("deepix train classify --data digits")


def test_the_advice_names_each_setting_and_a_number(grid):
    lines = grid["analysis"]["lines"]
    kernel = next(x for x in lines if x.startswith("kernel_size 5 vs 3:"))
    assert "points val accuracy" in kernel and any(c.isdigit() for c in kernel.split(":")[1])
    assert any(x.startswith("activation tanh vs relu:") for x in lines)
    assert grid["analysis"]["noise"]["dof"] == 1  # 4 trials, 3 effects fitted: one degree of freedom left
    best = grid["analysis"]["best"]
    assert f"--kernel-size {best['settings']['kernel_size']}" in best["command"]


def test_the_verdict_weighs_the_gain_against_the_seed_noise_and_the_time():
    p = plan(grid=["kernel=3,5,7", "act=relu"], seeds=2, **TINY)
    rows = []
    for i, (k, val, sec) in enumerate([(3, .90, 10), (3, .91, 10), (5, .95, 11), (5, .96, 11), (7, .91, 30),
                                       (7, .92, 30)]):
        rows.append({"trial": i, "status": "done", "labels": {"kernel_size": k, "activation": "relu"},
                     "settings": {"kernel_size": k}, "seed": i % 2, "val": val, "test": val, "seconds": sec})
    a = analyse(p, rows)
    assert a["noise"]["source"].startswith("spread between seeds") and a["noise"]["sd_shown"] == pytest.approx(0.71, abs=.01)
    five, seven = a["factors"]["kernel_size"]["comparisons"]
    assert five["gain"] == pytest.approx(5.0) and five["verdict"] == "worth it"
    assert seven["verdict"] == "within the noise: not worth it here" and seven["time_ratio"] == pytest.approx(3.0)
    assert a["factors"]["kernel_size"]["advice"] == "kernel_size: use 5 instead of 3"
    assert a["best"]["labels"]["kernel_size"] == "5"


@pytest.mark.parametrize("grid, message", [
    (["colour=red,blue"], "unknown sweep key 'colour'"),
    (["kernel="], "has an empty value"),
    (["kernel"], "KEY=V1,V2"),
    (["seed=1,2"], "--seeds K"),
    (["lr=1e-4:1e-2"], "is a range"),
    (["kernel=three"], "is not a int"),
])
def test_bad_sweep_arguments_are_one_line_user_errors(grid, message, tmp_path):
    with pytest.raises(UserError, match=message) as e:
        deepix.sweep(grid=grid, project=str(tmp_path), **TINY)
    assert "\n" not in str(e.value) and not (tmp_path / "sweep").exists()
    with pytest.raises(UserError, match="unknown preset"):
        plan(preset="faq-everything")


def test_presets_resolve_into_their_trials_and_user_flags_override_the_base():
    opt = plan(preset="faq-optimizer")
    assert opt.seeds == [0, 1] and opt.base["data"] == "mnist-5k" and opt.question.startswith("Which optimizer")
    settings = [t["settings"] for t in opt.trials]
    assert settings[0] == {"optimizer": "adamw", "lr": 0.003}  # deepix's default first: the baseline
    assert {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0} in settings and len(settings) == 5
    assert opt.factors["optimizer"]["default"] == "adamw lr 0.003"
    over = plan(preset="faq-overfitting", epochs=2, seeds=1)
    assert over.base["labels_per_class"] == 30 and over.base["epochs"] == 2 and over.seeds == [0]
    assert {"augment": "strong"} in [t["settings"] for t in over.trials] and over.runs == 7
    assert [t["settings"]["kernel_size"] for t in plan(preset="faq-kernel").trials] == [3, 5, 7]
    assert all(p.question.endswith("?") for p in PRESETS.values())


def test_random_search_makes_the_trials_asked_for(tmp_path):
    s = deepix.sweep(grid=["lr=1e-3:1e-2", "act=relu,tanh"], search="random", trials=3, project=str(tmp_path),
                     parallel=2, quiet=True, **{**TINY, "epochs": 2})
    assert len(s["trials"]) == 3 and {r["status"] for r in s["trials"]} <= {"done", "pruned"}
    assert all(1e-3 <= r["settings"]["lr"] <= 1e-2 for r in s["trials"])
    assert len(list((tmp_path / "sweep" / "exp1" / "classify").glob("trial*"))) == 3
    assert (tmp_path / "sweep" / "exp1" / "optuna.journal").is_file()


def test_a_pruned_trial_is_recorded_with_its_partial_run(tmp_path, monkeypatch):
    import optuna
    # a pruner that stops every trial after its first epoch
    monkeypatch.setattr(sweep_module, "_pruner", lambda: optuna.pruners.ThresholdPruner(lower=2.0))
    study = optuna.create_study(study_name="sweep", storage=sweep_module._journal(tmp_path / "j"),
                                direction="maximize")
    trial = study.ask()
    from deepix.tasks import get
    row = sweep_module._run_trial({"task": "classify", "task_object": get("classify"), "folder": str(tmp_path),
                                   "monitor": "val_accuracy", "higher": True, "index": 0, "settings": {**TINY, "epochs": 3, "threads": 1},
                                   "study": str(tmp_path / "j"), "trial_id": trial._trial_id})
    assert row["status"] == "pruned" and row["epochs"] == 1 and 0 < row["val"] <= 1
    assert (tmp_path / "classify" / "trial0" / "metrics.csv").is_file()


def test_the_cli_sweeps_on_past_a_failing_trial(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--grid", "kernel=3,4", "--data", "digits", "--model", "seed-cnn", "--epochs", "1",
              "--project", str(tmp_path), "--parallel", "1", "--quiet"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "trial1 failed: --kernel-size must be an odd number" in out and "report:" in out
    rows = {r["kernel_size"]: r for r in csv.DictReader(open(tmp_path / "sweep" / "exp1" / "sweep.csv"))}
    assert rows["3"]["status"] == "done" and rows["4"]["status"] == "failed" and "odd" in rows["4"]["error"]
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--grid", "colour=red", "--project", str(tmp_path)])
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1
