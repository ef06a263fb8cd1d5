"""Segmentation data on disk: folder pairs (images/ + masks/), Pascal VOC, COCO and YOLO-seg, told apart
and read into a SegDataset; the writers for `deepix data convert --segment` are in seg_write.py.

Every reader ends in the same checks, so bad input means the same thing in every format: a mask the size
of its image, class indices within the class list (or the ignore index), an image without a mask, an
unreadable file, all a UserError naming the file. Images come back RGB uint8, photos turned upright by their
EXIF orientation (as labelling tools show them); masks are never turned: they are written as shown.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from ..errors import UserError
from . import yolo
from .box_files import split_name
from .coco import images_root, json_files, load_json
from .folder import IMAGE_EXTENSIONS, to_l_or_rgb
from .masks import SegDataset, SegImage, palette

SEG_FORMATS = ("masks", "voc", "coco", "yolo")
SPLITS = ("train", "val", "test")
VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]
VOC_VOID_COLOUR = (224, 224, 192)   # the colour VOC's palette gives index 255: RGB renders of VOC masks use it


def detect_seg_format(path: str | Path) -> str:
    """"masks", "voc", "coco" or "yolo", told from the path (see read_segmentation)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"not found: {p}")
    if p.is_file():
        kind = {".json": "coco", ".yaml": "yolo", ".yml": "yolo"}.get(p.suffix.lower())
        if kind:
            return kind
    elif _voc_root(p) is not None:
        return "voc"
    elif _pair_dirs(p):
        return "masks"
    elif list(p.glob("*.yaml")) or list(p.glob("*.yml")):
        return "yolo"
    elif list(p.glob("annotations/*.json")) or list(p.glob("*.json")):
        return "coco"
    raise UserError(f"no segmentation data recognised in {p}: expected images/ + masks/ folders (optionally "
                    "under train/ val/ test/), a VOC folder (JPEGImages/ + SegmentationClass/), a COCO .json "
                    "or a YOLO data.yaml; name the format with --from")


def read_segmentation(path: str | Path, ignore_index: int = 255, fmt: str | None = None) -> SegDataset:
    """Read segmentation data: folder pairs ("masks"), Pascal VOC, COCO (polygons, RLE) or YOLO-seg polygons.

    ignore_index is the mask value that means void: it passes every check, and is what VOC's 255 border and
    COCO's crowd regions become. Masks are otherwise read as they are (class indices, no remapping).
    """
    if not 0 <= ignore_index <= 255:
        raise UserError(f"ignore index {ignore_index} does not fit a uint8 mask: use 0-255 (255 is usual)")
    fmt = fmt or detect_seg_format(path)
    read = {"masks": _read_pairs, "voc": _read_voc, "coco": _read_coco, "yolo": _read_yolo}.get(fmt)
    if read is None:
        raise UserError(f"unknown segmentation format {fmt!r}: use one of {', '.join(SEG_FORMATS)}")
    if not Path(path).exists():
        raise UserError(f"not found: {path}")
    ds = read(Path(path), ignore_index)
    if not ds.images():
        raise UserError(f"no images in {path}: the {fmt} data set holds none; add images and their masks")
    ds.info = {"format": fmt, "source": str(path), **ds.info}
    return ds


# ---- shared: files to arrays, the checks ------------------------------------------------------------------

