"""Training on a user's folder: in memory, and streamed when it does not fit."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import deepix
from deepix.data.folder import read_folder
from deepix.errors import UserError


@pytest.fixture
def folder(tmp_path):
    """Two colour classes (red-ish and blue-ish squares) with one corrupt and one stray file."""
    rng = np.random.default_rng(0)
    for c, channel in (("red", 0), ("blue", 2)):
        (tmp_path / "photos" / c).mkdir(parents=True)
        for i in range(24):
            img = rng.integers(0, 60, (20, 24, 3)).astype(np.uint8)
            img[..., channel] += 180
            Image.fromarray(img).save(tmp_path / "photos" / c / f"{i}.png")
    (tmp_path / "photos" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "photos" / "blue" / "notes.txt").write_text("not an image")
    return tmp_path / "photos"


def test_folder_trains_and_predicts(folder, tmp_path, fast):
    r = deepix.train(project=str(tmp_path / "runs"), **{**fast, "data": str(folder), "imgsz": 16, "epochs": 4,
                                                           "batch": 8, "augment": "natural"})
    assert r["test"]["accuracy"] >= 0.75
    info = json.loads((r["run"] / "dataset.json").read_text())
    assert info["classes"] == ["blue", "red"] and info["channels"] == 3 and info["size"] == [16, 16]
    assert info["info"]["corrupt_files"] == 1 and info["info"]["ignored_files"] == 1
    split = json.loads((r["run"] / "split.json").read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(
        f"{c}/{i}.png" for c in ("red", "blue") for i in range(24))
    pred = deepix.load(r["run"]).predict(str(folder / "red" / "0.png"))
    assert pred[0]["class"] == "red"


def test_folder_too_large_for_memory_streams_and_skips_corrupt_files_as_in_memory(folder, tmp_path, fast):
    ds = read_folder(str(folder), 16, 0.2, 0.2, 0, memory_budget_bytes=0)
    assert ds.train.x is None and len(ds.train.paths) == len(ds.train)
    assert ds.info["in_memory"] is False and ds.info["corrupt_files"] == 1  # broken.png stays in the folder
    assert ds.info["corrupt_examples"] == ["red/broken.png"]
    everything = ds.train.paths + ds.val.paths + ds.test.paths
    assert not any(p.endswith("broken.png") for p in everything) and len(everything) == 48
    in_memory = read_folder(str(folder), 16, 0.2, 0.2, 0)
    assert [in_memory.info[k] for k in ("corrupt_files", "counts")] == [ds.info[k] for k in ("corrupt_files", "counts")]
    assert torch.equal(in_memory.test.y, ds.test.y) and in_memory.test.ids == ds.test.ids
    with pytest.raises(UserError, match="broken.png"):
        read_folder(str(folder), 16, 0.2, 0.2, 0, strict=True, memory_budget_bytes=0)
    r = deepix.train(project=str(tmp_path / "runs"), **{**fast, "data": ds, "epochs": 4, "batch": 8})
    assert r["test"]["accuracy"] >= 0.75
    assert json.loads((r["run"] / "dataset.json").read_text())["info"]["corrupt_files"] == 1
