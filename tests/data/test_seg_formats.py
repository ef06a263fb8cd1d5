"""Segmentation data on disk: folder pairs, VOC, COCO and YOLO-seg read, written and converted without losing a
pixel (YOLO's outlines excepted); bad input is one clear error naming the file."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from deepix.data.masks import palette
from deepix.data.seg_formats import VOC_CLASSES, detect_seg_format, read_segmentation
from deepix.data.seg_write import convert_segmentation, write_segmentation
from deepix.errors import UserError

H, W = 8, 10
CLASSES = ["background", "cat", "dog"]
COLOURS = [(0, 0, 0), (200, 10, 10), (10, 200, 10)]


def masks_and_images():
    """(split, stem, image, mask): rectangles of classes 1 and 2, one mask with a void border."""
    yy, xx = np.mgrid[0:H, 0:W]
    out = []
    for i, split in enumerate(["train", "train", "val"]):
        m = np.zeros((H, W), np.uint8)
        m[1:5, 2 + i:7] = 1
        m[5:8, 0:4] = 2
        if i == 1:
            m[0, :] = 255
        image = np.stack([xx * 20, yy * 25, np.full((H, W), 80 * i)], -1).astype(np.uint8)   # smooth: JPEG keeps it
        out.append((split, f"im{i}", image, m))
    return out


def make_pairs(root: Path, mask_mode="P", class_file="yaml", data=None) -> Path:
    """<split>/images/*.png + <split>/masks/*.png and a class file; mask_mode L, P (palette) or RGB."""
    for split, stem, image, mask in data or masks_and_images():
        for d in ("images", "masks"):
            (root / split / d).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / split / "images" / f"{stem}.png")
        if mask_mode == "RGB":
            lut = np.array(COLOURS + [(0, 0, 0)] * 252 + [(224, 224, 192)], np.uint8)
            Image.fromarray(lut[mask]).save(root / split / "masks" / f"{stem}.png")
        else:
            m = Image.fromarray(mask)
            if mask_mode == "P":
                m.putpalette([v for c in COLOURS + palette(256)[3:] for v in c])
            m.save(root / split / "masks" / f"{stem}.png")
    if class_file == "yaml":
        (root / "classes.yaml").write_text(yaml.safe_dump({"names": CLASSES, "colors": [list(c) for c in COLOURS]}))
    elif class_file == "txt":
        (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


def assert_same(ds, data=None, void_as=None, exact_images=True):
    data = data or masks_and_images()
    got = {(s, Path(im.name).stem): im for s, part in ds.splits.items() for im in part}
    assert sorted(got) == sorted((s, stem) for s, stem, _, _ in data)
    for split, stem, image, mask in data:
        im = got[split, stem]
        want = mask if void_as is None else np.where(mask == 255, void_as, mask)
        assert im.image.dtype == np.uint8 and im.image.shape == (H, W, 3)
        np.testing.assert_array_equal(im.mask, want)
        if exact_images:
            np.testing.assert_array_equal(im.image, image)
        else:   # VOC's JPEGs
            assert np.abs(im.image.astype(int) - image).mean() < 8


# ---- reading ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,class_file", [("P", "yaml"), ("L", "txt"), ("RGB", "yaml")])
def test_folder_pairs_read_back_exactly(tmp_path, mode, class_file):
    root = make_pairs(tmp_path / "d", mode, class_file)
    assert detect_seg_format(root) == "masks"
    ds = read_segmentation(root)
    assert ds.classes == CLASSES and set(ds.splits) == {"train", "val"} and ds.info["format"] == "masks"
    assert_same(ds)   # void (255) kept as 255, RGB masks mapped by the YAML's colours
    assert ds.colours == (None if class_file == "txt" else COLOURS)


def test_palette_masks_name_classes_and_colours_without_a_class_file(tmp_path):
    root = make_pairs(tmp_path / "d", "P", None)
    ds = read_segmentation(root)
    assert ds.classes == ["background", "class1", "class2"] and ds.colours == COLOURS
    assert_same(ds)


def test_flat_layout_grey_rgba_and_exif_photos(tmp_path):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.new("L", (W, H), 77).save(root / "images" / "grey.png")
    Image.new("RGBA", (W, H), (10, 20, 30, 255)).save(root / "images" / "rgba.png")
    photo = Image.new("RGB", (W, H), (250, 0, 0))   # stored 10 wide, shown 8 wide after a quarter turn
    exif = photo.getexif()
    exif[0x0112] = 6
    photo.save(root / "images" / "photo.jpg", exif=exif)
    for stem, size in [("grey", (W, H)), ("rgba", (W, H)), ("photo", (H, W))]:
        Image.new("L", size, 1).save(root / "masks" / f"{stem}.png")
    ds = read_segmentation(root)
    got = {im.name: im for im in ds.splits["train"]}
    assert (got["grey.png"].image == 77).all() and got["rgba.png"].image[0, 0].tolist() == [10, 20, 30]
    assert got["photo.jpg"].image.shape == (W, H, 3) and got["photo.jpg"].mask.shape == (W, H)


def make_voc(root: Path, lists=True) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    for split, stem, image, mask in masks_and_images():
        Image.fromarray(image).save(voc / "JPEGImages" / f"{stem}.jpg", quality=95)
        m = Image.fromarray(np.where(mask == 255, 255, mask * 7).astype(np.uint8))   # classes 7 and 14 of VOC's 21
        m.putpalette([v for c in palette(256) for v in c])
        m.save(voc / "SegmentationClass" / f"{stem}.png")
        if lists:
            with open(voc / "ImageSets" / "Segmentation" / f"{split}.txt", "a") as f:
                f.write(stem + "\n")
    return root


def test_voc_nested_in_vocdevkit_with_lists(tmp_path):
    root = make_voc(tmp_path / "v")
    assert detect_seg_format(root) == "voc"
    ds = read_segmentation(root)
    assert ds.classes == VOC_CLASSES and ds.colours == palette(21)
    assert [len(ds.splits[s]) for s in ("train", "val")] == [2, 1]
    m = ds.splits["train"][1].mask
    assert m[0].tolist() == [255] * W and set(np.unique(m).tolist()) == {0, 7, 14, 255}
    # a different ignore index: VOC's border becomes it
    assert read_segmentation(root, ignore_index=254).splits["train"][1].mask[0, 0] == 254
    # no lists: every image with a mask is training data
    assert set(read_segmentation(make_voc(tmp_path / "w", lists=False)).splits) == {"train"}


def rle(mask):
    from pycocotools import mask as cm
    r = cm.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": r["counts"].decode()}


def test_coco_polygons_rle_and_crowd_rasterised(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (W, H)).save(tmp_path / "images" / "a.png")
    big = np.zeros((H, W), bool)
    big[0:6, 0:8] = True
    small = np.zeros((H, W), bool)
    small[2:4, 2:4] = True
    anns = [  # the small one first: the larger is still drawn under it
        {"id": 1, "image_id": 1, "category_id": 9, "segmentation": rle(small), "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 4, "iscrowd": 0,   # uncompressed RLE of the big box
         "segmentation": {"size": [H, W], "counts": json.loads(json.dumps(_uncompressed(big)))}},
        {"id": 3, "image_id": 1, "category_id": 4, "iscrowd": 0,   # polygon: pixel corners 8..10 x 0..2
         "segmentation": [[8, 0, 10, 0, 10, 2, 8, 2]]},
        {"id": 4, "image_id": 1, "category_id": 9, "iscrowd": 1, "segmentation": rle(np.ones((H, W), bool))},
    ]
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}], "annotations": anns,
           "categories": [{"id": 9, "name": "cup"}, {"id": 4, "name": "table"}]}
    (tmp_path / "instances_val.json").write_text(json.dumps(doc))
    ds = read_segmentation(tmp_path / "instances_val.json")
    assert ds.classes == ["background", "table", "cup"] and list(ds.splits) == ["val"] and ds.info["crowd"] == 1
    want = np.full((H, W), 255, np.uint8)   # the crowd region: void where no instance lies
    want[big] = 1
    want[small] = 2
    want[0:2, 8:10] = 1
    np.testing.assert_array_equal(ds.splits["val"][0].mask, want)


def _uncompressed(m):
    flat, counts, cur, run = m.ravel(order="F"), [], False, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    return counts + [run]


def test_yolo_polygons_filled_in_file_order(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (W, H)).save(tmp_path / "images" / "train" / "a.png")
    Image.new("RGB", (W, H)).save(tmp_path / "images" / "train" / "b.png")   # no labels: background
    # pixel centres 0..5 x 0..3, then class 0 over part of it (Ultralytics: vertices at x * W, edges included)
    lines = ["1 0 0 0.55 0 0.55 0.4375 0 0.4375", "0 0.2 0.125 0.3 0.125 0.3 0.25"]
    (tmp_path / "labels" / "train" / "a.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "names": ["a", "b"]}))
    ds = read_segmentation(tmp_path)
    assert ds.info["format"] == "yolo" and ds.classes == ["background", "a", "b"]
    a, b = sorted(ds.splits["train"], key=lambda im: im.name)
    want = np.zeros((H, W), np.uint8)
    want[0:4, 0:6] = 2
    want[1, 2:4] = want[2, 3] = 1   # the triangle's three corner pixels
    np.testing.assert_array_equal(a.mask, want)
    assert not b.mask.any()


# ---- converting -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("to", ["voc", "coco", "masks"])
def test_convert_and_back_is_exact(tmp_path, to):
    src = make_pairs(tmp_path / "src", "P", "yaml")
    convert_segmentation(src, tmp_path / to, to)
    convert_segmentation(tmp_path / to, tmp_path / "back", "masks")
    ds = read_segmentation(tmp_path / "back")
    assert ds.classes == CLASSES and ds.colours[:3] == (palette(3) if to == "coco" else COLOURS)
    # COCO has no void: it reads back as background; VOC's images are JPEGs
    assert_same(ds, void_as=0 if to == "coco" else None, exact_images=to != "voc")
    if to == "voc":
        assert (tmp_path / "voc" / "classes.txt").read_text().split() == CLASSES
        assert read_segmentation(tmp_path / "voc").colours == COLOURS   # from the palette


def test_convert_to_yolo_keeps_the_regions(tmp_path):
    data = masks_and_images()
    data[0][3][6:8, 6:10] = 1     # a second region of class 1 in one image
    src = make_pairs(tmp_path / "src", "L", "txt", data)
    convert_segmentation(src, tmp_path / "yolo", "yolo")
    assert yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())["names"] == {0: "cat", 1: "dog"}
    ds = read_segmentation(tmp_path / "yolo")
    got = {Path(im.name).stem: im.mask for im in ds.images()}
    for _, stem, _, mask in data:
        for k in (1, 2):
            a, b = got[stem] == k, mask == k
            assert (a & b).sum() / (a | b).sum() > 0.8, (stem, k)


def test_convert_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        convert_segmentation(make_pairs(tmp_path / "d"), tmp_path / "out", "voc")


def test_cli_converts_and_a_wrong_size_mask_is_one_line(tmp_path, cli):
    src = make_pairs(tmp_path / "d")
    r = cli("data", "convert", src, tmp_path / "o", "--to", "voc", "--segment", check=True)
    assert "3 images, 3 classes" in r.stdout
    Image.new("L", (W + 1, H)).save(src / "val" / "masks" / "im2.png")
    r = cli("data", "convert", src, tmp_path / "o2", "--to", "voc", "--segment")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "im2.png" in lines[0] and "11x8" in lines[0], r.stderr
    assert cli("data", "convert", src, tmp_path / "o3", "--to", "masks").returncode == 2   # masks needs --segment


# ---- errors -----------------------------------------------------------------------------------------------

def test_errors_name_the_file(tmp_path):
    def fails(match, path, **kw):
        with pytest.raises(UserError, match=match) as e:
            read_segmentation(path, **kw)
        assert "\n" not in str(e.value)

    d = make_pairs(tmp_path / "size")
    Image.new("L", (W, H + 1)).save(d / "train" / "masks" / "im0.png")
    fails(r"im0.png: the mask is 10x9 but its image .*im0.png is 10x8", d)

    d = make_pairs(tmp_path / "index", "L", "txt")
    Image.fromarray(np.full((H, W), 5, np.uint8)).save(d / "train" / "masks" / "im1.png")
    fails(r"im1.png: class index 5 is beyond the 3 classes .*the class list \(.*classes.txt\)", d)

    d = make_pairs(tmp_path / "nomask")
    (d / "val" / "masks" / "im2.png").unlink()
    fails(r"image .*im2.png has no mask: expected .*masks/im2.png", d)

    d = make_pairs(tmp_path / "badimage")
    (d / "train" / "images" / "im0.png").write_bytes(b"not a png")
    fails(r"cannot read image .*im0.png", d)
    d = make_pairs(tmp_path / "badmask")
    (d / "train" / "masks" / "im0.png").write_bytes(b"not a png")
    fails(r"cannot read mask .*im0.png", d)

    d = make_pairs(tmp_path / "colour", "RGB")
    Image.new("RGB", (W, H), (1, 2, 3)).save(d / "val" / "masks" / "im2.png")
    fails(r"im2.png: colour \(1, 2, 3\) is not one of the class colours \(.*classes.yaml\)", d)
    (d / "classes.yaml").unlink()
    fails(r"im0.png is an RGB mask: give the class colours", d)

    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.md").write_text("")
    fails(r"no segmentation data recognised in .*nothing", tmp_path / "nothing")

    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    fails(r"no images in .*empty", tmp_path / "empty")
    fails(r"ignore index 300", tmp_path / "empty", ignore_index=300)

    d = tmp_path / "yolo"
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    Image.new("RGB", (W, H)).save(d / "images" / "a.png")
    (d / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")   # a box, not a polygon
    (d / "data.yaml").write_text(yaml.safe_dump({"train": "images", "names": ["a"]}))
    fails(r"a.txt:1: expected 'class x1 y1", d)


def test_write_then_read_every_format_by_name(tmp_path):
    ds = read_segmentation(make_pairs(tmp_path / "d"))
    for fmt in ("masks", "voc", "coco", "yolo"):
        write_segmentation(ds, tmp_path / fmt, fmt)
        assert detect_seg_format(tmp_path / fmt) == fmt
        assert read_segmentation(tmp_path / fmt, fmt=fmt).info["format"] == fmt
