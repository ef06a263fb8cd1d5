"""deepix advise: the fit verdict with its numbers and ranked flags, the CLI, and the learning curve."""
import json

import pytest
import yaml

from deepix import cli
from deepix.advise import advise, more_data, parse_fractions
from deepix.errors import UserError
from deepix.report.fit import fit_verdict

CONFIG = {"task": "classify", "data": "pets", "model": "seed-cnn", "epochs": 12, "lr": 0.003, "augment": "auto",
          "weight_decay": 5e-4, "width": 1.0, "schedule": "onecycle"}


def rows(train_loss, val_loss, train_acc, val_acc):
    return [{"epoch": i + 1, "train_loss": tl, "train_accuracy": ta, "val_loss": vl, "val_accuracy": va,
             "lr": 0.003, "seconds": 1.0}
            for i, (tl, vl, ta, va) in enumerate(zip(train_loss, val_loss, train_acc, val_acc))]


def overfit(peak=4):
    """Val loss bottoms at epoch `peak` of 12 and climbs to twice its minimum; train accuracy reaches 99.9%."""
    vl = [0.9 - 0.1 * i for i in range(peak)] + [0.6 + 0.05 * i for i in range(1, 13 - peak)]
    vl[-1] = 2 * min(vl)
    return rows([1.0 * 0.7 ** i for i in range(12)], vl, [min(0.5 + 0.05 * i, 0.999) for i in range(12)],
                [0.6, 0.7, 0.75, 0.78] + [0.77] * 8)


def test_overfitting_verdict_gives_the_gap_and_stops_early_first():
    v = fit_verdict(overfit(), {"data": {"kind": "natural"}}, CONFIG)
    assert v["verdict"] == "overfitting"
    n = v["numbers"]
    assert n["gap_last"] == pytest.approx(22.9, abs=0.05) and n["best_epoch"] == 4 and n["epochs_since_best"] == 8
    assert n["val_loss_rise_pct"] == pytest.approx(100, abs=0.5)
    assert "22.9 points" in v["headline"] and "100% above its minimum" in v["headline"]
    flags = [r["flag"] for r in v["remedies"]]
    # val loss peaked in the first half: a run that ends (and anneals) at the best epoch comes first
    assert flags[0] == "--epochs 4" and "epoch 4 of 12" in v["first_because"]
    assert "--weight-decay 0.005" in flags and "--width 0.5" in flags and "--augment strong" in flags
    assert "--dropout 0.7" in flags  # seed-cnn's own default dropout is 0.5


def test_overfitting_late_peak_puts_augmentation_first():
    v = fit_verdict(overfit(peak=9), {"data": {"kind": "digits"}}, CONFIG)
    assert v["verdict"] == "overfitting"
    assert v["remedies"][0]["flag"] == "--augment strong --hflip off"  # no flips for digits
    strong = fit_verdict(overfit(peak=9), {}, {**CONFIG, "augment": "strong", "weight_decay": 1e-4})
    assert strong["remedies"][0]["flag"] == "--weight-decay 0.001"
    assert "already strong" in strong["first_because"]


def test_underfitting_verdicts():
    flat = rows([1.09, 1.08, 1.08, 1.07, 1.07], [1.09, 1.09, 1.08, 1.08, 1.08],
                [0.36, 0.38, 0.39, 0.40, 0.40], [0.35, 0.37, 0.38, 0.39, 0.39])
    v = fit_verdict(flat, {}, {**CONFIG, "width": 0.5})
    assert v["verdict"] == "underfitting" and "60.0 points short of 100%" in v["headline"]
    assert v["remedies"][0]["flag"] == "--width 1"  # a flat curve: capacity before epochs
    steep = rows([2.0, 1.5, 1.0, 0.6], [1.8, 1.4, 1.0, 0.7], [0.5, 0.7, 0.8, 0.88], [0.55, 0.7, 0.8, 0.86])
    v = fit_verdict(steep, {}, CONFIG)
    assert v["verdict"] == "underfitting" and v["remedies"][0]["flag"] == "--epochs 8"
    assert "29% of its whole fall" in v["first_because"]


def test_good_fit_verdict():
    good = rows([0.9, 0.4, 0.25, 0.18, 0.14, 0.12, 0.11, 0.105],
                [0.7, 0.35, 0.24, 0.19, 0.16, 0.15, 0.145, 0.144],
                [0.7, 0.87, 0.92, 0.94, 0.955, 0.96, 0.965, 0.966],
                [0.76, 0.88, 0.92, 0.935, 0.945, 0.95, 0.952, 0.953])
    v = fit_verdict(good, {}, CONFIG)
    assert v["verdict"] == "good fit" and "gap 1.3 points" in v["headline"]
    assert v["remedies"][0]["flag"] == "--width 2"


