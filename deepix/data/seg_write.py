"""Segmentation data written to disk, for `deepix data convert --segment`: folder pairs, VOC, COCO, YOLO-seg.

Images are copied byte for byte where the source file is known (and VOC's JPEGImages gets a JPEG), else
saved as PNG; class indices travel as written, so masks -> voc / coco -> masks gives the same arrays back
(COCO has no void: void pixels come back as background).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ..errors import UserError
from .masks import SegDataset, SegImage, colours_of, palette
from .seg_formats import SEG_FORMATS, VOC_CLASSES, VOC_VOID_COLOUR, read_segmentation


def convert_segmentation(src: str | Path, dst: str | Path, to: str, fmt: str | None = None) -> SegDataset:
    """Convert segmentation data to another format (see write_segmentation); dst must be new or empty."""
    if to not in SEG_FORMATS:
        raise UserError(f"unknown segmentation format {to!r}: use one of {', '.join(SEG_FORMATS)}")
    dst = Path(dst)
    # never mix a conversion into files that are already there
    if dst.exists() and any(dst.iterdir()):
        raise UserError(f"{dst} is not empty: convert into a new folder")
    ds = read_segmentation(src, fmt=fmt)
    write_segmentation(ds, dst, to)
    return ds


def write_segmentation(ds: SegDataset, out_dir: str | Path, fmt: str) -> Path:
    write = {"masks": write_pairs, "voc": write_voc, "coco": write_coco, "yolo": write_yolo}.get(fmt)
    if write is None:
        raise UserError(f"unknown segmentation format {fmt!r}: use one of {', '.join(SEG_FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write(ds, out)
    return out


def _named(ds: SegDataset):
    """(split, image, its source file or None, an output stem unique in the whole set): VOC keeps every
    split in one folder, and the masks and labels are paired with their images by stem."""
    files = ds.info.get("files", {})
    taken = set()
    for split, images in ds.splits.items():
        sources = files.get(split, [])
        for i, im in enumerate(images):
            src = Path(sources[i]) if len(sources) == len(images) and Path(sources[i]).is_file() else None
            stem = base = Path(im.name).stem or str(i)
            k = 1
            while stem in taken:
                stem, k = f"{base}_{k}", k + 1
            taken.add(stem)
            yield split, im, src, stem


def _put(im: SegImage, src: Path | None, folder: Path, stem: str, jpeg: bool = False) -> str:
    """The image file under folder: the source copied when it can be, else saved; returns its file name."""
    folder.mkdir(parents=True, exist_ok=True)
    if src is not None and (not jpeg or src.suffix.lower() in (".jpg", ".jpeg")):
        name = stem + src.suffix.lower()
        shutil.copyfile(src, folder / name)
    else:
        name = stem + (".jpg" if jpeg else ".png")
        Image.fromarray(im.image).save(folder / name, quality=95)
    return name


def _palette_png(mask: np.ndarray, colours: list, target: Path) -> None:
    """A palette PNG: the pixels are the indices, the palette the class colours (VOC's beyond them)."""
    pal = (list(colours) + palette(256)[len(colours):])[:256]
    pal[255] = VOC_VOID_COLOUR
    p = Image.fromarray(mask)
    p.putpalette([v for c in pal for v in c])   # an L image becomes P: the pixels stay the indices
    target.parent.mkdir(parents=True, exist_ok=True)
    p.save(target)


def write_pairs(ds: SegDataset, out: Path) -> None:
    """<split>/images/ and <split>/masks/ (palette PNGs) and classes.yaml with names and colours."""
    colours = colours_of(ds)
    for split, im, src, stem in _named(ds):
        _put(im, src, out / split / "images", stem)
        _palette_png(im.mask, colours, out / split / "masks" / f"{stem}.png")
    cfg = {"names": list(ds.classes), "colors": [list(map(int, c)) for c in colours[:len(ds.classes)]]}
    (out / "classes.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))


def write_voc(ds: SegDataset, out: Path) -> None:
    """JPEGImages/, SegmentationClass/ palette PNGs, ImageSets/Segmentation/<split>.txt, and classes.txt
    when the classes are not VOC's 21."""
    colours, lists = colours_of(ds), {}
    for split, im, src, stem in _named(ds):
        _put(im, src, out / "JPEGImages", stem, jpeg=True)
        _palette_png(im.mask, colours, out / "SegmentationClass" / f"{stem}.png")
        lists.setdefault(split, []).append(stem)
    (out / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for split, stems in lists.items():
        (out / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(s + "\n" for s in stems))
    if list(ds.classes) != VOC_CLASSES:
        (out / "classes.txt").write_text("".join(c + "\n" for c in ds.classes))


def write_coco(ds: SegDataset, out: Path) -> None:
    """annotations/instances_<split>.json with one RLE annotation per class per image, images/<split>/.

    Class 0 is the background (no annotation) and class k is category id k; void pixels are left out, so
    they read back as background.
    """
    from pycocotools import mask as cm   # on use: C extension
    categories = [{"id": k, "name": n, "supercategory": ""} for k, n in enumerate(ds.classes) if k > 0]
    docs, ann_id = {}, 0
    for split, im, src, stem in _named(ds):
        doc = docs.setdefault(split, {"info": {"description": f"{ds.name}, written by deepix"}, "images": [],
                                      "annotations": [], "categories": categories})
        name = _put(im, src, out / "images" / split, stem)
        image_id = len(doc["images"]) + 1
        h, w = im.mask.shape
        doc["images"].append({"id": image_id, "file_name": name, "height": h, "width": w})
        for k in np.unique(im.mask).tolist():
            if 0 < k < len(ds.classes):
                rle = cm.encode(np.asfortranarray(im.mask == k, dtype=np.uint8))
                ann_id += 1
                doc["annotations"].append({
                    "id": ann_id, "image_id": image_id,
                    "category_id": k, "segmentation": {"size": [h, w], "counts": rle["counts"].decode()},
                    "area": int(cm.area(rle)), "bbox": [int(v) for v in cm.toBbox(rle)], "iscrowd": 0})
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split, doc in docs.items():
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


def write_yolo(ds: SegDataset, out: Path) -> None:
    """images/<split>/, labels/<split>/*.txt and data.yaml; class k is YOLO class k - 1 (0 is the background).

    Lossy: each class's connected regions become one outline each (find_contours, then approximate_polygon
    with tolerance 1), holes filled; void pixels are dropped. Vertices sit on the centres of the region's
    edge pixels, so Ultralytics (and read_segmentation) fill them back to the region's own pixels, and
    regions are listed largest first so one inside another's hole is drawn over it.
    """
    for split, im, src, stem in _named(ds):
        name = _put(im, src, out / "images" / split, stem)
        lines = [f"{k - 1} " + " ".join(f"{v:.6f}" for v in poly) for _, k, poly in _outlines(im.mask, len(ds.classes))]
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split / f"{Path(name).stem}.txt").write_text("".join(s + "\n" for s in lines))
    cfg = {**{split: f"images/{split}" for split in ds.splits}, "nc": len(ds.classes) - 1,
           "names": dict(enumerate(ds.classes[1:]))}
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))