def load_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()   # truncated files only fail once the pixels are read
            return np.asarray(to_l_or_rgb(ImageOps.exif_transpose(im)).convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image {path}: {e}; replace or remove the file") from None


def load_mask(path: Path, colours: list | None, where: str, ignore: int = 255) -> tuple[np.ndarray, list | None]:
    """The mask's class indices, and the palette of a palette PNG (its colours per index), else None.

    L and P masks are the indices themselves (P as VOC: the pixel values, not the colours shown); an RGB
    mask is mapped back to indices by the class colours, VOC's void colour becoming the ignore index.
    """
    try:
        with Image.open(path) as im:
            im.load()
            pal = im.getpalette() if im.mode in ("P", "PA") else None
            a = np.asarray(im)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read mask {path}: {e}; replace or remove the file") from None
    if a.ndim == 3 and a.shape[2] == 2:   # LA, PA: the first channel holds the indices, the second alpha
        a = a[..., 0]
    if a.ndim == 3:
        return _from_colours(a[..., :3], colours, path, where, ignore), None
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if a.size and a.max() > 255:
        raise UserError(f"cannot read mask {path}: index {int(a.max())} does not fit 0-255; save it as an 8-bit PNG")
    return a.astype(np.uint8), pal


def _from_colours(rgb: np.ndarray, colours: list | None, path: Path, where: str, ignore: int) -> np.ndarray:
    if not colours:
        raise UserError(f"{path} is an RGB mask: give the class colours (colors: [[r, g, b], ...]) in "
                        "classes.yaml, or save the masks as index or palette PNGs")
    key = np.array([1 << 16, 1 << 8, 1])   # a colour as one integer
    index = {k: i for i, k in enumerate((np.asarray(colours, np.int64) @ key).tolist())}
    index.setdefault(int(np.array(VOC_VOID_COLOUR) @ key), ignore)
    values, inverse = np.unique(rgb.astype(np.int64) @ key, return_inverse=True)
    unknown = [v for v in values.tolist() if v not in index]
    if unknown:
        c = unknown[0]
        raise UserError(f"{path}: colour ({c >> 16}, {(c >> 8) & 255}, {c & 255}) is not one of the class "
                        f"colours ({where}); add it to colors: or fix the mask")
    return np.array([index[v] for v in values.tolist()], np.uint8)[inverse.reshape(rgb.shape[:2])]


def _check(image: np.ndarray, mask: np.ndarray, ncls: int, ignore: int, mask_file, image_file, where: str) -> None:
    if mask.shape != image.shape[:2]:
        raise UserError(f"{mask_file}: the mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_file} is "
                        f"{image.shape[1]}x{image.shape[0]} (width x height); masks must match their images")
    bad = [v for v in np.unique(mask).tolist() if v >= ncls and v != ignore]
    if bad:
        raise UserError(f"{mask_file}: class index {bad[0]} is beyond the {ncls} classes (0-{ncls - 1}) and not "
                        f"the ignore index {ignore}; fix the mask or the class list ({where})")


def _class_file(*folders: Path) -> tuple[list[str] | None, list | None, str]:
    """Class names (and colours) from classes.txt, or classes.yaml / data.yaml with names: and colors:."""
    for folder in folders:
        txt = folder / "classes.txt"
        if txt.is_file():
            return [s.strip() for s in txt.read_text().splitlines() if s.strip()], None, str(txt)
        for name in ("classes.yaml", "classes.yml", "data.yaml", "data.yml"):
            f = folder / name
            if not f.is_file():
                continue
            cfg = yolo.load_yaml(f)
            if not isinstance(cfg, dict) or cfg.get("names") is None:
                continue
            names = yolo.class_names(cfg, f)
            colours = cfg.get("colors", cfg.get("colours"))
            if colours is not None:
                ok = isinstance(colours, list) and all(isinstance(c, list) and len(c) == 3 for c in colours)
                if not ok or len(colours) < len(names):
                    raise UserError(f"{f}: colors: must list one [r, g, b] per class ({len(names)} classes)")
                colours = [tuple(int(v) for v in c) for c in colours]
            return names, colours, str(f)
    return None, None, "no classes.txt or classes.yaml"


def _finish(name: str, items: list, classes, colours, where: str, ignore: int, pal, info: dict) -> SegDataset:
    """Check every (split, image file, image, mask file, mask), name the classes when no file did, build it."""
    if classes is None:   # the indices seen name the classes
        top = max((int(m[m != ignore].max(initial=0)) for *_, m in items), default=0)
        classes = ["background"] + [f"class{i}" for i in range(1, top + 1)]
    if colours is None and pal and len(pal) >= 3 * len(classes):
        colours = [tuple(pal[3 * i:3 * i + 3]) for i in range(len(classes))]
    splits, files = {}, {}
    for split, image_file, image, mask_file, mask in items:
        _check(image, mask, len(classes), ignore, mask_file, image_file, where)
        splits.setdefault(split, []).append(SegImage(Path(image_file).name, image, mask))
        files.setdefault(split, []).append(str(image_file))
    # the source files, for writers that copy images rather than re-encode them
    return SegDataset(name, list(classes), splits, {**info, "files": files}, colours)


# ---- folder pairs -----------------------------------------------------------------------------------------

def _pair_dirs(root: Path) -> list[tuple[str, Path, Path]]:
    """(split, images dir, masks dir): images/ + masks/, or <split>/images/ + <split>/masks/, or images/<split>/."""
    found = [(s, root / s / "images", root / s / "masks") for s in SPLITS]
    found += [(s, root / "images" / s, root / "masks" / s) for s in SPLITS]
    found = [f for f in found if f[1].is_dir() and f[2].is_dir()]
    if not found and (root / "images").is_dir() and (root / "masks").is_dir():
        found = [("train", root / "images", root / "masks")]
    return found


def _read_pairs(root: Path, ignore: int) -> SegDataset:
    dirs = _pair_dirs(root)
    if not dirs:
        raise UserError(f"no images/ and masks/ folders in {root} (nor under train/ val/ test/)")
    classes, colours, where = _class_file(root)
    items, pal = [], None
    for split, images, masks in dirs:
        for f in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
                        and not p.name.startswith(".")):
            m = masks / f"{f.stem}.png"
            if not m.is_file():
                raise UserError(f"image {f} has no mask: expected {m}")
            mask, p = load_mask(m, colours, where, ignore)
            pal = pal or p
            items.append((split, f, load_image(f), m, mask))
    return _finish(root.name, items, classes, colours, where, ignore, pal, {})


