"""The detect task: box-aware augmentation, FCOS targets and decoding, and a whole run."""
import json

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

import deepix
from deepix.data.boxes import DetImage
from deepix.data.shapes import load_shapes
from deepix.tasks.detect import fcos_head
from deepix.tasks.detect.augment import BoxAugment, clip, mosaic, warp
from deepix.data.coco_eval import evaluate
from deepix.models.fcos import FCOS



def targets(rows, m=4):
    t = torch.zeros(len(rows), m, 5)
    t[..., 0] = -1
    for i, boxes in enumerate(rows):
        for j, b in enumerate(boxes):
            t[i, j] = torch.tensor(b, dtype=torch.float32)
    return t


def test_warp_moves_boxes_as_torchvision_v2_affine_does():
    h, w = 64, 80
    x = torch.rand(3, 3, h, w)
    t = targets([[[0, 10, 12, 30, 40]], [[1, 40, 20, 70, 50]], [[2, 5, 5, 20, 25]]])
    zoom, shift = torch.tensor([1.3, 0.8, 1.0]), torch.tensor([[5.0, -3.0], [-8.0, 6.0], [0.0, 0.0]])
    flip = torch.tensor([False, False, True])
    _, out = warp(x, t, zoom, shift, flip)
    for i in range(3):
        box = tv_tensors.BoundingBoxes(t[i, :1, 1:], format="XYXY", canvas_size=(h, w))
        ref = TF.affine(box, angle=0.0, translate=shift[i].tolist(), scale=float(zoom[i]), shear=[0.0, 0.0],
                        center=[w / 2, h / 2])
        if flip[i]:
            ref = TF.horizontal_flip(ref)
        assert torch.allclose(out[i, 0, 1:], torch.as_tensor(ref)[0], atol=1e-4)
        assert out[i, 0, 0] == t[i, 0, 0]


def test_warp_moves_pixels_with_boxes():
    # a bright square on black: after the warp the bright pixels sit inside the moved box
    x = torch.zeros(1, 1, 64, 64)
    x[..., 20:30, 10:20] = 1
    t = targets([[[0, 10, 20, 20, 30]]], 1)
    y, out = warp(x, t, torch.tensor([1.5]), torch.tensor([[6.0, -4.0]]), torch.tensor([True]))
    x1, y1, x2, y2 = out[0, 0, 1:].round().long().tolist()
    bright = (y[0, 0] > 0.9).nonzero()
    assert bright[:, 1].min() >= x1 - 1 and bright[:, 1].max() < x2 + 1
    assert bright[:, 0].min() >= y1 - 1 and bright[:, 0].max() < y2 + 1


def test_clip_drops_what_leaves_the_image():
    t = targets([[[0, -20, 10, 5, 30], [1, 50, 50, 70, 70], [2, 10, 10, 11, 40], [3, 0, 0, 10, 10]]])
    out = clip(t[..., :1], t[..., 1:], 64, 64)
    assert out[0, 0, 0] == -1                       # 80% of it outside: dropped
    assert out[0, 1].tolist() == [1, 50, 50, 64, 64]  # clipped to half its area, kept
    assert out[0, 2, 0] == -1                       # 1 px wide: dropped
    assert out[0, 3].tolist() == [3, 0, 0, 10, 10]


def test_mosaic_tiles_four_images_and_their_boxes():
    x = torch.rand(4, 3, 64, 64)
    t = targets([[[i, 0, 0, 64, 64]] for i in range(4)], 1)
    g = torch.Generator().manual_seed(0)
    y, out = mosaic(x, t, 1.0, g)
    assert y.shape == x.shape and out.shape[1] == 4
    boxes = out[0][out[0, :, 0] >= 0]
    assert len(boxes) == 4
    assert sorted(tuple(b[1:3].tolist()) for b in boxes) == [(0, 0), (0, 32), (32, 0), (32, 32)]
    assert boxes[0, 0] == 0  # the image itself stays in the first tile


