"""COCO instances JSON: one file per split (annotations/instances_<split>.json), boxes as x, y, w, h pixels."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from .boxes import DetDataset, DetImage
from .box_files import check_exist, clean_boxes, image_sizes, name_of, new_info, output_names, put_image, split_name


def read_coco(json_path: str | Path, images_dir: str | Path | None = None) -> DetDataset:
    """Read a COCO instances JSON, or every annotations/*.json of a folder (one split each).

    Images are looked for under images_dir, else beside the JSON, in a sibling images/, in
    ../images/<split> or ../<split>. Category ids become labels 0..K-1 in id order; crowd
    annotations are skipped and counted in info["crowd"].
    """
    files = json_files(Path(json_path))
    docs = {f: load_json(f) for f in files}
    cats = {}
    for f, doc in docs.items():
        for c in doc.get("categories", []):
            cats.setdefault(c["id"], c.get("name", str(c["id"])))
    ids = sorted(cats)
    label_of = {cid: i for i, cid in enumerate(ids)}
    info = {**new_info("coco", json_path), "crowd": 0}
    splits = {}
    for f, doc in docs.items():
        split = split_name(f.stem.removeprefix("instances_")) or split_name(f.parent.name) or (
            "all" if len(docs) == 1 else f.stem.removeprefix("instances_"))
        splits[split] = _read_split(f, doc, images_dir, split, label_of, len(ids), info)
    return DetDataset(Path(json_path).stem if Path(json_path).is_file() else Path(json_path).name,
                      [cats[i] for i in ids], splits, info)


def json_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    for pattern in ("annotations/instances_*.json", "annotations/*.json", "*.json", "*/*.json"):
        found = sorted(path.glob(pattern))
        if found:
            return found
    raise UserError(f"no COCO .json in {path} (looked in annotations/ and the folder itself)")


def load_json(f: Path) -> dict:
    try:
        doc = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read COCO annotations {f}: {e}") from None
    if not isinstance(doc, dict) or "images" not in doc:
        raise UserError(f"{f} is not COCO instances JSON: it has no 'images' list")
    return doc


def _read_split(f: Path, doc: dict, images_dir, split: str, label_of: dict, ncls: int, info: dict) -> list[DetImage]:
    images = doc["images"]
    root = images_root(f, images, images_dir, split)
    paths = [root / im["file_name"] for im in images]
    check_exist(paths, f)
    decoded = image_sizes(paths, f)
    per_image = {im["id"]: ([], []) for im in images}
    for a in doc.get("annotations", []):
        if a.get("iscrowd", 0):
            info["crowd"] += 1
            continue
        if a["image_id"] not in per_image:
            raise UserError(f"{f}: annotation {a.get('id')} is for image_id {a['image_id']}, which is not in 'images'")
        if a.get("category_id") not in label_of:
            raise UserError(f"{f}: annotation {a.get('id')} has category_id {a.get('category_id')}, "
                            "which is not in 'categories'")
        if not a.get("bbox") or len(a["bbox"]) != 4:
            info["dropped"] += 1
            continue
        x, y, w, h = (float(v) for v in a["bbox"])
        per_image[a["image_id"]][0].append([x, y, x + w, y + h])
        per_image[a["image_id"]][1].append(label_of[a["category_id"]])
    out = []
    for im, path, found in zip(images, paths, decoded):
        size = (im["height"], im["width"]) if im.get("height") and im.get("width") else found
        boxes, labels = per_image[im["id"]]
        boxes, labels = clean_boxes(boxes, labels, size, ncls, f"{f} (image {im['file_name']})", info)
        out.append(DetImage(str(path), size, boxes, labels, id=im["id"]))
    return out


def images_root(f: Path, images: list, images_dir, split: str) -> Path:
    if images_dir is not None:
        return Path(images_dir)
    here, up = f.parent, f.parent.parent
    raw = f.stem.removeprefix("instances_")
    candidates = [here, here / "images", up / "images" / split, up / "images" / raw, up / raw, up / split, up]
    if images:
        for c in candidates:
            if (c / images[0]["file_name"]).is_file():
                return c
    return here


def write_coco(ds: DetDataset, out_dir: str | Path) -> Path:
    """Write annotations/instances_<split>.json and images/<split>/ under out_dir; category ids are 1..K."""
    out = Path(out_dir)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    names = output_names(ds)
    categories = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(ds.classes)]
    for split, images in ds.splits.items():
        ints = [im.id for im in images]
        # keep the source's image ids where they already are unique integers
        keep_ids = all(isinstance(i, int) and not isinstance(i, bool) for i in ints) and len(set(ints)) == len(ints)
        doc_images, anns = [], []
        for k, im in enumerate(images):
            image_id = im.id if keep_ids else k + 1
            name = name_of(names, im)
            put_image(im, out / "images" / split / name)
            doc_images.append({"id": image_id, "file_name": name, "height": int(im.size[0]), "width": int(im.size[1])})
            for box, label in zip(im.boxes.tolist(), im.labels.tolist()):
                x1, y1, x2, y2 = box
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": label + 1,
                             "bbox": [round(x1, 4), round(y1, 4), round(x2 - x1, 4), round(y2 - y1, 4)],
                             "area": round((x2 - x1) * (y2 - y1), 4), "iscrowd": 0, "segmentation": []})
        doc = {"info": {"description": f"{ds.name}, written by deepix"}, "images": doc_images,
               "annotations": anns, "categories": categories}
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return out