# ---- Pascal VOC -------------------------------------------------------------------------------------------

def _voc_root(p: Path) -> Path | None:
    """The folder holding JPEGImages/ and SegmentationClass/: p, or a VOC20xx under it or under VOCdevkit/."""
    for c in [p, *sorted(p.glob("VOC*")), *sorted(p.glob("*/VOC*"))]:
        if (c / "JPEGImages").is_dir() and (c / "SegmentationClass").is_dir():
            return c
    return None


def _read_voc(path: Path, ignore: int) -> SegDataset:
    root = _voc_root(path)
    if root is None:
        raise UserError(f"no VOC segmentation in {path}: expected JPEGImages/ and SegmentationClass/")
    lists = {f.stem: f for f in sorted((root / "ImageSets" / "Segmentation").glob("*.txt"))}
    if "train" in lists or "val" in lists:
        lists.pop("trainval", None)
    if lists:
        ids = {split_name(s) or s: [ln.split()[0] for ln in f.read_text().splitlines() if ln.strip()]
               for s, f in lists.items()}
    else:   # no lists: every image with a mask is training data
        ids = {"train": [m.stem for m in sorted((root / "SegmentationClass").glob("*.png"))]}
    classes, colours, where = _class_file(path, root)
    if classes is None:
        classes, where = VOC_CLASSES, "VOC's 21 classes; a classes.txt names others"
    rgb = colours or palette(len(classes))   # masks saved as RGB renders: VOC's own colours
    items, pal = [], None
    for split, names in ids.items():
        for n in names:
            image = next((p for p in (root / "JPEGImages" / (n + x) for x in (".jpg", *sorted(IMAGE_EXTENSIONS)))
                          if p.is_file()), root / "JPEGImages" / f"{n}.jpg")
            m = root / "SegmentationClass" / f"{n}.png"
            if not m.is_file():
                raise UserError(f"image {image} has no mask: expected {m}")
            if not image.is_file():
                raise UserError(f"mask {m} has no image: expected {image}")
            mask, p = load_mask(m, rgb, where)
            pal = pal or p
            if ignore != 255:   # VOC's border is 255 by the format: one void value in the data set
                mask = np.where(mask == 255, ignore, mask).astype(np.uint8)
            items.append((split, image, load_image(image), m, mask))
    return _finish(root.name, items, classes, colours, where, ignore, pal, {})


# ---- COCO -------------------------------------------------------------------------------------------------

def _read_coco(path: Path, ignore: int) -> SegDataset:
    """Instances JSON(s) rasterised: background 0, category k (in id order) k + 1, crowd regions void.

    Overlapping instances: larger ones are painted first and smaller ones on top, so an object lying on
    another (a cup on a table) stays visible; crowd regions become void only where no instance lies.
    """
    files = json_files(path)
    docs = {f: load_json(f) for f in files}
    cats = {}
    for doc in docs.values():
        for c in doc.get("categories", []):
            cats.setdefault(c["id"], c.get("name", str(c["id"])))
    ids = sorted(cats)
    if len(ids) > 254:
        raise UserError(f"{path}: {len(ids)} categories do not fit a uint8 mask (254 at most)")
    index = {cid: i + 1 for i, cid in enumerate(ids)}
    classes = ["background"] + [str(cats[i]) for i in ids]
    items, info = [], {"crowd": 0, "no_mask": 0}
    for f, doc in docs.items():
        split = split_name(f.stem.removeprefix("instances_")) or split_name(f.parent.name) or "train"
        root = images_root(f, doc["images"], None, split)
        anns = {}
        for a in doc.get("annotations", []):
            if a.get("category_id") not in index:
                raise UserError(f"{f}: annotation {a.get('id')} has category_id {a.get('category_id')}, "
                                "which is not in 'categories'")
            anns.setdefault(a.get("image_id"), []).append(a)
        stray = set(anns) - {im["id"] for im in doc["images"]}
        if stray:
            raise UserError(f"{f}: annotations are for image_id {sorted(stray, key=str)[0]}, which is not in 'images'")
        for im in doc["images"]:
            file = root / im["file_name"]
            if not file.is_file():
                raise UserError(f"image {file} listed in {f} is missing on disk")
            image = load_image(file)
            h, w = image.shape[:2]
            if (im.get("height"), im.get("width")) not in ((h, w), (None, None)):
                raise UserError(f"{f}: image {im['file_name']} is {im.get('width')}x{im.get('height')} there but "
                                f"{w}x{h} on disk; fix its width and height")
            mask = _coco_mask(anns.get(im["id"], []), h, w, index, ignore, f, info)
            items.append((split, file, image, f, mask))
    return _finish(path.stem if path.is_file() else path.name, items, classes, None,
                   f"the categories of {path}", ignore, None, info)