def test_augment_is_seeded():
    x, t = torch.rand(4, 3, 64, 64), targets([[[0, 5, 5, 40, 40]]] * 4, 1)
    a = BoxAugment(mosaic=0.5)
    one = a(x, t, torch.Generator().manual_seed(3))
    two = a(x, t, torch.Generator().manual_seed(3))
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_assign_takes_points_near_the_centre_and_the_smaller_box():
    points, strides = FCOS.points(64, 64)
    t = targets([[[0, 8, 8, 40, 40], [1, 16, 16, 32, 32]]], 2)
    match, ltrb = fcos_head.assign(points, strides, t)
    pos = match[0] >= 0
    assert pos.any()
    # the point at (28, 28) (stride 8) lies in both boxes: the smaller one wins
    k = ((points[:, 0] == 28) & (points[:, 1] == 28) & (strides == 8)).nonzero()[0, 0]
    assert match[0, k] == 1
    assert torch.allclose(ltrb[0, k], torch.tensor([12.0, 12.0, 4.0, 4.0]))
    # a point far from both boxes is background
    far = ((points[:, 0] == 60) & (points[:, 1] == 60) & (strides == 8)).nonzero()[0, 0]
    assert match[0, far] == -1


def test_perfect_outputs_decode_to_the_truth_and_score_map_1():
    size = (96, 96)
    points, strides = FCOS.points(*size)
    rows = [[[0, 10, 12, 50, 60], [2, 60, 20, 90, 44]], [[1, 30, 30, 70, 80]]]
    t = targets(rows)
    match, ltrb = fcos_head.assign(points, strides, t)
    out = torch.full((2, len(points), 3 + 5), -10.0)
    for b in range(2):
        for p in (match[b] >= 0).nonzero().squeeze(1):
            out[b, p, int(t[b, match[b, p], 0])] = 10.0
            out[b, p, 3:7] = ltrb[b, p]
            out[b, p, -1] = 10.0
    preds = fcos_head.decode(out, points, size, conf=0.5)
    truth = [DetImage("", size, torch.tensor([r[1:] for r in rows[b]], dtype=torch.float32),
                      torch.tensor([r[0] for r in rows[b]])) for b in range(2)]
    assert [len(p["boxes"]) for p in preds] == [2, 1]
    assert evaluate(truth, preds, ["a", "b", "c"])["map"] == pytest.approx(1.0)
    # the loss is lowest for these outputs: every term near its floor except centre-ness's entropy
    parts = {}
    fcos_head.loss(out, t, points, strides, parts)
    assert parts["cls"] < 1e-3 and parts["box"] < 1e-4


@pytest.fixture(scope="module")
def tiny_run(detect_run):
    return detect_run  # fcos-n, 30 epochs on 64 scenes of one square at 32x32


