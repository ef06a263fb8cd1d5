"""Detection data on disk: COCO / YOLO / VOC read, written and converted without losing boxes; bad input is one clear error."""
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from deepix.data.boxes import DetDataset, DetImage
from deepix.data.coco import read_coco, write_coco
from deepix.data.detection import convert, detect_format, read_detection
from deepix.data.voc import read_voc, write_voc
from deepix.data.yolo import label_path, read_yolo, write_yolo
from deepix.errors import UserError


# (file, split, W, H, COCO boxes x, y, w, h, category id); category ids not contiguous nor in name order
IMAGES = [
    ("a.png", "train", 40, 30, [([2.5, 3.25, 10, 12], 7), ([0, 0, 40, 30], 3)]),
    ("b.jpg", "train", 50, 20, [([10, 5, 5.5, 7.75], 5)]),
    ("c.png", "train", 32, 32, []),   # background
    ("d.png", "val", 24, 36, [([1, 2, 20, 30], 3), ([4, 4, 8, 8], 7)]),
]
CATEGORIES = [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}, {"id": 5, "name": "bird"}]


def make_coco(root: Path, images=IMAGES, categories=CATEGORIES, extra_anns=()) -> Path:
    """annotations/instances_<split>.json with the images in images/<split>/."""
    (root / "annotations").mkdir(parents=True)
    for split in sorted({s for _, s, *_ in images}):
        doc = {"images": [], "annotations": [*extra_anns], "categories": categories}
        for i, (name, s, w, h, boxes) in enumerate(images):
            if s != split:
                continue
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (w, h), (i * 40, 90, 200)).save(root / "images" / split / name)
            doc["images"].append({"id": i + 10, "file_name": name, "width": w, "height": h})
            for box, cat in boxes:
                doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i + 10,
                                           "category_id": cat, "bbox": box, "iscrowd": 0})
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


def by_name(ds: DetDataset) -> dict:
    return {(split, Path(im.file).name): im for split, ims in ds.splits.items() for im in ims}


def assert_same(a: DetDataset, b: DetDataset, tol=1e-3):
    assert a.classes == b.classes
    assert set(a.splits) == set(b.splits)
    ia, ib = by_name(a), by_name(b)
    assert set(ia) == set(ib)
    for key, x in ia.items():
        y = ib[key]
        assert x.size == y.size, key
        assert torch.equal(x.labels, y.labels), key
        assert torch.allclose(x.boxes, y.boxes, atol=tol), (key, x.boxes, y.boxes)


def test_coco_reads_boxes_labels_classes_and_splits(tmp_path):
    ds = read_coco(make_coco(tmp_path / "coco"))
    assert ds.classes == ["dog", "bird", "cat"]   # sorted by category id
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 3, "val": 1}
    a = by_name(ds)[("train", "a.png")]
    assert a.size == (30, 40)
    assert torch.allclose(a.boxes, torch.tensor([[2.5, 3.25, 12.5, 15.25], [0, 0, 40, 30]]))
    assert a.labels.tolist() == [2, 0]
    assert by_name(ds)[("train", "c.png")].boxes.shape == (0, 4)   # background kept
    assert ds.info["clipped"] == ds.info["dropped"] == ds.info["crowd"] == 0


def test_round_trip_coco_yolo_voc_coco(tmp_path):
    src = read_coco(make_coco(tmp_path / "coco"))
    write_yolo(src, tmp_path / "yolo")
    y = read_yolo(tmp_path / "yolo")
    assert_same(src, y)
    write_voc(y, tmp_path / "voc")
    v = read_voc(tmp_path / "voc")
    assert_same(src, v)
    write_coco(v, tmp_path / "coco2")
    back = read_coco(tmp_path / "coco2")
    assert_same(src, back)
    for ds in (y, v, back):
        assert ds.info["clipped"] == ds.info["dropped"] == 0
    assert (tmp_path / "coco2" / "images" / "train" / "b.jpg").read_bytes() == \
        (tmp_path / "coco" / "images" / "train" / "b.jpg").read_bytes()


