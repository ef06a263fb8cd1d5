"""locate end to end on a few small shapes images: a run beside its baselines, exact resume, predict, val,
export, and one line for a detection set without boxes."""
import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import deepix
from deepix.data.shapes import load_shapes

TINY = dict(epochs=3, bc=0.67, envs=4, rollout=8, batch=32, quiet=True)


def tiny_images():
    return load_shapes(40, 8, 8, size=64, max_objects=2)


@pytest.fixture(scope="module")
def loc_run(tmp_path_factory):
    return deepix.train("locate", data=tiny_images(), project=str(tmp_path_factory.mktemp("loc")), name="tiny", **TINY)


def test_a_run_measures_the_agent_beside_its_baselines(loc_run):
    t = loc_run["test"]
    assert set(t["searchers"]) == {"agent", "oracle", "whole image", "centre box", "random"}
    assert t["searchers"]["oracle"]["recall50"] > 0.8 > t["searchers"]["whole image"]["recall50"]
    rows = (loc_run["run"] / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and "val_recall50" in rows[0] and "val_frames" in rows[0]
    assert (loc_run["run"] / "plots" / "search.gif").stat().st_size > 1000
    assert "centre box" in (loc_run["run"] / "report.html").read_text()


def test_a_killed_run_resumed_ends_where_an_uninterrupted_one_does(tmp_path, loc_run):
    def kill(row, model):
        if row["epoch"] == 2:   # after DAgger, before PPO
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deepix.train("locate", data=tiny_images(), project=str(tmp_path), name="cut", callbacks=[kill], **TINY)
    cut = tmp_path / "locate" / "cut"
    deepix.train("locate", data=tiny_images(), resume=str(cut), quiet=True)
    a = load_file(str(loc_run["run"] / "weights" / "last.safetensors"))
    b = load_file(str(cut / "weights" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_predict_and_export(loc_run, tmp_path, cli):
    im = load_shapes(0, 0, 1, size=64, seed=3).splits["test"][0]
    Image.fromarray(im.image.permute(1, 2, 0).numpy()).save(tmp_path / "s.png")
    r = cli("predict", loc_run["run"], tmp_path / "s.png", "-o", tmp_path / "out", check=True)
    assert "found" in r.stdout
    found = json.loads((tmp_path / "out" / "s.json").read_text())
    assert all(len(d["box"]) == 4 and 0 <= d["score"] <= 1 for d in found["detections"])
    assert deepix.load(loc_run["run"]).predict(str(tmp_path / "s.png"))[0]["detections"] == found["detections"]
    r = cli("export", loc_run["run"], "--format", "onnx", "-o", tmp_path / "loc.onnx", check=True)
    assert (tmp_path / "loc.onnx").is_file() and "parity" in r.stdout.lower()


def test_a_detection_set_without_boxes_gets_one_line(tmp_path, cli):
    folder = tmp_path / "empty"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (i * 40, 90, 90)).save(folder / "images" / f"{i}.png")
        (folder / "labels" / f"{i}.txt").write_text("")
    (folder / "data.yaml").write_text("train: images\nval: images\nnames: [thing]\n")
    r = cli("train", "locate", "--data", folder, "--epochs", "1", "--project", tmp_path)
    assert r.returncode == 2 and "no boxes" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_init_starts_the_crop_encoder_from_a_pretrained_searcher_cnn(tmp_path, loc_run, cli):
    from deepix.tasks.locate.model import Searcher, init_searcher
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i, im in enumerate(tiny_images().splits["train"][:16]):
        Image.fromarray(im.image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    pre = deepix.train("pretrain", data=str(folder), model="searcher-cnn", imgsz=64, epochs=1, batch=8, quiet=True,
                       threads=1, project=str(tmp_path), name="pre")["run"]
    searcher = Searcher(standardised=True)
    assert init_searcher(searcher, str(pre)) == 12   # four blocks: a conv and a GroupNorm's two tensors each
    encoder = load_file(str(pre / "weights" / "encoder.safetensors"))
    assert torch.equal(searcher.encoder[0][0].weight, encoder["1.0.0.weight"])
    assert torch.equal(searcher.mean.flatten(), encoder["0.mean"].flatten())
    run = deepix.train("locate", data=tiny_images(), init=str(pre), project=str(tmp_path), name="init",
                       **dict(TINY, epochs=1))["run"]
    assert deepix.load(run).model.standardised   # the run loads with its encoder's input statistics
    r = cli("train", "locate", "--init", loc_run["run"], "--epochs", "1", "--project", tmp_path)
    assert r.returncode == 2 and "searcher-cnn" in r.stderr and "Traceback" not in r.stderr, r.stderr
