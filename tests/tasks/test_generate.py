"""`deepix train generate` and `deepix generate`: GANs stepped by the task with two optimizers through
the shared engine, resume to the same weights, the judge's figures, sampling, and bad input."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import deepix
from tests.conftest import few_generate_samples
from deepix.config import make_config
from deepix.tasks.generate import train as generate


@pytest.fixture(autouse=True)
def few_test_samples(monkeypatch):
    monkeypatch.setattr(generate, "EVAL_SAMPLES", 200)


FAST = dict(epochs=2, judge_epochs=2, test_samples=300, batch=32, threads=1, quiet=True, width=0.25)


def test_cgan_trains_through_the_engine_and_is_judged(tmp_path, digits_28):
    r = deepix.train("generate", data=digits_28(), project=str(tmp_path), name="g", **FAST)
    run = r["run"]
    rows = (run / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    for k in ("train_d_loss", "train_g_loss", "train_d_real", "train_d_fake", "val_fid", "val_class_accuracy"):
        assert k in head
    assert len(rows) == 3
    t = r["test"]
    assert t["samples"] == 300 and len(t["coverage"]) == 10 and abs(sum(t["coverage"]) - 1) < 1e-5
    assert 0 <= t["class_accuracy"] <= 1 and np.isfinite(t["fid"]) and t["fid_floor"] < t["fid"]
    assert (run / "classify" / "classifier" / "weights" / "best.safetensors").is_file()  # the judge, kept
    for name in ("samples.png", "progress.gif", "coverage.png", "neighbours.png", "interpolation.png"):
        assert (run / "plots" / name).is_file(), name
    assert len(list((run / "samples").glob("epoch_*.png"))) == 2
    html = (run / "report.html").read_text()
    assert "FID" in html and "data:image/gif" in html


def test_a_resumed_gan_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, digits_28, generate_run):
    data = digits_28()
    # the judge plays no part in the weights compared: the shared run's is lent (--judge), not trained three times
    quick = {**FAST, "judge": str(generate_run), "test_samples": 100}
    with few_generate_samples(100):  # nor do the samples scored
        whole = deepix.train("generate", data=data, project=str(tmp_path), name="whole", **quick)["run"]
        cut = deepix.train("generate", data=data, project=str(tmp_path), name="cut", **{**quick, "epochs": 1})["run"]
        saved = torch.load(cut / "state" / "last.pt", weights_only=True)
        assert set(saved["optimizers"]) == {"g", "d"}  # both optimizers' states travel with the run
        deepix.train("generate", resume=str(cut), data=data, epochs=2, quiet=True)
    a = load_file(str(whole / "weights" / "last.safetensors"))
    b = load_file(str(cut / "weights" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the lent judge was copied into the run, which names where it came from
    judge = json.loads((generate_run / "summary.json").read_text())["classifier"]
    lent = json.loads((whole / "summary.json").read_text())["classifier"]
    assert lent["from"] == str(generate_run) and lent["test_accuracy"] == judge["test_accuracy"]
    assert judge["from"] is None and lent["model"] == "vgg7"
    assert (whole / "classify" / "classifier" / "weights" / "best.safetensors").is_file()
    assert f"from {generate_run} (--judge)" in (whole / "report.html").read_text()


def test_a_judge_must_be_a_classifier_of_the_same_images(digits_run, detect_run, digits_28, tmp_path):
    for judge, says in ((detect_run["run"], "is a detect run"), (digits_run[0], "the same classes at the same size"),
                        (tmp_path, "not a deepix run folder")):
        with pytest.raises(deepix.UserError, match=says):
            deepix.train("generate", data=digits_28(), judge=str(judge), project=str(tmp_path), **FAST)


def test_gan_options_ns_loss_r1_penalty_and_no_spectral_norm_train():
    from deepix.models import Spec, build_model
    cfg = make_config(task="generate", loss="ns", gp=10.0, sn="off")
    model = build_model("cgan", Spec(1, 10, (28, 28), width=0.25, sn=False))
    assert not any("parametrizations" in n for n, _ in model.d.named_parameters())
    task = generate.Generate(cfg, 10, None)
    opts = task.optimizers(cfg, model)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    before = [p.clone() for p in model.g_ema.parameters()]
    import contextlib
    stats = task.train_step(model, x, y, opts, contextlib.nullcontext)
    assert set(stats) == {"d_loss", "g_loss", "d_real", "d_fake"} and all(np.isfinite(list(stats.values())))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.g_ema.parameters()))  # the average moved


def test_diffusion_model_trains_through_the_same_task(ddpm_run):
    # the shared run: ddpm, 1 epoch on digits_28, 300 test samples
    r = {"run": ddpm_run, "test": json.loads((ddpm_run / "summary.json").read_text())["test"]}
    assert "train_loss" in (r["run"] / "metrics.csv").read_text().splitlines()[0]
    assert r["test"]["class_accuracy"] is not None
    assert deepix.load(ddpm_run).model.steps == 5  # the run's --sample-steps, for generate, export and serve
    with pytest.raises(deepix.UserError, match="--sample-steps"):
        deepix.train("generate", model="ddpm", sample_steps=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_28, generate_run):
    """A conditional GAN trained on a folder, and the shared unconditional one (dcgan on digits_28)."""
    base = tmp_path_factory.mktemp("gen")
    import deepix.tasks.generate.train as g
    saved = g.EVAL_SAMPLES
    g.EVAL_SAMPLES = 100
    x, y = digits_28()
    for i, (im, c) in enumerate(zip(x, y)):  # a folder, as a user's data would be: `deepix val` reads it again
        (base / "imgs" / str(c)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(base / "imgs" / str(c) / f"{i}.png")
    data = dict(data=str(base / "imgs"), imgsz=28, project=str(base), **{**FAST, "epochs": 1, "test_samples": 200})
    try:
        cond = deepix.train("generate", name="c", **data)["run"]
    finally:
        g.EVAL_SAMPLES = saved
    return cond, generate_run


def test_generate_writes_a_grid_or_one_file_per_image(trained, tmp_path, cli):
    cond, _ = trained
    r = cli("generate", cond, "-n", "16", "--class", "7", "-o", tmp_path / "g.png")
    assert r.returncode == 0, r.stderr
    im = Image.open(tmp_path / "g.png")
    assert im.size[0] == im.size[1] > 4 * 28
    r = cli("generate", cond, "-n", "5", "-o", tmp_path / "each")
    assert r.returncode == 0 and len(list((tmp_path / "each").glob("*.png"))) == 5
    assert Image.open(next((tmp_path / "each").glob("*.png"))).size == (28, 28)


@pytest.mark.parametrize("args, says", [
    (["-n", "0"], "at least 1"),
    (["--class", "cat"], "not one of this model's classes"),
    (["--class", "12"], "not one of this model's classes"),
])
def test_bad_generate_requests_are_one_line_exit_2(trained, tmp_path, args, says, cli):
    cond, _ = trained
    r = cli("generate", cond, *args, "-o", tmp_path / "x.png")
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_an_unconditional_model_cannot_be_asked_for_a_class(trained, tmp_path, cli):
    _, unc = trained
    r = cli("generate", unc, "--class", "3", "-o", tmp_path / "x.png")
    assert r.returncode == 2 and "unconditional" in r.stderr
    assert json.loads((unc / "summary.json").read_text())["test"]["class_accuracy"] is None


def test_a_folder_of_mixed_sizes_is_resized_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(40):
            side = int(rng.integers(20, 60))
            Image.fromarray(rng.integers(0, 255, (side, side + 3, 3), dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    r = deepix.train("generate", data=str(tmp_path / "imgs"), imgsz=32, project=str(tmp_path), **{**FAST, "epochs": 1})
    info = json.loads((r["run"] / "dataset.json").read_text())
    assert info["size"] == [32, 32] and info["channels"] == 3 and "32x32" in info["resized"]
    assert Image.open(r["run"] / "plots" / "samples.png").mode == "RGB"


def test_a_classifier_is_not_a_generator(tmp_path, cli):
    r = cli("train", "generate", "--model", "vgg7", "--project", tmp_path, "--quiet", "--threads", "1")
    assert r.returncode == 2 and "does not generate" in r.stderr


def test_val_measures_the_run_again_and_predict_points_to_generate(trained, tmp_path, cli):
    cond, _ = trained
    r = cli("val", cond, "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert len(m["coverage"]) == 10 and m["class_accuracy"] is not None
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(img)
    r = cli("predict", cond, img)
    assert r.returncode == 2 and "deepix generate" in r.stderr


def test_the_discriminator_sees_how_alike_a_batch_is():
    from deepix.models.gan import minibatch_std
    same = torch.ones(8, 4, 7, 7)
    varied = torch.randn(8, 4, 7, 7)
    assert minibatch_std(same).abs().max() < 1e-3
    assert minibatch_std(varied).min() > 0.5 and minibatch_std(varied).shape == (8, 1, 7, 7)
    assert minibatch_std(torch.randn(5, 4, 7, 7)).shape == (5, 1, 7, 7)  # batches that do not split into 4
