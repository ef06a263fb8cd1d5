"""Run folders written by an older deepix (tests/fixtures/runs, see its README) still load and predict, validate
to the figures they recorded, resume for one more epoch and export, through the public API and CLI only.
Each test works on a copy: the fixtures are never changed."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepix
from deepix.export import export, read_metadata

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
TASKS = ("classify", "restore", "detect", "generate", "pretrain")


@pytest.fixture(scope="module", autouse=True)
def at_the_repository_root():
    # the restore and detect runs name their data (tests/fixtures/data/...) relative to the repository root
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One copy of each fixture run for the tests that only read it (load, predict, val, export)."""
    root = tmp_path_factory.mktemp("old")
    return {t: Path(shutil.copytree(FIXTURES / "runs" / t / "tiny", root / t / "tiny")) for t in TASKS}


def summary(task: str) -> dict:
    return json.loads((FIXTURES / "runs" / task / "tiny" / "summary.json").read_text())


def meta(task: str) -> dict:
    return json.loads((FIXTURES / "runs" / task / "tiny" / "dataset.json").read_text())


def digits(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n images (uint8, 8x8) and labels of the classify run's split, by the indices split.json recorded."""
    from sklearn.datasets import load_digits
    d = load_digits()
    ids = json.loads((FIXTURES / "runs" / "classify" / "tiny" / "split.json").read_text())[split][:n]
    return np.round(d.images[ids] * (255 / 16)).astype(np.uint8), d.target[ids]


def metric_rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_the_fixture_runs_hold_no_absolute_paths():
    for path in (FIXTURES / "runs").rglob("*"):
        if path.suffix in (".yaml", ".json", ".csv"):
            text = path.read_text()
            assert str(ROOT) not in text and "/tmp/" not in text and ": /" not in text and "\"/" not in text, path


# -- load and predict

def test_a_classifier_loads_and_predicts(runs, tmp_path, cli):
    p = deepix.load(runs["classify"])
    assert p.classes == meta("classify")["classes"] == [str(i) for i in range(10)]
    x, y = digits("test", 60)
    out = p.predict(x)
    assert len(out) == 60
    for r in out:
        assert len(r["probabilities"]) == 10 and sum(r["probabilities"]) == pytest.approx(1, abs=1e-5)
        assert r["class"] in p.classes and r["probability"] == max(r["probabilities"])
    right = np.mean([r["class"] == str(t) for r, t in zip(out, y)])
    assert right > 0.6  # the run scored 85% on its test split: these are trained weights, read right
    img = tmp_path / "digit.png"
    Image.fromarray(x[0]).save(img)
    r = cli("predict", runs["classify"], img, "--json", check=True)
    assert json.loads(r.stdout)["class"] == out[0]["class"]


def test_a_restorer_loads_and_removes_noise(runs):
    r = deepix.load(runs["restore"])
    clean = np.asarray(Image.open(FIXTURES / "data" / "photos" / "test" / "0.png")).astype(np.float32) / 255
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    out = r.restore(noisy)
    assert out.shape == (1, *clean.shape) and 0 <= out.min() and out.max() <= 1
    psnr = lambda a: -10 * np.log10(np.mean((a - clean) ** 2))  # noqa: E731
    assert psnr(out[0].numpy()) > psnr(noisy) + 0.5  # it learnt to denoise (1.5 dB on its test image)


def test_a_detector_loads_and_finds_boxes(runs, tmp_path, cli):
    d = deepix.load(runs["detect"])
    assert d.classes == meta("detect")["classes"]
    images = sorted((FIXTURES / "data" / "shapes" / "images" / "test").glob("*.png"))
    found = d.detect(images, conf=0.05)
    assert len(found) == len(images) and sum(len(f["boxes"]) for f in found) > 0
    for f in found:
        assert f["boxes"].shape == (len(f["scores"]), 4) and len(f["labels"]) == len(f["scores"])
        assert ((f["scores"] >= 0.05) & (f["scores"] <= 1)).all() and (f["labels"] < len(d.classes)).all()
        assert (f["boxes"] >= -1e-3).all() and (f["boxes"] <= 64 + 1e-3).all()  # in the 64x64 image's pixels
    cli("predict", runs["detect"], *images[:2], "-o", tmp_path / "out", "--conf", "0.05", check=True)
    boxes = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert {b["category"] for b in boxes} <= set(d.classes)


def test_a_generator_loads_and_makes_images_of_each_class(runs):
    s = deepix.load(runs["generate"])
    assert s.classes == meta("generate")["classes"]
    images = s.generate(20)
    assert images.shape == (20, 1, 8, 8) and images.min() >= 0 and images.max() <= 1 and images.std() > 0.01
    assert torch.equal(s.generate(4, seed=3), s.generate(4, seed=3))
    assert s.generate(3, "7").shape == (3, 1, 8, 8)
    with pytest.raises(deepix.UserError, match="not one of"):
        s.generate(1, "cat")


def test_an_encoder_loads_and_gives_features(runs):
    e = deepix.load(runs["pretrain"])
    x, y = digits("test", 40)
    f = e.features(x)  # 8x8 digits, resized to the 16x16 the encoder was trained on
    dim = summary("pretrain")["model"]["features"]
    assert f.shape == (40, dim) and torch.isfinite(f).all()
    assert dim == json.loads((runs["pretrain"] / "encoder.json").read_text())["features"]
    # trained features: a digit's nearest neighbour among the others is mostly of its own class
    g = torch.nn.functional.normalize(f, dim=1)
    sim = g @ g.T - 2 * torch.eye(len(g))
    assert np.mean(y[sim.argmax(1).numpy()] == y) > 0.5


# -- validate: the same weights on the same data give the figures the run recorded

def test_val_of_a_classifier_repeats_its_test_figures(runs):
    m, was = deepix.val(runs["classify"]), summary("classify")["test"]
    # another CPU rounds bf16 otherwise: 3 of 360 answers changed on one host (2026-12-06)
    assert m["accuracy"] == pytest.approx(was["accuracy"], abs=0.015)  # at most 5 of 360 images
    assert m["loss"] == pytest.approx(was["loss"], rel=1e-3)
    assert m["top5"] == pytest.approx(was["top5"], abs=0.006)


def test_val_of_a_restorer_repeats_its_test_figures(runs):
    m, was = deepix.val(runs["restore"]), summary("restore")["test"]
    assert [r["image"] for r in m["per_image"]] == [r["image"] for r in was["per_image"]] == ["test/0.png"]
    for method in ("deepix", "noisy input"):
        assert m["methods"][method]["psnr"] == pytest.approx(was["methods"][method]["psnr"], abs=0.01)
        assert m["methods"][method]["ssim"] == pytest.approx(was["methods"][method]["ssim"], abs=1e-3)
    assert m["methods"]["deepix"]["psnr"] > m["methods"]["noisy input"]["psnr"] + 0.5


def test_val_of_a_detector_repeats_its_test_figures(runs):
    m, was = deepix.val(runs["detect"]), summary("detect")["test"]
    assert was["map50"] > 0.02  # something to repeat: the run found shapes
    for key in ("map", "map50", "map75", "mar_100"):
        assert m[key] == pytest.approx(was[key], abs=0.005), key
    assert m["confusion"] == was["confusion"]


def test_val_of_a_generator_repeats_its_test_figures(runs):
    m, was = deepix.val(runs["generate"]), summary("generate")["test"]
    assert m["samples"] == was["samples"] and m["real_images"] == was["real_images"]
    assert m["fid"] == pytest.approx(was["fid"], rel=1e-3)
    assert m["fid_floor"] == pytest.approx(was["fid_floor"], rel=1e-2, abs=1e-4)
    for key in ("kid", "precision", "recall", "class_accuracy"):
        assert m[key] == pytest.approx(was[key], rel=1e-2, abs=2e-3), key


def test_val_of_an_encoder_repeats_its_few_label_figures(runs):
    m, was = deepix.val(runs["pretrain"]), summary("pretrain")["test"]
    assert m["images"] == was["images"] and set(m["few_labels"]) == set(was["few_labels"])
    for k, row in was["few_labels"].items():
        for key, v in row.items():
            # at most 5 of 360 images (another CPU's bf16 rounding moved 4 on one host)
            assert m["few_labels"][k][key] == pytest.approx(v, abs=0.015), (k, key)


# -- resume: one more epoch

@pytest.mark.parametrize("task", TASKS)
def test_a_run_resumes_for_one_more_epoch(task, tmp_path):
    run = Path(shutil.copytree(FIXTURES / "runs" / task / "tiny", tmp_path / task / "tiny"))
    before = metric_rows(run)
    done = summary(task)["train"]["epochs_run"]
    assert len(before) == done
    r = deepix.train(task, resume=str(run), epochs=done + 1, quiet=True, threads=1)
    assert r["train"]["epochs_run"] == done + 1
    after = metric_rows(run)
    assert len(after) == done + 1 and int(after[-1]["epoch"]) == done + 1
    assert after[:done] == before  # the history stays as it was
    assert deepix.load(run) is not None  # and the extended run loads


# -- export

@pytest.mark.parametrize("task", TASKS)
def test_a_run_exports_to_onnx_and_matches_deepix(runs, task, tmp_path):
    out = tmp_path / f"{task}.onnx"
    record = export(runs[task], "onnx", out)
    assert record["parity"]["ok"], record["parity"]
    info = read_metadata(out)
    assert info["deepix_task"] == task and info["model"] == summary(task)["model"]["name"]
    if "classes" in info:
        assert info["classes"] == meta(task)["classes"]
    if task == "classify":
        assert record["parity"]["top1_agreement"] == 1.0