def test_convert_and_format_detection(tmp_path):
    coco = make_coco(tmp_path / "coco")
    assert detect_format(coco) == "coco"
    assert detect_format(coco / "annotations" / "instances_val.json") == "coco"
    convert(coco, tmp_path / "yolo", "yolo")
    convert(tmp_path / "yolo", tmp_path / "voc", "voc")
    assert detect_format(tmp_path / "yolo") == "yolo"
    assert detect_format(tmp_path / "yolo" / "data.yaml") == "yolo"
    assert detect_format(tmp_path / "voc") == "voc"
    assert_same(read_detection(coco), read_detection(tmp_path / "voc"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cannot tell"):
        detect_format(tmp_path / "empty")
    with pytest.raises(UserError, match="not empty"):
        convert(coco, tmp_path / "voc", "coco")


def test_in_memory_images_are_written_as_png(tmp_path):
    img = torch.zeros(3, 10, 12, dtype=torch.uint8)
    ds = DetDataset("mem", ["x"], {"all": [DetImage("", (10, 12), torch.tensor([[1., 2., 5., 6.]]),
                                                    torch.tensor([0]), image=img, id=3)]})
    write_yolo(ds, tmp_path / "y")
    assert Image.open(tmp_path / "y" / "images" / "all" / "3.png").size == (12, 10)
    back = read_yolo(tmp_path / "y")
    assert list(back.splits) == ["all"] and torch.allclose(back.images()[0].boxes, ds.images()[0].boxes, atol=1e-4)


def test_boxes_outside_are_clipped_and_empty_ones_dropped(tmp_path):
    bad = [("e.png", "train", 20, 10, [([15, 2, 10, 4], 3),      # reaches past the right edge: clipped
                                       ([3, 3, 0, 4], 3),        # zero width: dropped
                                       ([30, 2, 5, 5], 3)])]     # wholly outside: dropped
    ds = read_coco(make_coco(tmp_path / "c", bad, [{"id": 3, "name": "dog"}]))
    assert ds.info["clipped"] == 1 and ds.info["dropped"] == 2
    assert ds.images()[0].boxes.tolist() == [[15, 2, 20, 6]]
    # the same rule in YOLO: an inverted box (negative width) is dropped
    write_yolo(ds, tmp_path / "y")
    lp = tmp_path / "y" / "labels" / "train" / "e.txt"
    lp.write_text(lp.read_text() + "0 0.5 0.5 -0.2 0.3\n")
    assert read_yolo(tmp_path / "y").info["dropped"] == 1


def test_crowd_is_skipped_and_counted(tmp_path):
    crowd = [{"id": 99, "image_id": 10, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1}]
    ds = read_coco(make_coco(tmp_path / "c", IMAGES[:1], extra_anns=crowd))
    assert ds.info["crowd"] == 1 and len(ds.images()[0].boxes) == 2


def test_unknown_class_ids_name_the_file_and_id(tmp_path):
    ds = read_coco(make_coco(tmp_path / "c"))
    write_yolo(ds, tmp_path / "y")
    lp = tmp_path / "y" / "labels" / "val" / "d.txt"
    lp.write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(UserError, match=r"d\.txt: class id 7 is not one of the 3 classes"):
        read_yolo(tmp_path / "y")
    doc_path = tmp_path / "c" / "annotations" / "instances_val.json"
    doc = json.loads(doc_path.read_text())
    doc["annotations"][0]["category_id"] = 42
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"instances_val\.json.*category_id 42"):
        read_coco(tmp_path / "c")


def test_missing_images_name_the_count_and_the_first(tmp_path):
    coco = make_coco(tmp_path / "c")
    (coco / "images" / "train" / "b.jpg").unlink()
    (coco / "images" / "train" / "c.png").unlink()
    with pytest.raises(UserError, match=r"2 of the 3 images listed in .*instances_train\.json are missing.*b\.jpg"):
        read_coco(coco)
    # a YOLO split given as a .txt list of images
    y = tmp_path / "y"
    (y / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(y / "images" / "p.png")
    (y / "train.txt").write_text("./images/p.png\n./images/q.png\n")
    (y / "data.yaml").write_text("train: train.txt\nnames: [a]\n")
    with pytest.raises(UserError, match=r"1 of the 2 images listed in .*train\.txt .*q\.png"):
        read_yolo(y)


def test_yolo_bad_lines_give_file_and_line(tmp_path):
    write_yolo(read_coco(make_coco(tmp_path / "c")), tmp_path / "y")
    lp = tmp_path / "y" / "labels" / "train" / "a.txt"
    lp.write_text("0 0.5 0.5 0.2 0.2\n\n1 0.5 0.5 0.2\n")
    with pytest.raises(UserError, match=r"a\.txt:3: expected 5 fields"):
        read_yolo(tmp_path / "y")
    lp.write_text("0 0.5 zero 0.2 0.2\n")
    with pytest.raises(UserError, match=r"a\.txt:1: expected numbers"):
        read_yolo(tmp_path / "y")


def test_unreadable_annotation_files_are_named(tmp_path):
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "broken.json").write_text("{not json")
    with pytest.raises(UserError, match=r"cannot read COCO annotations .*broken\.json"):
        read_detection(tmp_path / "j" / "broken.json")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "broken.xml").write_text("<annotation><object>")
    with pytest.raises(UserError, match=r"cannot read VOC annotation .*broken\.xml"):
        read_detection(tmp_path / "x")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "data.yaml").write_text("train: [unclosed\n")
    with pytest.raises(UserError, match=r"cannot read .*data\.yaml"):
        read_detection(tmp_path / "y")
    with pytest.raises(UserError, match="not found"):
        read_detection(tmp_path / "nothing-here")