def test_a_detect_run_writes_its_folder_report_and_coco_figures(tiny_run):
    run = tiny_run["run"]
    for name in ("config.yaml", "metrics.csv", "weights/best.safetensors", "state/last.pt", "report.html",
                 "plots/pr_curve.png", "plots/confusion.png", "plots/detections.png"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    test = summary["test"]
    assert test["evaluator"].startswith("pycocotools") and test["max_dets"] == 100
    assert 0 <= test["map"] <= test["map50"] <= 1
    assert test["map50"] > 0.5  # measured 0.68 (mAP 0.23) on its 16 test scenes
    assert set(test["per_class"]) == set(summary["data"]["classes"])
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "val_map" in header and "train_box_loss" in header
    html = (run / "report.html").read_text()
    assert "mAP@[.5:.95]" in html and "pycocotools" in html


def test_predict_writes_boxes_and_coco_results(tiny_run, tmp_path, cli):
    from PIL import Image
    from deepix.data.shapes import make_shapes
    paths = []
    for i, im in enumerate(make_shapes(2, size=(64, 80), seed=9)):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(im.image.permute(1, 2, 0).numpy()).save(paths[-1])
    cli("predict", tiny_run["run"], *paths, "-o", tmp_path / "out", "--conf", "0.01", check=True)
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert results and {"image_id", "category_id", "bbox", "score"} <= set(results[0])
    assert all(0 <= r["bbox"][0] and r["bbox"][0] + r["bbox"][2] <= 80 + 1e-3 for r in results)
    assert (tmp_path / "out" / "img0.png").is_file()
    dets = deepix.load(tiny_run["run"]).detect(paths, conf=0.01, max_dets=3)
    assert all(len(d["boxes"]) <= 3 for d in dets)


def test_resume_goes_on_from_the_last_epoch(tiny_run, copy_run):
    run = copy_run(tiny_run["run"])  # resuming writes into the run: the shared one stays at 30 epochs
    with pytest.raises(deepix.UserError, match="other data"):
        deepix.train(task="detect", resume=str(run), data="shapes", epochs=3, quiet=True)
    r = deepix.train(task="detect", resume=str(run), data=tiny_run["data"], epochs=31, quiet=True)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 32 and r["train"]["epochs_run"] == 31


def test_a_classifier_is_not_a_detector(tmp_path, cli):
    r = cli("train", "detect", "--model", "vgg7", "--project", tmp_path)
    assert r.returncode == 2 and "not a detector" in r.stderr and "fcos-n" in r.stderr


def test_train_detect_reads_a_yolo_data_set_from_disk(tmp_path, cli):
    from deepix.data.yolo import write_yolo
    ds = load_shapes(24, 8, 0, size=(60, 76), seed=4)
    ds.splits.pop("test")
    yaml_path = write_yolo(ds, tmp_path / "yolo")
    r = cli("train", "detect", "--data", yaml_path, "--imgsz", 64, "--epochs", 1, "--batch", 8,
                   "--project", tmp_path / "runs", "--quiet", check=True)
    summary = json.loads(next((tmp_path / "runs").rglob("summary.json")).read_text())
    assert summary["data"]["classes"] == ds.classes and summary["data"]["images"] == {"train": 19, "val": 8, "test": 5}
    assert "test" in summary and summary["data"]["imgsz"] == 64  # 20% of train held out (--test-fraction)
    r = cli("train", "detect", "--data", tmp_path / "nothing.yaml", "--project", tmp_path / "runs")
    assert r.returncode == 2 and "nothing.yaml" in r.stderr


def test_a_torchvision_detector_trains_and_predicts_by_name(tmp_path):
    ds = load_shapes(16, 8, 8, size=64, seed=3)
    r = deepix.train(task="detect", data=ds, model="tv:fcos_resnet50_fpn", epochs=1, batch=8,
                     project=str(tmp_path), threads=2, quiet=True)
    assert r["test"]["evaluator"].startswith("pycocotools")
    rows = (r["run"] / "metrics.csv").read_text().splitlines()
    assert "train_classification_loss" in rows[0] and len(rows) == 2
    found = deepix.load(r["run"]).detect([ds.splits["test"][0]], conf=0.0, max_dets=7)[0]
    assert len(found["boxes"]) <= 7 and found["labels"].min() >= 0 and found["labels"].max() < len(ds.classes)
    with pytest.raises(deepix.UserError, match="not a torchvision detector"):
        deepix.train(task="detect", data=ds, model="tv:resnet18", epochs=1, project=str(tmp_path), quiet=True)


def test_multiscale_batches_change_size_with_their_boxes_and_points():
    from deepix.models import Spec, build_model
    from deepix.tasks.detect.train import Detect
    task = Detect((96, 96), None, False, 0.6, multiscale=0.5)
    model = build_model("fcos-n", Spec(3, 5, (96, 96)))
    x = torch.full((2, 3, 96, 96), 128, dtype=torch.uint8)
    t = targets([[[0, 10, 10, 50, 50]], [[1, 20, 30, 90, 60]]], 1)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(12):
        xb, yb = task.prepare(x, t, True, g)
        side = xb.shape[-1]
        seen.add(side)
        assert side % 32 == 0 and 48 <= side <= 144
        assert torch.allclose(yb[..., 1:], t[..., 1:] * side / 96)
        assert model(xb).shape[1] == len(task.points)
    assert len(seen) > 1
    xb, _ = task.prepare(x, t, False)   # evaluation stays at the run's size
    assert xb.shape[-1] == 96 and model(xb).shape[1] == len(task.points)


def test_each_pyramid_level_keeps_its_own_head_statistics():
    # one running average over all levels normalised every level wrongly at evaluation
    from deepix.models import Spec, build_model
    model = build_model("fcos-n", Spec(3, 2, (128, 128)))
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 128, 128))
    means = [n.running_mean.clone() for n in model.cls_tower.norms[0]]
    assert len(means) == 3 and not torch.allclose(means[0], means[1]) and not torch.allclose(means[1], means[2])
    assert len(model.cls_tower.convs) == 2 and len(model.cls_tower.norms[0]) == 3  # convolutions shared, norms per level
