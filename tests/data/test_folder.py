"""Image folders: layouts, splits, damaged files, mixed modes, errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from deepix.data.folder import load_image, read_folder
from deepix.data.splits import stratified_split
from deepix.errors import UserError


def make_class_folders(root, counts, mode="L", size=10):
    """Class folders of small images, each image a distinct flat value."""
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            color = c * 50 + i if mode == "L" else (c * 50 + i, 0, 0)
            Image.new(mode, (size, size), color).save(root / name / f"{i}.png")
    return root


def read(root, imgsz=8, val=0.2, test=0.2, seed=0, **kw):
    return read_folder(str(root), imgsz, val, test, seed, **kw)


def test_class_folders_layout(tmp_path):
    ds = read(make_class_folders(tmp_path / "pets", {"cat": 10, "dog": 10}))
    assert ds.name == "pets" and ds.classes == ["cat", "dog"] and ds.channels == 1
    assert ds.train.x.shape == (12, 1, 8, 8) and ds.train.x.dtype == torch.uint8
    assert ds.train.y.dtype == torch.int64
    assert ds.info["counts"] == {"train": 12, "val": 4, "test": 4}
    assert ds.info["layout"] == "class folders" and ds.info["seed"] == 0
    assert ds.counts(ds.val) == [2, 2] and ds.counts(ds.test) == [2, 2]


def test_train_val_test_layout(tmp_path):
    make_class_folders(tmp_path / "train", {"a": 6, "b": 6})
    make_class_folders(tmp_path / "test", {"a": 2, "b": 3})
    ds = read(tmp_path, val=0.5)
    assert ds.info["layout"] == "train/val/test"
    assert ds.info["split_sources"] == {"val": "carved from train", "test": "folder"}
    assert ds.info["counts"] == {"train": 6, "val": 6, "test": 5}
    make_class_folders(tmp_path / "val", {"a": 1})
    ds = read(tmp_path)
    assert ds.info["counts"] == {"train": 12, "val": 1, "test": 5}


def test_unknown_class_in_val(tmp_path):
    make_class_folders(tmp_path / "train", {"a": 3, "b": 3})
    make_class_folders(tmp_path / "val", {"c": 1})
    with pytest.raises(UserError, match="not a class"):
        read(tmp_path)


def test_split_is_deterministic_and_seeded(tmp_path):
    root = make_class_folders(tmp_path, {"a": 20, "b": 20})
    first, again, other = read(root, seed=1), read(root, seed=1), read(root, seed=2)
    assert torch.equal(first.val.x, again.val.x) and torch.equal(first.test.x, again.test.x)
    assert not torch.equal(first.val.x, other.val.x)


def test_stratified_split():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    train, val, test = stratified_split(y, 0.1, 0.2, seed=0)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))
    assert np.bincount(y[test]).tolist() == [10, 6, 4]
    assert np.bincount(y[val]).tolist() == [5, 3, 2]
    assert all(np.all(np.diff(s) > 0) for s in (train, val, test))
    again = stratified_split(y, 0.1, 0.2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(test, stratified_split(y, 0.1, 0.2, seed=1)[2])
    assert len(stratified_split(y, 0.0, 0.2, seed=0)[1]) == 0
    # a class of one cannot be stratified: falls back instead of failing
    train, val, test = stratified_split(np.array([0] * 9 + [1]), 0.2, 0.2, seed=0)
    assert (len(train), len(val), len(test)) == (6, 2, 2)
    with pytest.raises(UserError):
        stratified_split(y, 0.5, 0.5, seed=0)


def test_corrupt_files_skipped_or_refused(tmp_path):
    root = make_class_folders(tmp_path, {"a": 5, "b": 5})
    (root / "a" / "text.png").write_text("not an image")
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "b" / "full.png")
    data = (root / "b" / "full.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "b" / "full.png").unlink()
    ds = read(root)
    assert ds.info["corrupt_files"] == 2
    assert sorted(ds.info["corrupt_examples"]) == ["a/text.png", "b/truncated.png"]
    assert sum(ds.info["counts"].values()) == 10
    with pytest.raises(UserError, match="without --strict") as e:
        read(root, strict=True)
    assert "text.png" in str(e.value)


def test_non_image_files_ignored(tmp_path):
    root = make_class_folders(tmp_path, {"a": 5, "b": 5})
    (root / "a" / "notes.txt").write_text("hi")
    (root / "b" / ".DS_Store").write_bytes(b"\0")
    ds = read(root)
    assert ds.info["ignored_files"] == 2 and sum(ds.info["counts"].values()) == 10


@pytest.mark.parametrize("setup, message", [
    (lambda p: (make_class_folders(p, {"a": 3}), (p / "b").mkdir()), "b has no images"),
    (lambda p: make_class_folders(p, {"a": 3}), "at least 2 classes"),
    (lambda p: (p / "x.png").write_text(""), "no class folders"),
    (lambda p: make_class_folders(p, {"a": 1, "b": 1}), r"a=1, b=1 per class"),
])
def test_bad_folders(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(UserError, match=message):
        read(tmp_path)


def test_bad_paths(tmp_path):
    with pytest.raises(UserError, match="data folder not found"):
        read(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a folder"):
        read(tmp_path / "file")


def test_no_readable_images(tmp_path):
    for name in "ab":
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_text("junk")
    with pytest.raises(UserError, match="no readable images"):
        read(tmp_path)


def test_mixed_modes_become_rgb(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("L", (6, 6), 100).save(tmp_path / "a" / "gray.png")
    Image.new("RGB", (6, 6), (255, 0, 0)).save(tmp_path / "a" / "red.png")
    Image.new("RGBA", (6, 6), (0, 0, 255, 0)).save(tmp_path / "b" / "clear.png")
    Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16)).save(tmp_path / "b" / "deep.png")
    ds = read(tmp_path, val=0, test=0)
    assert ds.channels == 3 and ds.train.x.shape == (4, 3, 8, 8)
    gray, red, clear, deep = (ds.train.x[i, :, 4, 4].tolist() for i in range(4))
    assert gray == [100] * 3 and red == [255, 0, 0]
    assert clear == [255] * 3   # fully transparent: the white background
    assert deep == [255] * 3    # 16-bit full scale
    conv = ds.info["mode_conversions"]
    assert conv["L->RGB"] == 1 and conv["RGBA->RGB"] == 1 and sum(conv.values()) == 3


def test_gray_set_stays_one_channel(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("L", (6, 6), 10).save(tmp_path / "a" / "x.png")
    Image.fromarray(np.full((6, 6), 32768, dtype=np.uint16)).save(tmp_path / "b" / "x.png")
    ds = read(tmp_path, imgsz=0, val=0, test=0)
    assert ds.channels == 1 and ds.size == (64, 64)
    assert ds.train.x[:, 0, 0, 0].tolist() == [10, 128]


def test_memory_budget_gives_paths(tmp_path):
    root = make_class_folders(tmp_path, {"a": 5, "b": 5}, mode="RGB")
    ds = read(root, memory_budget_bytes=100)
    assert not ds.info["in_memory"] and ds.channels == 3
    assert ds.train.x is None and len(ds.train.paths) == len(ds.train.y) == 6
    assert all(p.endswith(".png") for s in (ds.train, ds.val, ds.test) for p in s.paths)
    assert load_image(ds.train.paths[0], ds.channels, 8).shape == (3, 8, 8)


def test_load_image_from_pil():
    x = load_image(Image.new("LA", (20, 10), (0, 0)), channels=1, imgsz=16)
    assert x.shape == (1, 16, 16) and x.dtype == torch.uint8 and bool((x == 255).all())
    x = load_image(Image.new("P", (5, 5)), channels=3, imgsz=4)
    assert x.shape == (3, 4, 4)
    with pytest.raises(UserError, match="cannot read image"):
        load_image("/no/such/file.png", 3, 4)