def voc_xml(filename, objects, size=(40, 30)):
    objs = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin>"
                   f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                   for n, b, d in objects)
    sz = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    return f"<annotation><filename>{filename}</filename>{sz}{objs}</annotation>"


def test_vocdevkit_splits_one_based_corners_and_difficult(tmp_path):
    year = tmp_path / "VOCdevkit" / "VOC2007"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (year / d).mkdir(parents=True)
    for stem in ("000001", "000002"):
        Image.new("RGB", (40, 30)).save(year / "JPEGImages" / f"{stem}.jpg")
    (year / "Annotations" / "000001.xml").write_text(
        voc_xml("000001.jpg", [("person", (1, 1, 10, 20), 0), ("car", (5, 5, 40, 30), 1)]))
    (year / "Annotations" / "000002.xml").write_text(voc_xml("000002.jpg", [("car", (2, 3, 4, 5), 0)], size=None))
    main = year / "ImageSets" / "Main"
    main.joinpath("train.txt").write_text("000001\n")
    main.joinpath("val.txt").write_text("000002\n")
    main.joinpath("trainval.txt").write_text("000001\n000002\n")    # train + val again: not a third split
    main.joinpath("car_train.txt").write_text("000001  1\n")        # a per-class list, not a split
    ds = read_voc(tmp_path / "VOCdevkit")
    assert ds.classes == ["car", "person"]
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 1, "val": 1}
    first = ds.splits["train"][0]
    assert first.boxes.tolist() == [[0, 0, 10, 20], [4, 4, 40, 30]] and first.labels.tolist() == [1, 0]
    assert ds.info["difficult"] == 1
    assert ds.splits["val"][0].size == (30, 40)   # no <size>: read from the image header
    main.joinpath("val.txt").write_text("000002\n000003\n")
    with pytest.raises(UserError, match=r"1 of the 2 annotation files listed in .*val\.txt.*000003\.xml"):
        read_voc(tmp_path / "VOCdevkit")


