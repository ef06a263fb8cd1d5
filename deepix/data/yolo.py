"""YOLO (Ultralytics layout): a data.yaml naming image folders or lists, one labels/*.txt per image."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..errors import UserError
from .boxes import DetDataset, DetImage
from .box_files import check_exist, clean_boxes, find_images, image_sizes, name_of, new_info, output_names, put_image

# keys of a data.yaml that are never splits
NOT_SPLITS = {"path", "names", "nc", "download", "yaml_file", "channels", "kpt_shape", "flip_idx"}


def read_yolo(path: str | Path) -> DetDataset:
    """Read a YOLO data set from its data.yaml (or the folder holding it).

    `train` / `val` / `test` are image folders or .txt lists of images, relative to `path`;
    each image's labels are the image path with the last /images/ made /labels/ and the
    suffix .txt, one `class cx cy w h` line (normalised to 0-1) per box. No label file: background.
    """
    yaml_file = find_yaml(Path(path))
    cfg = load_yaml(yaml_file)
    if not isinstance(cfg, dict):
        raise UserError(f"{yaml_file} is not a YOLO data.yaml: expected keys train, val, names")
    classes = class_names(cfg, yaml_file)
    root = root_of(cfg, yaml_file)
    info = new_info("yolo", yaml_file)
    splits = {}
    for key, value in cfg.items():
        if key in NOT_SPLITS or value is None or (key not in ("train", "val", "test") and not _is_path(root, value)):
            continue
        images = []
        paths = split_images(value, root, yaml_file, key)
        for p, size in zip(paths, image_sizes(paths, yaml_file)):
            boxes, labels = _read_labels(label_path(p), size)
            boxes, labels = clean_boxes(boxes, labels, size, len(classes), str(label_path(p)), info)
            images.append(DetImage(str(p), size, boxes, labels, id=p.stem))
        splits[key] = images
    if not splits:
        raise UserError(f"{yaml_file} names no splits: add train: and val: image folders")
    return DetDataset(yaml_file.parent.name, classes, splits, info)


def load_yaml(f: Path):
    """The YAML file's contents; a UserError of one line naming the file and where a malformed one breaks."""
    try:
        return yaml.safe_load(f.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {f}: {e}") from None
    except yaml.YAMLError as e:  # PyYAML's own message spans several lines, quoting the text
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"cannot read {f}: {getattr(e, 'problem', None) or 'not valid YAML'}{where}") from None


def label_path(image: str | Path) -> Path:
    """The Ultralytics rule: the last /images/ in the path becomes /labels/, the suffix .txt."""
    s, a, b = str(image), f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    head, sep, tail = s.rpartition(a)
    return Path(head + b + tail if sep else s).with_suffix(".txt")


def find_yaml(p: Path) -> Path:
    if p.is_file():
        return p
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (p / name).is_file():
            return p / name
    found = sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))
    if len(found) == 1:
        return found[0]
    raise UserError(f"no data.yaml in {p}: give the YOLO data set's .yaml file")


def class_names(cfg: dict, yaml_file: Path) -> list[str]:
    names = cfg.get("names")
    if isinstance(names, dict):
        n = max(int(k) for k in names) + 1 if names else 0
        by_int = {int(k): str(v) for k, v in names.items()}
        return [by_int.get(i, str(i)) for i in range(n)]
    if isinstance(names, list):
        return [str(v) for v in names]
    if isinstance(cfg.get("nc"), int):
        return [str(i) for i in range(cfg["nc"])]
    raise UserError(f"{yaml_file} has no 'names': list the class names")


def root_of(cfg: dict, yaml_file: Path) -> Path:
    # Ultralytics reads a relative `path` from its own datasets folder; beside the yaml is what works offline
    if cfg.get("path"):
        p = yaml_file.parent / str(cfg["path"])   # an absolute path stays itself
        if p.is_dir():
            return p
    return yaml_file.parent


def _is_path(root: Path, value) -> bool:
    """An extra key (a split named other than train/val/test) when it names a folder or a .txt list."""
    if not isinstance(value, str) or "\n" in value:
        return False
    try:
        p = root / value
        return p.is_dir() or (p.suffix == ".txt" and p.is_file())
    except OSError:
        return False


def split_images(value, root: Path, yaml_file: Path, key: str) -> list[Path]:
    out = []
    for v in value if isinstance(value, list) else [value]:
        p = Path(str(v))
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            out += find_images(p)
        elif p.suffix == ".txt" and p.is_file():
            lines = [s.strip() for s in p.read_text().splitlines() if s.strip()]
            # list entries are relative to the list's folder (Ultralytics: "./" entries)
            paths = [Path(s) if Path(s).is_absolute() else p.parent / s for s in lines]
            check_exist(paths, p)
            out += paths
        else:
            raise UserError(f"{yaml_file}: {key}: {p} is neither a folder of images nor a .txt list of them")
    return out


def _read_labels(lp: Path, size: tuple[int, int]) -> tuple[list, list]:
    if not lp.is_file():
        return [], []
    try:
        text = lp.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read labels {lp}: {e}") from None
    h, w = size
    boxes, labels = [], []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise UserError(f"{lp}:{n}: expected 5 fields 'class cx cy w h', found {len(parts)}")
        try:
            c, cx, cy, bw, bh = (float(x) for x in parts)
        except ValueError:
            raise UserError(f"{lp}:{n}: expected numbers 'class cx cy w h', found {line.strip()!r}") from None
        if c != int(c):
            raise UserError(f"{lp}:{n}: class id {parts[0]} is not a whole number")
        boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
        labels.append(int(c))
    return boxes, labels


def write_yolo(ds: DetDataset, out_dir: str | Path) -> Path:
    """Write images/<split>/, labels/<split>/ (one .txt per image, empty for background) and data.yaml."""
    out = Path(out_dir)
    names = output_names(ds)
    for split, images in ds.splits.items():
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for im in images:
            name = name_of(names, im)
            put_image(im, out / "images" / split / name)
            h, w = im.size
            lines = [f"{c} {(x1 + x2) / 2 / w:.7f} {(y1 + y2) / 2 / h:.7f} {(x2 - x1) / w:.7f} {(y2 - y1) / h:.7f}"
                     for (x1, y1, x2, y2), c in zip(im.boxes.tolist(), im.labels.tolist())]
            (out / "labels" / split / (Path(name).stem + ".txt")).write_text("".join(s + "\n" for s in lines))
    # no `path:` key, so the folder can move (Ultralytics then reads the splits beside the yaml)
    cfg = {**{split: f"images/{split}" for split in ds.splits},
           "nc": len(ds.classes), "names": dict(enumerate(ds.classes))}
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return out