def _outlines(mask: np.ndarray, ncls: int) -> list[tuple[int, int, list[float]]]:
    """(area, class, normalised x1 y1 x2 y2 ...) for each connected region of each class, largest first."""
    from skimage.measure import approximate_polygon, find_contours, label, regionprops   # on use: heavy import
    h, w = mask.shape
    out = []
    for k in range(1, ncls):
        for r in regionprops(label(mask == k, connectivity=1)):
            filled = np.pad(r.image_filled, 1).astype(np.float32)
            # at a level just under 1 the outline runs a hair outside the edge pixels' centres: rounded,
            # the vertices are those centres
            contour = max(find_contours(filled, 0.999), key=len)
            poly = np.round(approximate_polygon(contour, tolerance=1)) + np.array(r.bbox[:2]) - 1
            poly = poly[:-1] if len(poly) > 3 and (poly[0] == poly[-1]).all() else poly   # closed: drop the repeat
            while len(poly) < 3:   # one pixel, or a line: Ultralytics wants 3 points
                poly = np.concatenate([poly, poly[-1:]])
            # pixel centre i is at (i + 0.5) / size in YOLO's normalised coordinates
            xy = np.stack([(poly[:, 1] + 0.5) / w, (poly[:, 0] + 0.5) / h], 1)
            out.append((int(r.area), k, xy.ravel().tolist()))
    return sorted(out, key=lambda t: -t[0])