def _coco_mask(anns: list, h: int, w: int, index: dict, ignore: int, f: Path, info: dict) -> np.ndarray:
    from pycocotools import mask as cm   # on use: C extension
    painted = []
    for a in anns:
        seg = a.get("segmentation")
        if isinstance(seg, list):   # polygons; 2-point ones would be read as boxes by frPyObjects
            polys = [p for p in seg if len(p) >= 6]
            rle = cm.merge(cm.frPyObjects(polys, h, w)) if polys else None
        elif isinstance(seg, dict) and "counts" in seg:
            if list(seg.get("size", [h, w])) != [h, w]:
                raise UserError(f"{f}: annotation {a.get('id')} is an RLE of size {seg.get('size')} on an image "
                                f"of {h}x{w}; fix its size")
            rle = cm.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else seg
        else:
            rle = None
        if rle is None:
            info["no_mask"] += 1
            continue
        m = cm.decode(rle).astype(bool)
        painted.append((bool(a.get("iscrowd", 0)), -int(m.sum()), index[a["category_id"]], m))
    mask = np.zeros((h, w), np.uint8)
    instances = sorted((p for p in painted if not p[0]), key=lambda p: p[1])   # stable: larger first
    for _, _, k, m in instances:
        mask[m] = k
    labelled = mask > 0
    for _, _, _, m in (p for p in painted if p[0]):
        info["crowd"] += 1
        mask[m & ~labelled] = ignore
    return mask


# ---- YOLO segmentation ------------------------------------------------------------------------------------

def _read_yolo(path: Path, ignore: int) -> SegDataset:
    """A data.yaml (Ultralytics layout) with labels/*.txt lines `class x1 y1 x2 y2 ...` (normalised polygon).

    Polygons are filled in file order, class c as index c + 1 over background 0, the way Ultralytics draws
    them (vertices at x * width, edges included); an image without a label file is all background.
    """
    yaml_file = yolo.find_yaml(path)
    cfg = yolo.load_yaml(yaml_file)
    if not isinstance(cfg, dict):
        raise UserError(f"{yaml_file} is not a YOLO data.yaml: expected keys train, val, names")
    names = yolo.class_names(cfg, yaml_file)
    if len(names) > 254:
        raise UserError(f"{yaml_file}: {len(names)} classes do not fit a uint8 mask (254 at most)")
    root = yolo.root_of(cfg, yaml_file)
    items = []
    for key in SPLITS:
        if cfg.get(key) is None:
            continue
        for f in yolo.split_images(cfg[key], root, yaml_file, key):
            image = load_image(f)
            lp = yolo.label_path(f)
            items.append((key, f, image, lp, _yolo_mask(lp, *image.shape[:2], len(names))))
    if not items and not any(cfg.get(k) for k in SPLITS):
        raise UserError(f"{yaml_file} names no splits: add train: and val: image folders")
    return _finish(yaml_file.parent.name, items, ["background"] + names, None, f"the names of {yaml_file}",
                   ignore, None, {})


def _yolo_mask(lp: Path, h: int, w: int, ncls: int) -> np.ndarray:
    canvas = Image.new("L", (w, h), 0)
    if not lp.is_file():
        return np.asarray(canvas)
    try:
        lines = lp.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read labels {lp}: {e}") from None
    draw = ImageDraw.Draw(canvas)
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 7 or len(parts) % 2 == 0:
            raise UserError(f"{lp}:{n}: expected 'class x1 y1 x2 y2 x3 y3 ...' (3 or more points), found "
                            f"{len(parts)} fields; box labels are not segmentation labels")
        try:
            c, xy = float(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            raise UserError(f"{lp}:{n}: expected numbers, found {line.strip()!r}") from None
        if c != int(c) or not 0 <= c < ncls:
            raise UserError(f"{lp}:{n}: class id {parts[0]} is not one of the {ncls} names (0-{ncls - 1})")
        draw.polygon([(x * w, y * h) for x, y in zip(xy[::2], xy[1::2])], fill=int(c) + 1)
    return np.asarray(canvas)

