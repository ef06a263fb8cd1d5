"""Hostile inputs against every reader and entry point (issue 20).

A corpus of damaged, odd and malicious files is made in tmp_path and fed to the classify folder reader, the
detection and segmentation readers, `deepix predict`, `deepix denoise` and the service. Each outcome must be one
of: it works (odd but valid files are read and converted), it is skipped and counted in the reader's info, or it
is refused with one line naming the file (exit 2 through the CLI, a 4xx one-line JSON from the service).
A traceback, a multi-line error, a slow decode or a changed earlier output fails the test.

The outcomes are gathered into a table, written as Markdown to $DEEPIX_RELIABILITY_OUT when it is set
(docs/reliability.md shows it)."""
import contextlib
import hashlib
import io
import json
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepix.data.detection import read_detection
from deepix.data.folder import read_folder, read_rgb
from deepix.data.seg_formats import read_segmentation
from deepix.errors import UserError
from deepix.serve.app import make_app

SECONDS = 10  # any one input, on a busy machine; each takes well under 1 s
ROWS: dict[tuple[str, str], str] = {}  # (entry point, input) -> outcome, for the table


# ---- the corpus ---------------------------------------------------------------------------------------------

def smooth(h: int, w: int, mode: str = "RGB") -> Image.Image:
    """Colour gradients with a little noise: a photo-like image the denoiser can take."""
    y, x = np.mgrid[:h, :w]
    g = x * 200 / w + y * 40 / h + np.random.default_rng(0).normal(0, 3, (h, w))
    a = np.stack([g, 255 - g, np.full_like(g, 100)], 2)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert(mode)


