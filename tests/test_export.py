"""`deepix export`: ONNX and TorchScript files of classify, restore, detect and GAN runs, their metadata, the parity
check against deepix's own outputs, predicting with an exported file, and bad requests."""
import dataclasses
import json

import numpy as np
import pytest
import skimage.data
import torch

import deepix
from PIL import Image

from deepix.export import read_metadata, run_file


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory, cli):
    """`exported(task, fmt)`: the file `deepix export` wrote for the shared run, and the command's result; each
    exported once for this file's tests, which only read it (the exporter takes seconds per file)."""
    made = {}

    def get(task: str, fmt: str = "onnx"):
        if (task, fmt) not in made:
            out = tmp_path_factory.mktemp("exported") / f"m.{fmt}"
            made[(task, fmt)] = out, cli("export", runs[task], "--format", fmt, "-o", out, check=True)
        return made[(task, fmt)]
    return get


@pytest.mark.parametrize("task", ["classify", "restore", "detect", "generate"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_writes_a_file_that_matches_deepix(exported, task, fmt):
    out, r = exported(task, fmt)
    assert "ok" in r.stdout
    record = json.loads(out.with_name(f"m.{fmt}.json").read_text())
    assert record["parity"]["ok"] and record["parity"]["max_abs_diff"] < 1e-3
    meta = read_metadata(out)
    assert meta["deepix_task"] == task and "input" in meta
    if task == "classify":
        assert meta["classes"] == [str(i) for i in range(10)] and record["parity"]["top1_agreement"] == 1.0
        # any batch size: the batch axis is dynamic
        assert run_file(out, {"images": torch.rand(3, 1, 28, 28)}).shape == (3, 10)
    if task == "restore" and fmt == "onnx":
        # any image size: height and width are dynamic
        assert run_file(out, {"image": torch.rand(2, 1, 40, 56)}).shape == (2, 1, 40, 56)


def test_the_file_puts_each_relu_before_its_pool(exported):
    # trained pool-then-ReLU (cheaper in torch), written ReLU-then-pool: the same function, which onnxruntime fuses
    # into the convolution, and an int8 file pools in int8 (the parity check above shows the answers are the same)
    import onnx
    out, _ = exported("classify")
    nodes = onnx.load(str(out)).graph.node
    made_by = {o: n for n in nodes for o in n.output}
    pools = [n for n in nodes if n.op_type == "MaxPool"]
    assert pools and all(made_by[p.input[0]].op_type == "Relu" for p in pools)
    assert not any(made_by.get(n.input[0]) in pools for n in nodes if n.op_type == "Relu")


def test_predict_takes_an_exported_classifier_and_gives_deepixs_answer(runs, exported, tmp_path, cli):
    run = runs["classify"]
    out, _ = exported("classify")
    img = tmp_path / "digit.png"
    Image.fromarray(np.asarray(torch.rand(28, 28).mul(255).byte())).save(img)
    a = json.loads(cli("predict", run, img, "--json", check=True).stdout)
    b = json.loads(cli("predict", out, img, "--json", check=True).stdout)
    assert a["class"] == b["class"] and abs(a["probability"] - b["probability"]) < 1e-4


def test_an_exported_detector_finds_the_boxes_deepix_finds(runs, detect_run, exported, tmp_path, cli):
    from deepix.tasks.detect.images import pixels
    out, _ = exported("detect")
    ds = detect_run["data"]  # the run's own scenes
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels(ds.splits["test"][i]).permute(1, 2, 0).numpy()).save(paths[-1])
    a = deepix.load(runs["detect"]).detect(paths, conf=0.05)
    b = deepix.load(out).detect(paths, conf=0.05)
    for ra, rb in zip(a, b):
        assert len(ra["scores"]) == len(rb["scores"]) > 0
        assert torch.allclose(ra["scores"].sort().values, rb["scores"].sort().values, atol=1e-4)
    assert "found" in cli("predict", out, paths[0], check=True).stdout


def test_predict_restores_with_an_exported_restorer(exported, tmp_path, cli):
    out, _ = exported("restore")
    noisy = tmp_path / "noisy.png"
    Image.fromarray(skimage.data.camera()[:64, :80]).save(noisy)
    cli("predict", out, noisy, "-o", tmp_path / "clean.png", check=True)
    assert np.asarray(Image.open(tmp_path / "clean.png")).shape == (64, 80)


def test_bad_export_requests_are_one_line_exit_2(runs, tmp_path, cli):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    for args, says in ((["export", tmp_path], "not a deepix run"),
                       (["predict", junk, tmp_path / "x.png"], "not a file deepix export wrote"),
                       (["export", runs["classify"], "--weights", "last", "--data", tmp_path / "gone"], "could not be read")):
        r = cli(*args)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_a_diffusion_model_exports_its_whole_sampler(tmp_path, ddpm_run, cli):
    run = ddpm_run  # ddpm, width 0.25, 1 epoch on digits_28, --sample-steps 5 (the export grows with the steps)
    out = tmp_path / "ddpm.onnx"
    r = cli("export", run, "-o", out, check=True)
    assert "ok" in r.stdout  # the file's images match deepix's own 5-step sampler's
    meta = read_metadata(out)
    assert meta["conditional"] and meta["z_shape"] == [1, 28, 28] and "5 steps" in meta["output"]
    assert "batches of exactly 16" in meta["input"]
    images = run_file(out, {"z": torch.randn(16, 1, 28, 28), "labels": torch.arange(16) % 10})
    assert images.shape == (16, 1, 28, 28) and 0 <= images.min() and images.max() <= 1


@pytest.mark.parametrize("task", ["classify", "restore"])  # detect's int8 (mAP@.5) is measured in docs/benchmarks.md
def test_an_int8_export_keeps_the_tasks_figure_and_says_what_it_lost(runs, task, tmp_path, cli):
    out = tmp_path / "q.onnx"
    r = cli("export", runs[task], "--int8", "--calibrate", 64, "-o", out)
    record = json.loads((tmp_path / "q.onnx.json").read_text())
    par = record["parity"]
    assert record["precision"] == "int8" and read_metadata(out)["precision"] == "int8"
    assert record["bytes"] < record["float_bytes"] / 2  # int8 weights: about a quarter of float32's bytes
    assert par["split"] == "test" and par["metric"] in par["float"] and par["metric"] in par["int8"]
    assert par["ok"] == (par["loss"] <= par["allowed"]) and r.returncode == (0 if par["ok"] else 1)
    assert ("TOO MUCH LOST" in r.stdout) != par["ok"]
    if task == "classify":  # the int8 file answers as the float one on most test images, and predict runs it
        assert par["agreement"] >= 0.9 and par["ok"]
        img = tmp_path / "digit.png"
        Image.fromarray(np.asarray(torch.rand(28, 28).mul(255).byte())).save(img)
        assert json.loads(cli("predict", out, img, "--json", check=True).stdout)["class"] in [str(i) for i in range(10)]


def test_int8_that_loses_too_much_says_so_in_one_line_and_exit_1(runs, tmp_path, cli, monkeypatch):
    from deepix.tasks.classify import train
    made = train.exportable
    monkeypatch.setattr(train, "exportable", lambda *a: dataclasses.replace(made(*a), int8_budget=("accuracy", -1.0)))
    r = cli("export", runs["classify"], "--int8", "--calibrate", 32, "-o", tmp_path / "q.onnx")
    assert r.returncode == 1 and "more than the -1.0 allowed" in r.stdout
    assert not json.loads((tmp_path / "q.onnx.json").read_text())["parity"]["ok"]


def test_bad_int8_requests_are_one_line_exit_2(runs, tmp_path, cli):
    for args, says in (([runs["generate"], "--int8"], "does not apply to generate runs"),
                       ([runs["classify"], "--int8", "--format", "torchscript"], "leave out --format torchscript"),
                       ([runs["classify"], "--int8", "--calibrate", 0], "1 or more")):
        r = cli("export", *args, "-o", tmp_path / "x.onnx")
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