def test_xml_tree_with_images_in_a_sibling_folder(tmp_path):
    (tmp_path / "set" / "xml").mkdir(parents=True)
    (tmp_path / "set" / "images").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "set" / "images" / "p.png")
    (tmp_path / "set" / "xml" / "p.xml").write_text(voc_xml("p.png", [("b", (1, 1, 3, 3), 0), ("a", (2, 2, 9, 9), 0)]))
    assert detect_format(tmp_path / "set") == "voc"
    ds = read_detection(tmp_path / "set")
    assert ds.classes == ["a", "b"] and list(ds.splits) == ["all"]
    assert ds.images()[0].file == str(tmp_path / "set" / "images" / "p.png")
    (tmp_path / "set" / "xml" / "q.xml").write_text(voc_xml("q.png", []))
    with pytest.raises(UserError, match=r"1 of the 2 images .*q\.png"):
        read_voc(tmp_path / "set")


def test_yolo_yaml_forms_and_label_rule(tmp_path):
    assert label_path("/d/images/x/images/train/a.jpg") == Path("/d/images/x/labels/train/a.txt")
    assert label_path("/d/train/a.png") == Path("/d/train/a.txt")
    root = tmp_path / "ds"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (100, 50)).save(root / "images" / "train" / "a.jpg")
    (root / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n")
    (tmp_path / "elsewhere.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/train\n"
                                             "names:\n  0: zero\n  1: one\n")
    ds = read_yolo(tmp_path / "elsewhere.yaml")
    assert ds.classes == ["zero", "one"] and list(ds.splits) == ["train", "val"]
    assert ds.splits["train"][0].boxes[0].tolist() == pytest.approx([40, 15, 60, 35])


def test_cli_convert_prints_one_line_and_bad_path_exits_2(tmp_path, cli):
    coco = make_coco(tmp_path / "coco")
    r = cli("data", "convert", coco, tmp_path / "out", "--to", "yolo", check=True)
    line, = r.stdout.strip().splitlines()
    assert "4 images" in line and "5 boxes" in line and "3 classes" in line and "train 3" in line
    assert (tmp_path / "out" / "data.yaml").is_file()
    r = cli("data", "convert", tmp_path / "missing", tmp_path / "out2", "--to", "voc")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr


def exif_rotated_jpeg(path: Path) -> None:
    """A phone-style JPEG: stored 40 wide x 20 high with a red block at its top left, EXIF orientation 6
    (turn a quarter clockwise to show), so a viewer shows it 20 wide x 40 high with the block at top right."""
    a = torch.full((20, 40, 3), 30, dtype=torch.uint8)
    a[:8, :8] = torch.tensor([230, 20, 20], dtype=torch.uint8)
    im = Image.fromarray(a.numpy())
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(path, quality=95, exif=exif)


def test_every_reader_and_predict_take_an_exif_rotated_photo_upright(tmp_path):
    from deepix.data.folder import load_image
    from deepix.tasks.detect.images import pixels, unlabelled
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    exif_rotated_jpeg(root / "images" / "phone.jpg")
    # the box is given on the upright picture: the block at the top right, x 12..20, y 0..8 of 20 x 40
    (root / "labels" / "phone.txt").write_text("0 0.8 0.1 0.4 0.2\n")
    (root / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [block]\n")
    im = read_yolo(str(root / "data.yaml")).splits["train"][0]
    assert im.size == (40, 20)
    assert im.boxes.tolist() == [[12.0, 0.0, 20.0, 8.0]]
    upright = pixels(im)  # what training, val and predict see
    assert upright.shape == (3, 40, 20)
    inside = upright[:, 1:7, 13:19].float().mean((1, 2))
    assert inside[0] > 180 and inside[1] < 80  # the red block lies inside its box
    assert pixels(unlabelled(root / "images" / "phone.jpg")).shape == (3, 40, 20)
    # the classify folder reader turns it the same way
    assert load_image(root / "images" / "phone.jpg", 3, 40)[0, :8, 30:].float().mean() > 180