def encoded(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def huge_png_header(w: int = 30_000, h: int = 30_000) -> bytes:
    """A tiny file whose header claims w x h pixels: a decompression bomb if anyone decoded it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


def palette_png() -> bytes:
    im = smooth(16, 16).quantize(4)
    return encoded(im, "PNG", transparency=0)


def exif_rotated_jpeg() -> bytes:
    """Stored 16 wide x 8 high with EXIF orientation 6: shown 8 wide x 16 high."""
    im = smooth(8, 16)
    exif = im.getexif()
    exif[0x0112] = 6
    return encoded(im, "JPEG", exif=exif)


def cut(fmt: str) -> bytes:
    """A 64 x 64 image of noise cut in half: the JPEG's header is whole, its pixels are not."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), fmt)
    return data[:len(data) // 2]


HUGE = "header of 30,000 x 30,000"
# name: (file name, bytes, upright (H, W) when the file is a valid image, else None)
IMAGES = {
    "0-byte PNG": ("empty.png", lambda: b"", None),
    "0-byte JPEG": ("empty.jpg", lambda: b"", None),
    "truncated PNG": ("cut.png", lambda: cut("PNG"), None),
    "truncated JPEG": ("cut.jpg", lambda: cut("JPEG"), None),
    "text named .png": ("text.png", lambda: b"not an image\n", None),
    HUGE: ("huge.png", huge_png_header, None),
    "PNG named .jpg": ("png.jpg", lambda: encoded(smooth(16, 16), "PNG"), (16, 16)),
    "CMYK JPEG": ("cmyk.jpg", lambda: encoded(smooth(16, 16, "CMYK"), "JPEG"), (16, 16)),
    "palette PNG, transparent": ("palette.png", palette_png, (16, 16)),
    "16-bit PNG (I;16)": ("deep.png", lambda: encoded(Image.fromarray(
        np.asarray(smooth(16, 16, "L")).astype(np.uint16) * 257), "PNG"), (16, 16)),
    "1x1 image": ("dot.png", lambda: encoded(smooth(1, 1), "PNG"), (1, 1)),
    "EXIF-rotated JPEG": ("phone.jpg", exif_rotated_jpeg, (16, 8)),
    "non-UTF-8 file name": (os.fsdecode(b"caf\xe9.jpg"), lambda: encoded(smooth(16, 16), "JPEG"), (16, 16)),
}
LOOP = "symlink loop in the folder"


def write_image(kind: str, folder: Path) -> Path:
    """The corpus file of this kind in folder (a filesystem that refuses a non-UTF-8 name skips that case)."""
    name, data, _ = IMAGES[kind]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        (folder / name).write_bytes(data())
    except (OSError, UnicodeEncodeError) as e:
        pytest.skip(f"this filesystem refuses the name {name!r}: {e}")
    return folder / name


def good(folder: Path, name: str = "good.png", size: tuple[int, int] = (16, 16)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    smooth(*size).save(folder / name)
    return folder / name


def loop(folder: Path) -> None:
    os.symlink(folder, folder / "loop")


# ---- outcomes -----------------------------------------------------------------------------------------------

def attempt(entry: str, kind: str, fn, names: list[str]):
    """fn(), timed; a UserError must be one line naming one of `names`, recorded as such (returns None).
    Anything else raised is recorded as a traceback and fails the test."""
    t = time.perf_counter()
    try:
        return fn()
    except UserError as e:
        one_line(str(e), names, kind)
        ROWS[entry, kind] = "one line"
    except Exception:
        ROWS[entry, kind] = "TRACEBACK"
        raise
    finally:
        assert time.perf_counter() - t < SECONDS, f"{entry} took {time.perf_counter() - t:.1f} s on {kind}"


def one_line(message: str, names: list[str], kind: str) -> None:
    """One line naming one of `names`; the huge header refused on its pixel count, before any decoding."""
    assert message.strip() and "\n" not in message.strip() and "Traceback" not in message, message
    assert any(n in message for n in names), f"{message!r} names none of {names}"
    assert kind != HUGE or "pixels" in message, message


def expect(entry: str, kind: str, outcome: str, wanted: str) -> None:
    """Record the outcome (unless attempt already did) and check it is the one this input should get."""
    ROWS.setdefault((entry, kind), outcome)
    assert ROWS[entry, kind] == wanted, f"{entry} on {kind}: {ROWS[entry, kind]}, expected {wanted}"


def wanted_for_image(kind: str, refused: str) -> str:
    return "works" if IMAGES[kind][2] else refused


# ---- classify image folders ---------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [2**31, 0], ids=["in memory", "from disk"])
@pytest.mark.parametrize("kind", [*IMAGES, LOOP])
def test_folder_reader(tmp_path, kind, budget):
    entry = "classify folder" + (" (from disk)" if budget == 0 else "")
    for c in ("a", "b"):
        for i in range(2):
            good(tmp_path / c, f"{i}.png")
    if kind == LOOP:
        loop(tmp_path / "a")
    else:
        write_image(kind, tmp_path / "a")
    ds = attempt(entry, kind, lambda: read_folder(str(tmp_path), 8, 0, 0, 0, memory_budget_bytes=budget), [])
    if ds is None:
        outcome = "one line"
    elif ds.info["corrupt_files"]:
        assert ds.info["corrupt_files"] == 1 and ds.info["counts"]["train"] == 4
        assert Path(ds.info["corrupt_examples"][0]).name == IMAGES[kind][0]
        outcome = "skipped and counted"
    else:
        assert ds.info["counts"]["train"] == (4 if kind == LOOP else 5)
        assert ds.train.x is None if budget == 0 else ds.train.x.shape == (ds.info["counts"]["train"], 3, 8, 8)
        outcome = "works"
    expect(entry, kind, outcome, "works" if kind == LOOP else wanted_for_image(kind, "skipped and counted"))


# ---- detection: COCO, YOLO, VOC -----------------------------------------------------------------------------

MALFORMED = "malformed JSON / YAML / XML"
NAN_BOX = "box with NaN"
NEGATIVE_BOX = "box of negative size"
BAD_CLASS = "class id out of range"


def coco_detection(root: Path, kind: str) -> tuple[Path, list[str]]:
    """A COCO set (one good image and box) with this input in it; the path to read, the names an error may give."""
    images, ann = root / "images" / "train", root / "annotations" / "instances_train.json"
    good(images)
    doc = {"images": [{"id": 1, "file_name": "good.png", "width": 16, "height": 16}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8]}],
           "categories": [{"id": 1, "name": "thing"}]}
    extra = {NAN_BOX: [float("nan"), 2, 4, 4], NEGATIVE_BOX: [8, 8, -4, 4], BAD_CLASS: [2, 2, 4, 4]}
    if kind in IMAGES:
        p = write_image(kind, images)
        h, w = IMAGES[kind][2] or (16, 16)
        doc["images"].append({"id": 2, "file_name": p.name, "width": w, "height": h})
        doc["annotations"].append({"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]})
    elif kind in extra:
        doc["annotations"].append({"id": 2, "image_id": 1, "category_id": 7 if kind == BAD_CLASS else 1,
                                   "bbox": extra[kind]})
    elif kind == LOOP:
        loop(images)
    return write_coco(ann, doc, kind)


def write_coco(ann: Path, doc: dict, kind: str) -> tuple[Path, list[str]]:
    """The COCO file (cut short when it should be malformed) and the names an error should mention."""
    ann.parent.mkdir()
    text = json.dumps(doc)
    ann.write_text(text[:-20] if kind == MALFORMED else text)
    return ann, [IMAGES[kind][0] if kind in IMAGES else ann.name]


def yolo_detection(root: Path, kind: str) -> tuple[Path, list[str]]:
    images, labels = root / "images" / "train", root / "labels" / "train"
    good(images)
    labels.mkdir(parents=True)
    lines = ["0 0.5 0.5 0.5 0.5"] + {NAN_BOX: ["0 nan 0.5 0.2 0.2"], NEGATIVE_BOX: ["0 0.5 0.5 -0.2 0.2"],
                                     BAD_CLASS: ["3 0.5 0.5 0.2 0.2"]}.get(kind, [])
    (labels / "good.txt").write_text("\n".join(lines) + "\n")
    if kind in IMAGES:
        p = write_image(kind, images)
        (labels / f"{p.stem}.txt").write_text("0 0.5 0.5 1 1\n")
    elif kind == LOOP:
        loop(images)
    data = root / "data.yaml"
    data.write_text("train: [images/train\nnames: {0: thing" if kind == MALFORMED else
                    "train: images/train\nnames: [thing]\n")
    return data, [IMAGES[kind][0] if kind in IMAGES else "data.yaml" if kind == MALFORMED else "good.txt"]


def voc_xml(filename: str | None, size: tuple[int, int], objects: list) -> str:
    """A VOC annotation; objects are (name, (xmin, ymin, xmax, ymax)) in 1-based pixels, as text."""
    h, w = size
    objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    name = f"<filename>{filename}</filename>" if filename else ""
    return f"<annotation>{name}<size><width>{w}</width><height>{h}</height></size>{objs}</annotation>"


def voc_detection(root: Path, kind: str) -> tuple[Path, list[str]]:
    images, anns = root / "JPEGImages", root / "Annotations"
    good(images)
    anns.mkdir()
    objects = [("thing", (3, 3, 10, 10))] + {NAN_BOX: [("thing", ("nan", 3, 10, 10))],
                                            NEGATIVE_BOX: [("thing", (10, 3, 4, 10))],
                                            BAD_CLASS: [("ghost", (3, 3, 10, 10))]}.get(kind, [])
    text = voc_xml("good.png", (16, 16), objects)
    (anns / "good.xml").write_text(text[:-30] if kind == MALFORMED else text)
    (root / "classes.txt").write_text("thing\n")
    if kind in IMAGES:
        p = write_image(kind, images)
        # a name that is not UTF-8 cannot be written into the XML: the reader then takes <stem>.jpg
        filename = None if kind == "non-UTF-8 file name" else p.name
        (anns / f"{p.stem}.xml").write_text(
            voc_xml(filename, IMAGES[kind][2] or (16, 16), [("thing", (1, 1, 1, 1))]), errors="surrogateescape")
    elif kind == LOOP:
        loop(images)
    return root, [IMAGES[kind][0] if kind in IMAGES else "good.xml"]


DETECTION = {"COCO": coco_detection, "YOLO": yolo_detection, "VOC": voc_detection}
DATA_KINDS = [MALFORMED, NAN_BOX, NEGATIVE_BOX, BAD_CLASS, LOOP]


def file_named(images: list, name: str):
    return next((im for im in images if Path(getattr(im, "file", None) or im.name).name == name), None)


@pytest.mark.parametrize("kind", [*IMAGES, *DATA_KINDS])
@pytest.mark.parametrize("fmt", DETECTION)
def test_detection_readers(tmp_path, fmt, kind):
    entry = f"detection {fmt}"
    path, names = DETECTION[fmt](tmp_path / "data", kind)
    ds = attempt(entry, kind, lambda: read_detection(path, fmt.lower()), names)
    outcome = "one line"
    if ds is not None:
        if kind in IMAGES:
            im = file_named(ds.images(), IMAGES[kind][0])
            assert im is not None and tuple(im.size) == IMAGES[kind][2]
        outcome = "skipped and counted" if ds.info["dropped"] else "works"
        assert ds.info["dropped"] <= 1 and len(file_named(ds.images(), "good.png").labels) == 1
    wanted = {NAN_BOX: "skipped and counted", NEGATIVE_BOX: "skipped and counted", LOOP: "works"}.get(kind, "one line")
    expect(entry, kind, outcome, wanted_for_image(kind, "one line") if kind in IMAGES else wanted)


# ---- segmentation: folder pairs, VOC, COCO, YOLO-seg --------------------------------------------------------

def mask(folder: Path, stem: str, size: tuple[int, int], value: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    a = np.zeros(size, np.uint8)
    a[size[0] // 4:, size[1] // 4:] = value
    Image.fromarray(a).save(folder / f"{stem}.png")


def with_masks(images: Path, masks: Path, kind: str) -> list[str]:
    """A good image and, for an image kind, the corpus file, each with its mask; the names an error may give."""
    good(images)
    mask(masks, "good", (16, 16), 5 if kind == BAD_CLASS else 1)
    if kind in IMAGES:
        p = write_image(kind, images)
        mask(masks, p.stem, IMAGES[kind][2] or (16, 16))
    elif kind == LOOP:
        loop(images)
    return [IMAGES[kind][0] if kind in IMAGES else "good.png"]


def class_file(root: Path, kind: str) -> list[str]:
    if kind == MALFORMED:
        (root / "classes.yaml").write_text("names: [background, thing\ncolors: {")
        return ["classes.yaml"]
    (root / "classes.txt").write_text("background\nthing\n")
    return []


def seg_pairs(root: Path, kind: str) -> tuple[Path, list[str]]:
    return root, with_masks(root / "images", root / "masks", kind) + class_file(root, kind)


def seg_voc(root: Path, kind: str) -> tuple[Path, list[str]]:
    return root, with_masks(root / "JPEGImages", root / "SegmentationClass", kind) + class_file(root, kind)


def seg_coco(root: Path, kind: str) -> tuple[Path, list[str]]:
    images, ann = root / "images" / "train", root / "annotations" / "instances_train.json"
    good(images)
    doc = {"images": [{"id": 1, "file_name": "good.png"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 7 if kind == BAD_CLASS else 1,
                            "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]}],
           "categories": [{"id": 1, "name": "thing"}]}
    if kind in IMAGES:
        doc["images"].append({"id": 2, "file_name": write_image(kind, images).name})
    elif kind == LOOP:
        loop(images)
    return write_coco(ann, doc, kind)


def seg_yolo(root: Path, kind: str) -> tuple[Path, list[str]]:
    images, labels = root / "images" / "train", root / "labels" / "train"
    good(images)
    labels.mkdir(parents=True)
    (labels / "good.txt").write_text(f"{3 if kind == BAD_CLASS else 0} 0.1 0.1 0.9 0.1 0.5 0.9\n")
    if kind in IMAGES:
        write_image(kind, images)
    elif kind == LOOP:
        loop(images)
    data = root / "data.yaml"
    data.write_text("train: [images/train\nnames: {0: thing" if kind == MALFORMED else
                    "train: images/train\nnames: [thing]\n")
    return data, [IMAGES[kind][0] if kind in IMAGES else "data.yaml" if kind == MALFORMED else "good.txt"]


SEGMENTATION = {"masks": seg_pairs, "VOC": seg_voc, "COCO": seg_coco, "YOLO": seg_yolo}


@pytest.mark.parametrize("kind", [*IMAGES, MALFORMED, BAD_CLASS, LOOP])
@pytest.mark.parametrize("fmt", SEGMENTATION)
def test_segmentation_readers(tmp_path, fmt, kind):
    entry = f"segmentation {fmt}"
    path, names = SEGMENTATION[fmt](tmp_path / "data", kind)
    ds = attempt(entry, kind, lambda: read_segmentation(path, fmt=fmt.lower()), names)
    if ds is not None:
        assert file_named(ds.images(), "good.png") is not None
        if kind in IMAGES:
            im = file_named(ds.images(), IMAGES[kind][0])
            assert im is not None and im.image.shape == (*IMAGES[kind][2], 3) and im.mask.shape == IMAGES[kind][2]
        else:
            assert len(ds.images()) == 1
    wanted = "works" if kind == LOOP else "one line"
    expect(entry, kind, "one line" if ds is None else "works",
           wanted_for_image(kind, "one line") if kind in IMAGES else wanted)


# ---- the command line: deepix predict, deepix denoise -------------------------------------------------------

def terminal(*args) -> tuple[int, str, str]:
    """`deepix ARGS` in this process, as the cli fixture runs it, but printing to a UTF-8 terminal that refuses
    what is not UTF-8 (as under en_US.UTF-8; the fixture's StringIO takes anything, so it cannot show that
    crash): (exit code, stdout, stderr)."""
    from deepix.cli import main
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict"), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out.flush()
    return e.value.code, out.buffer.getvalue().decode("utf-8", "surrogateescape"), err.getvalue()


def command(entry: str, kind: str, args: list, names: list[str]) -> str:
    """Run the command; exit 2 must come with one line on stderr naming the file. Returns its stdout."""
    t = time.perf_counter()
    try:
        code, out, err = terminal(*args)
    except BaseException:
        ROWS[entry, kind] = "TRACEBACK"
        raise
    assert time.perf_counter() - t < SECONDS, f"{entry} took {time.perf_counter() - t:.1f} s on {kind}"
    assert code in (0, 2), (code, err)
    if code == 2:
        one_line(err, names, kind)
        ROWS[entry, kind] = "one line, exit 2"
    else:
        assert "Traceback" not in err
        ROWS[entry, kind] = "works"
    return out


def source(tmp_path: Path, kind: str) -> Path:
    """The corpus file of this kind, or for the loop a folder holding one good image and the loop."""
    if kind != LOOP:
        return write_image(kind, tmp_path / "in")
    good(tmp_path / "in")
    loop(tmp_path / "in")
    return tmp_path / "in"


def digest(path: Path) -> str:
    """What a file, or every file in a folder, holds: to show that a failed command changed nothing there."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        h.update(os.fsencode(p.relative_to(path.parent)))
        h.update(p.read_bytes() if p.is_file() else b"")
    return h.hexdigest()


LOST: list[str] = []  # earlier outputs (a run, predictions, a denoised image) that a failed command changed


def kept(before: str, path: Path, what: str) -> None:
    if not path.exists() or digest(path) != before:
        LOST.append(what)
        pytest.fail(f"{what} changed")


@pytest.mark.parametrize("kind", [*IMAGES, LOOP])
def test_predict(tmp_path, digits_run, kind):
    run, entry = digits_run[0], "deepix predict"
    src, run_before = source(tmp_path, kind), digest(digits_run[0])
    names = [IMAGES[kind][0]] if kind in IMAGES else []
    out = command(entry, kind, ["predict", run, src], names)
    expect(entry, kind, ROWS[entry, kind], "works" if kind == LOOP else wanted_for_image(kind, "one line, exit 2"))
    if ROWS[entry, kind] == "works":
        assert out.count("good.png" if kind == LOOP else IMAGES[kind][0]) == 1, out
    else:
        # an earlier predictions.jsonl in -o survives a failed prediction
        earlier = tmp_path / "out" / "predictions.jsonl"
        earlier.parent.mkdir()
        earlier.write_text('{"image": "earlier.png", "class": "3"}\n')
        before = digest(earlier)
        assert terminal("predict", run, src, "-o", earlier.parent)[0] == 2
        kept(before, earlier, f"predictions.jsonl after {kind}")
    kept(run_before, run, "the run folder")


@pytest.mark.parametrize("kind", [*IMAGES, LOOP])
def test_denoise(tmp_path, kind):
    entry = "deepix denoise"
    src = source(tmp_path, kind)
    target = tmp_path / "out" / ("" if kind == LOOP else "clean.png")
    if not IMAGES.get(kind, ("", "", True))[2]:  # an earlier result there survives a failed denoise
        good(target.parent, target.name)
    before = digest(target) if target.exists() else None
    command(entry, kind, ["denoise", src, "-o", target, "--fast"], [IMAGES[kind][0]] if kind in IMAGES else [])
    expect(entry, kind, ROWS[entry, kind], "works" if kind == LOOP else wanted_for_image(kind, "one line, exit 2"))
    if ROWS[entry, kind] == "works":
        # the picture as a viewer shows it (upright, CMYK and palette made RGB), a little smoother
        shown = read_rgb(src / "good.png" if kind == LOOP else src).astype(np.float64)
        with Image.open(target / "good.png" if kind == LOOP else target) as im:
            a = np.asarray(im, dtype=np.float64) / (257 if im.mode.startswith("I") else 1)
        shown = shown.mean(2) if a.ndim == 2 else shown  # a 16-bit file stays grey
        assert a.shape == shown.shape and np.abs(a - shown).mean() < 10
    else:
        kept(before, target, f"the earlier denoised image after {kind}")


# ---- the service ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def service(digits_run):
    with TestClient(make_app([str(digits_run[0])])) as client:
        yield client


def upload(filename: str, data: bytes) -> tuple[bytes, dict]:
    """A multipart body with the file name as raw bytes, as curl sends a name that is not UTF-8."""
    body = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="' + os.fsencode(filename)
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + data + b"\r\n--b0undary--\r\n")
    return body, {"content-type": "multipart/form-data; boundary=b0undary"}


@pytest.mark.parametrize("kind", IMAGES)
def test_service(service, digits_run, kind):
    entry, (name, data, _) = "service", IMAGES[kind]
    body, headers = upload(name, data())
    t = time.perf_counter()
    try:
        r = service.post(f"/v1/models/{digits_run[0].name}/predict", content=body, headers=headers)
    except Exception:
        ROWS[entry, kind] = "TRACEBACK"
        raise
    assert time.perf_counter() - t < SECONDS
    if r.status_code == 200:
        assert len(r.json()["results"]) == 1
        outcome = "works"
    else:
        assert 400 <= r.status_code < 500 and r.headers["content-type"] == "application/json", r.text
        one_line(r.json()["error"], [""], kind)
        outcome = "4xx JSON"
    expect(entry, kind, outcome, wanted_for_image(kind, "4xx JSON"))
    if outcome != "works":
        ROWS[entry, kind] = f"{r.status_code} JSON"
    assert service.get("/healthz").status_code == 200


# ---- the table ------------------------------------------------------------------------------------------------

COLUMNS = {"classify folder": "folder", "classify folder (from disk)": "folder, disk", "detection COCO": "COCO",
           "detection YOLO": "YOLO", "detection VOC": "VOC", "segmentation masks": "seg pairs",
           "segmentation VOC": "seg VOC", "segmentation COCO": "seg COCO", "segmentation YOLO": "seg YOLO",
           "deepix predict": "predict", "deepix denoise": "denoise", "service": "service"}
KINDS = [*IMAGES, MALFORMED, NAN_BOX, NEGATIVE_BOX, BAD_CLASS, LOOP]
CELLS = {"skipped and counted": "skipped, counted", "one line, exit 2": "exit 2"}


def markdown() -> str:
    """The outcomes as a Markdown table, an input a row and an entry point a column, and the totals."""
    cols = [c for c in COLUMNS if any(e == c for e, _ in ROWS)]
    kinds = [k for k in KINDS if any(k == kind for _, kind in ROWS)]
    lines = ["| input | " + " | ".join(COLUMNS[c] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(CELLS.get(ROWS.get((c, kind), ""), ROWS.get((c, kind), ""))
                                                for c in cols) + " |")
    tracebacks = sum(v == "TRACEBACK" for v in ROWS.values())
    return "\n".join(lines) + (
        "\n\nworks: read and converted. skipped, counted: left out, and counted in the reader's info. one line: "
        "a UserError of one line naming the file. exit 2: the same through the command line (one line on stderr, "
        "no traceback). 4xx JSON: the service's one-line JSON error with that status, /healthz still 200. "
        "Empty: does not apply.\n\n"
        f"{len(ROWS)} inputs tried ({len(kinds)} kinds of input, {len(cols)} readers and entry points): "
        f"tracebacks {tracebacks}, runs lost {len(LOST)}.\n")


@pytest.fixture(scope="module", autouse=True)
def table():
    """After the last test: the table written to $DEEPIX_RELIABILITY_OUT, when it is set."""
    yield
    if os.environ.get("DEEPIX_RELIABILITY_OUT"):
        Path(os.environ["DEEPIX_RELIABILITY_OUT"]).write_text(markdown())
