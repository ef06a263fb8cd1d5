"""Pascal VOC: one XML per image (Annotations/), images in JPEGImages/, splits in ImageSets/Main/<split>.txt."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import UserError
from .boxes import DetDataset, DetImage
from .box_files import check_exist, clean_boxes, image_sizes, name_of, new_info, output_names, put_image, split_name

IMAGE_FOLDERS = ("JPEGImages", "images")


def read_voc(path: str | Path) -> DetDataset:
    """Read a VOC data set: a VOC2007-style folder, a VOCdevkit holding several, or any tree of XML files.

    Splits come from ImageSets/Main/{train,val,test,trainval}.txt (trainval only when there is no
    train or val), else from train/val/test folders in the tree, else one split "all". Each XML's
    image is its <filename> beside it or in a sibling JPEGImages/ or images/ folder. VOC corners
    are 1-based and inclusive, so (x1 - 1, y1 - 1, x2, y2) in pixels; difficult objects are kept
    and counted in info["difficult"]. Classes are the names found, sorted, unless a classes.txt
    (one name a line, as write_voc leaves) gives their order.
    """
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"not a folder of VOC annotations: {root}")
    items = _listed(root) or _tree(root)   # (split, xml file) pairs
    if not items:
        raise UserError(f"no VOC .xml annotations in {root}")
    info = {**new_info("voc", root), "difficult": 0, "not_voc_xml": 0}
    parsed = []
    for split, xml in items:
        a = _parse(xml)
        if a is None:
            info["not_voc_xml"] += 1
        else:
            parsed.append((split, xml, a))
    classes, listed = _classes(root, [a for _, _, a in parsed])
    images = [_image_for(xml, a["filename"]) for _, xml, a in parsed]
    check_exist(images, root)
    decoded = image_sizes(images, root)
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for (split, xml, a), image, found in zip(parsed, images, decoded):
        objects = a["objects"]
        for name, _, _ in objects:
            if name not in index:
                raise UserError(f"{xml}: class {name!r} is not in {listed}")
        info["difficult"] += sum(d for _, _, d in objects)
        info["dropped"] += sum(box is None for _, box, _ in objects)
        kept = [(name, box) for name, box, _ in objects if box is not None]
        boxes = [[x1 - 1, y1 - 1, x2, y2] for _, (x1, y1, x2, y2) in kept]
        labels = [index[name] for name, _ in kept]
        size = a["size"] or found
        boxes, labels = clean_boxes(boxes, labels, size, len(classes), str(xml), info)
        splits.setdefault(split, []).append(DetImage(str(image), size, boxes, labels, id=xml.stem))
    return DetDataset(root.name, classes, splits, info)


def _listed(root: Path) -> list[tuple[str, Path]]:
    """Pairs from ImageSets/Main of a VOC folder, or of each VOC20xx folder under a VOCdevkit."""
    years = [root] if (root / "Annotations").is_dir() else sorted(
        {p.parent for p in root.glob("*/Annotations")} | {p.parent for p in root.glob("*/*/Annotations")})
    items = []
    for year in years:
        main = year / "ImageSets" / "Main"
        # per-class lists (aeroplane_train.txt) have an underscore; split lists do not
        lists = {f.stem: f for f in sorted(main.glob("*.txt")) if "_" not in f.stem} if main.is_dir() else {}
        if "train" in lists or "val" in lists:
            lists.pop("trainval", None)
        if not lists:
            items += [("all", x) for x in sorted((year / "Annotations").glob("*.xml"))]
        for split, f in lists.items():
            xmls = [year / "Annotations" / f"{line.split()[0]}.xml" for line in f.read_text().splitlines() if line.strip()]
            check_exist(xmls, f, "annotation files")
            items += [(split, x) for x in xmls]
    return items


def _tree(root: Path) -> list[tuple[str, Path]]:
    items = []
    for x in sorted(root.rglob("*.xml")):
        parts = x.relative_to(root).parts[:-1]
        split = next((s for s in map(split_name, parts) if s), "all")
        items.append((split, x))
    return items


def _parse(xml: Path) -> dict | None:
    try:
        a = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as e:
        raise UserError(f"cannot read VOC annotation {xml}: {e}") from None
    if a.tag != "annotation":
        return None
    try:
        w, h = (int(float(a.findtext(f"size/{k}") or 0)) for k in ("width", "height"))
        objects = []
        for o in a.findall("object"):
            name = (o.findtext("name") or "").strip()
            if not name:
                raise UserError(f"{xml}: an <object> has no <name>")
            bb = o.find("bndbox")
            box = None if bb is None else tuple(float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            objects.append((name, box, (o.findtext("difficult") or "0").strip() in ("1", "true")))
    except (TypeError, ValueError):
        raise UserError(f"{xml}: a <size> or <bndbox> value is missing or not a number") from None
    filename = (a.findtext("filename") or "").strip() or f"{xml.stem}.jpg"
    return {"filename": filename, "size": (h, w) if w > 0 and h > 0 else None, "objects": objects}


def _classes(root: Path, parsed: list[dict]) -> tuple[list[str], str]:
    listed = next(iter(sorted(root.glob("classes.txt")) + sorted(root.glob("*/classes.txt"))), None)
    if listed is not None:
        return [s.strip() for s in listed.read_text().splitlines() if s.strip()], str(listed)
    return sorted({name for a in parsed for name, _, _ in a["objects"]}), "the class list"


def _image_for(xml: Path, filename: str) -> Path:
    name = Path(filename).name   # some tools write a full path there
    candidates = [xml.parent / name] + [xml.parent.parent / d / name for d in IMAGE_FOLDERS]
    return next((c for c in candidates if c.is_file()), candidates[1])


def write_voc(ds: DetDataset, out_dir: str | Path) -> Path:
    """Write Annotations/, JPEGImages/, ImageSets/Main/<split>.txt and classes.txt (the label order) under out_dir."""
    out = Path(out_dir)
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / d).mkdir(parents=True, exist_ok=True)
    names = output_names(ds)
    for split, images in ds.splits.items():
        ids = []
        for im in images:
            name = name_of(names, im)
            ids.append(Path(name).stem)
            if not (out / "Annotations" / f"{ids[-1]}.xml").exists():
                put_image(im, out / "JPEGImages" / name)
                _write_xml(im, name, ds.classes, out / "Annotations" / f"{ids[-1]}.xml")
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
    (out / "classes.txt").write_text("".join(c + "\n" for c in ds.classes))
    return out


def _write_xml(im: DetImage, name: str, classes: list[str], target: Path) -> None:
    def sub(parent, tag, text=None):
        e = ET.SubElement(parent, tag)
        if text is not None:
            e.text = str(text)
        return e

    a = ET.Element("annotation")
    sub(a, "folder", "JPEGImages")
    sub(a, "filename", name)
    size = sub(a, "size")
    sub(size, "width", im.size[1])
    sub(size, "height", im.size[0])
    sub(size, "depth", im.image.shape[0] if im.image is not None else 3)
    sub(a, "segmented", 0)
    for (x1, y1, x2, y2), c in zip(im.boxes.tolist(), im.labels.tolist()):
        o = sub(a, "object")
        sub(o, "name", classes[c])
        sub(o, "pose", "Unspecified")
        sub(o, "truncated", 0)
        sub(o, "difficult", 0)
        bb = sub(o, "bndbox")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (x1 + 1, y1 + 1, x2, y2)):
            sub(bb, tag, _num(v))
    ET.indent(a)
    ET.ElementTree(a).write(target, encoding="utf-8")


def _num(v: float) -> str:
    """Whole pixels as integers (what most VOC tools parse); fractions kept to 1e-4 px."""
    return f"{v:.4f}".rstrip("0").rstrip(".")
