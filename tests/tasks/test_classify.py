"""End to end on the built-in 8x8 digits: what a run leaves, repeatability, resume, stops."""
import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import deepix
from deepix.errors import UserError


def weights(run, which="last"):
    return load_file(str(run / "weights" / f"{which}.safetensors"))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def finished(digits_run):
    return {"run": digits_run[0]}  # the shared run of `fast`'s settings


def test_run_folder_holds_everything(finished):
    run = finished["run"]
    for name in ("config.yaml", "metrics.csv", "summary.json", "dataset.json", "report.html",
                 "weights/best.safetensors", "weights/last.safetensors", "state/last.pt",
                 "plots/loss.png", "plots/confusion.png", "plots/misclassified.png", "plots/samples.png"):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"} <= set(rows[0])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.5 and len(summary["test"]["confusion"]) == 10
    split = summary["data"]["info"]
    assert split["seed"] == 0 and sum(split["sizes"].values()) == 1797
    ids = json.loads((run / "split.json").read_text())
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(1797))


def test_runs_are_never_overwritten(finished, fast):
    again = deepix.train(project=str(finished["run"].parents[1]), **{**fast, "epochs": 1})
    assert again["run"] != finished["run"] and (finished["run"] / "metrics.csv").is_file()


def test_config_yaml_repeats_the_run(finished, tmp_path):
    again = deepix.train(config=str(finished["run"] / "config.yaml"), project=str(tmp_path))
    assert same(weights(finished["run"]), weights(again["run"]))


def test_another_seed_gives_another_run(finished, tmp_path, fast):
    other = deepix.train(project=str(tmp_path), seed=1, **fast)
    assert not same(weights(finished["run"]), weights(other["run"]))


def test_resume_extends_a_finished_run(finished, copy_run):
    first = {"run": copy_run(finished["run"])}  # a finished run of `fast`'s settings, this test's own
    more = deepix.train(resume=str(first["run"]), epochs=3, quiet=True)
    rows = list(csv.DictReader((first["run"] / "metrics.csv").open()))
    assert more["run"] == first["run"] and [r["epoch"] for r in rows] == ["1", "2", "3"]
    with pytest.raises(UserError, match="extend"):
        deepix.train(resume=str(first["run"]), quiet=True)


def test_nan_loss_stops_with_the_last_good_weights(tmp_path, fast):
    good = {}

    def poison_after_the_first_epoch(row, model):  # epoch 1 ends well; from epoch 2 every output is NaN
        good.update({k: v.clone() for k, v in model.state_dict().items()})
        model.register_forward_hook(lambda m, i, out: out * float("nan"))

    with pytest.raises(UserError, match="loss became nan at epoch 2, step 1.*the last good weights are in"):
        deepix.train(project=str(tmp_path), callbacks=(poison_after_the_first_epoch,), **{**fast, "epochs": 3})
    run = next((tmp_path / "classify").iterdir())
    assert (run / "config.yaml").is_file()
    kept = load_file(str(run / "weights" / "last.safetensors"))
    assert kept.keys() == good.keys() and all(torch.equal(kept[k], good[k]) for k in kept)
    assert all(torch.isfinite(v.float()).all() for v in kept.values())
    assert len((run / "metrics.csv").read_text().splitlines()) == 2  # the header and epoch 1
    # a run that is NaN from its first step says that no epoch finished, and leaves no weights
    with pytest.raises(UserError, match="no epoch had finished"):
        deepix.train(project=str(tmp_path), **{**fast, "epochs": 3, "lr": 1e6, "optimizer": "sgd", "momentum": 0.0})


def test_early_stopping(tmp_path, fast):
    r = deepix.train(project=str(tmp_path), **{**fast, "epochs": 30, "patience": 1, "monitor": "val_loss",
                                                  "lr": 0.05, "schedule": "constant"})
    assert r["train"]["stopped_early"] and r["train"]["epochs_run"] < 30


@pytest.mark.parametrize("opt,sched,loss", [("sgd", "step", "focal"), ("rmsprop", "cosine", "mse"),
                                            ("adam", "constant", "cross-entropy")])
def test_optimizers_schedules_losses_learn(tmp_path, opt, sched, loss, fast):
    r = deepix.train(project=str(tmp_path), **{**fast, "epochs": 3, "optimizer": opt, "schedule": sched,
                                                  "loss": loss, "lr": {"sgd": 0.05, "rmsprop": 0.001}.get(opt, 0.01),
                                                  "warmup_epochs": 0.5, "grad_clip": 1.0, "label_smoothing": 0.1,
                                                  "nesterov": True})
    assert r["test"]["accuracy"] > 0.3


def test_numpy_arrays_and_predict(tmp_path, tiny_arrays, fast):
    x, y = tiny_arrays
    r = deepix.train(project=str(tmp_path), **{**fast, "data": (x, y), "epochs": 8, "batch": 16,
                                                  "augment": "none", "lr": 0.01})
    p = deepix.load(r["run"])
    out = p.predict(x[:5])
    assert len(out) == 5 and abs(sum(out[0]["probabilities"]) - 1) < 1e-4
    assert [o["class"] for o in out] == [str(c) for c in y[:5]]
    one = p.predict(x[0])
    assert one[0]["class"] == out[0]["class"]


def test_own_module_trains_and_loads(tmp_path, fast):
    from torch import nn

    def net():
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                             nn.Linear(32, 10))
    r = deepix.train(project=str(tmp_path), **{**fast, "model": net(), "epochs": 3, "lr": 0.01})
    assert r["test"]["accuracy"] > 0.3
    with pytest.raises(UserError, match="your own model"):
        deepix.load(r["run"])
    x = np.random.default_rng(0).integers(0, 255, (3, 8, 8)).astype(np.uint8)
    assert len(deepix.load(r["run"], model=net()).predict(x)) == 3
    with pytest.raises(UserError, match="outputs of shape"):
        deepix.train(project=str(tmp_path), **{**fast, "model": nn.Sequential(nn.Flatten(), nn.Linear(64, 3))})


def test_time_limit_fits_the_epochs(tmp_path, fast):
    import yaml
    r = deepix.train(project=str(tmp_path), **{**fast, "epochs": 500, "time_limit": 0.05})
    assert 1 <= r["train"]["epochs_run"] < 500
    saved = yaml.safe_load((r["run"] / "config.yaml").read_text())
    assert saved["epochs"] == r["train"]["epochs_run"]
    rows = list(csv.DictReader((r["run"] / "metrics.csv").open()))
    assert sum(float(x["seconds"]) for x in rows[:-1]) < 0.05 * 60
    assert float(rows[-1]["lr"]) < 0.5 * fast.get("lr", 0.003)  # the schedule followed the shorter plan


def test_a_timed_run_resumed_with_more_time_goes_on(tmp_path, fast):
    first = deepix.train(project=str(tmp_path), **{**fast, "epochs": 500, "time_limit": 0.02})
    done = first["train"]["epochs_run"]
    spent = sum(float(r["seconds"]) for r in csv.DictReader((first["run"] / "metrics.csv").open()))
    more = deepix.train(resume=str(first["run"]), time_limit=(spent * 3 + 1) / 60, quiet=True)
    assert more["train"]["epochs_run"] > done
    with pytest.raises(UserError, match="already has"):  # no more time given: nothing to do, said so
        deepix.train(resume=str(first["run"]), quiet=True)