def test_restore_verdict_reads_the_losses_alone():
    losses = [(0.05, 0.047), (0.041, 0.043), (0.035, 0.045), (0.03, 0.05), (0.028, 0.055)]
    v = fit_verdict([{"epoch": i + 1, "train_loss": t, "val_loss": vl, "val_psnr": 24.0}
                     for i, (t, vl) in enumerate(losses)], {"task": "restore"}, {"task": "restore"})
    assert v["verdict"] == "overfitting" and "val loss 28% above its minimum at epoch 2" in v["headline"]
    flags = [r["flag"] for r in v["remedies"]]
    assert flags[0] == "--epochs 2" and "--weight-decay 0.0005" in flags  # restore's default weight decay is 0
    assert not any("learning-curve" in f or "dropout" in f for f in flags)


def test_more_data_answer():
    climbing = [{"fraction": f, "images": int(1000 * f), "accuracy": a} for f, a in
                ((0.25, 0.80), (0.5, 0.86), (1.0, 0.90))]
    a = more_data(climbing, test_images=10_000)
    assert a["trend"] == "climbs" and a["rise_last_doubling"] == pytest.approx(4.0)
    assert "rose 4.0 points" in a["answer"] and "more data should help" in a["answer"] and a["gain_from_doubling"] > 2
    flat = [{"fraction": f, "images": int(1000 * f), "accuracy": a} for f, a in ((0.5, 0.95), (1.0, 0.951))]
    b = more_data(flat, test_images=500)
    assert b["trend"] == "flat" and "more data will not help much" in b["answer"] and "within the noise" in b["answer"]
    assert parse_fractions("25,50,100") == (0.25, 0.5, 1.0)
    with pytest.raises(UserError, match="at least two"):
        parse_fractions("0.5")


@pytest.fixture(scope="module")
def tiny_run(digits_run, copy_run):
    return copy_run(digits_run[0])  # seed-cnn, 2 epochs on digits; advise writes into the run: a copy


def test_cli_advise_on_a_real_run(tiny_run, capsys):
    assert cli.run(["advise", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    verdict = json.loads((tiny_run / "advise.json").read_text())["verdict"]["verdict"]
    assert f"{tiny_run}: {verdict}" in out and "what to try, in order:" in out and "1. " in out
    assert cli.run(["advise", str(tiny_run), "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert a["verdict"]["verdict"] in ("overfitting", "underfitting", "good fit")
    assert a["verdict"]["remedies"][0]["flag"].startswith("--")
    with pytest.raises(SystemExit) as bad:
        cli.main(["advise", str(tiny_run / "nope")])
    err = capsys.readouterr().err
    assert bad.value.code == 2 and "not a deepix run folder" in err and len(err.strip().splitlines()) == 1


def test_learning_curve(tiny_run):
    a = advise(tiny_run, learning_curve=True, fractions=(0.5, 1.0))
    curve = a["learning_curve"]
    half = tiny_run / "advise" / "classify" / "fraction-50"
    assert (half / "summary.json").is_file()
    cfg = yaml.safe_load((half / "config.yaml").read_text())
    # half the images, repeated to fill each epoch: the same epochs, as many steps as the 2-epoch run
    assert cfg["label_fraction"] == 0.5 and cfg["epochs"] == 2 and cfg["seed"] == 0 and cfg["model"] == "seed-cnn"
    assert [p["fraction"] for p in curve["points"]] == [0.5, 1.0]
    assert curve["points"][0]["images"] * 2 == pytest.approx(curve["points"][1]["images"], abs=10)
    assert curve["trend"] in ("climbs", "slow", "flat") and "from 50% to 100% of the data" in curve["answer"]
    assert (tiny_run / "plots" / "learning_curve.png").stat().st_size > 1000
    assert "Would more data help" in (tiny_run / "report.html").read_text()
    # a verdict alone keeps the curve, and a second curve reuses the finished fraction run
    assert "learning_curve" in advise(tiny_run)
    advise(tiny_run, learning_curve=True, fractions=(0.5, 1.0))
    assert sorted(p.name for p in (tiny_run / "advise" / "classify").iterdir()) == ["fraction-50"]


def test_a_run_without_accuracy_curves(tmp_path):
    run = tmp_path / "detect" / "exp"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": "detect", "data": "shapes", "model": "fcos-n",
                                                     "epochs": 4, "monitor": "val_map"}))
    (run / "metrics.csv").write_text("epoch,train_loss,val_map,val_map50,lr,seconds\n1,2.0,0.10,0.2,0.003,1\n"
                                     "2,1.5,0.20,0.35,0.003,1\n3,1.3,0.28,0.45,0.002,1\n4,1.2,0.33,0.5,0.001,1\n")
    (run / "summary.json").write_text(json.dumps({"task": "detect", "test": {"map": 0.3, "map50": 0.5}}))
    a = advise(run)
    assert a["verdict"]["verdict"] == "underfitting" and "val_map still improved" in a["verdict"]["headline"]
    assert a["verdict"]["remedies"][0]["flag"] == "--epochs 8" and (run / "report.html").is_file()
    with pytest.raises(UserError, match="learning curves are for classify runs"):
        advise(run, learning_curve=True)
