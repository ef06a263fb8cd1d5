"""Detection data on disk: tell COCO / YOLO / VOC apart, read any of them, convert between them.

The readers share the checks here, so bad input means the same thing in every format:
boxes reaching outside the image are clipped (counted in info["clipped"]), empty or inverted
boxes are dropped (info["dropped"]), and everything else a user can get wrong (an unknown
class id, images listed but missing, unreadable annotation files) is a UserError naming the file.
"""
from __future__ import annotations

from pathlib import Path


from ..errors import UserError
from .boxes import DetDataset
from .coco import read_coco, write_coco
from .voc import read_voc, write_voc
from .yolo import read_yolo, write_yolo

FORMATS = ("coco", "yolo", "voc")


def detect_format(path: str | Path) -> str:
    """"coco", "yolo" or "voc", told from the path: a .json, a data.yaml, or a folder of .xml files."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"not found: {p}")
    if p.is_file():
        kind = {".json": "coco", ".yaml": "yolo", ".yml": "yolo"}.get(p.suffix.lower())
        if kind:
            return kind
    elif list(p.glob("*.yaml")) or list(p.glob("*.yml")):
        return "yolo"
    elif list(p.glob("annotations/*.json")) or list(p.glob("*.json")) or list(p.glob("*/*.json")):
        return "coco"
    elif next(p.rglob("*.xml"), None) is not None:
        return "voc"
    raise UserError(f"cannot tell the detection format of {p}: expected a COCO .json (or a folder with "
                    "annotations/*.json), a YOLO data.yaml, or VOC .xml files; name it with --from")


def read_detection(path: str | Path, fmt: str | None = None) -> DetDataset:
    """Read a COCO, YOLO or VOC data set (the format told from the path unless given)."""
    fmt = fmt or detect_format(path)
    if not Path(path).exists():
        raise UserError(f"not found: {path}")
    if fmt == "coco":
        return read_coco(path)
    if fmt == "yolo":
        return read_yolo(path)
    if fmt == "voc":
        return read_voc(path)
    raise UserError(f"unknown detection format {fmt!r}: use one of {', '.join(FORMATS)}")


def write_detection(ds: DetDataset, out_dir: str | Path, fmt: str) -> Path:
    """Write ds in the given format under out_dir (images copied); returns out_dir."""
    write = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc}.get(fmt)
    if write is None:
        raise UserError(f"unknown detection format {fmt!r}: use one of {', '.join(FORMATS)}")
    write(ds, out_dir)
    return Path(out_dir)


def convert(src: str | Path, dst: str | Path, to: str, fmt: str | None = None) -> DetDataset:
    """Convert a detection data set to another format: images copied, class names and splits kept."""
    if to not in FORMATS:
        raise UserError(f"unknown detection format {to!r}: use one of {', '.join(FORMATS)}")
    dst = Path(dst)
    # never mix a conversion into files that are already there
    if dst.exists() and any(dst.iterdir()):
        raise UserError(f"{dst} is not empty: convert into a new folder")
    ds = read_detection(src, fmt)
    write_detection(ds, dst, to)
    return ds
