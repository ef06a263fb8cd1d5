"""The segment task: its figures against hand-computed ones, augmentation that moves masks with images, the
built-in shapes' masks, a whole run on a tiny folder of pairs, predict on an image of another size, and bad
input as one line."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepix.data.masks import load_shapes_masks
from deepix.tasks.segment.augment import SegAugment
from deepix.tasks.segment.metrics import PixelCounts, figures, image_iou
from deepix.tasks.segment.train import seg_loss


def test_figures_match_a_hand_computed_iou():
    truth = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 2]])
    counts = PixelCounts(4, 255)
    counts.update(pred, truth)
    f = counts.figures(["bg", "a", "b", "never"])
    # per class (the void pixel counts for nothing), by hand:
    # bg: truth at (0,0) (0,1) (1,0), predicted at (0,0) (1,0) (1,2): 2 shared, union 4
    assert f["iou_per_class"]["bg"] == pytest.approx(2 / 4, abs=1e-4)
    # a: truth at (0,2) (0,3), predicted at (0,1) (0,2) (0,3): 2 shared, union 3
    assert f["iou_per_class"]["a"] == pytest.approx(2 / 3, abs=1e-4)
    # b: truth at (1,1) (1,2), predicted at (1,1): 1 shared, union 2
    assert f["iou_per_class"]["b"] == pytest.approx(1 / 2, abs=1e-4)
    assert f["iou_per_class"]["never"] is None and f["absent"] == ["never"]
    assert f["miou"] == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3)
    assert f["pixel_accuracy"] == pytest.approx(5 / 7)
    assert f["dice_per_class"]["a"] == pytest.approx(2 * 2 / (2 + 3), abs=1e-4)
    # torchmetrics' own IoU for the present classes agrees
    from torchmetrics.functional.classification import multiclass_jaccard_index
    tm = multiclass_jaccard_index(pred.flatten(), truth.flatten(), 4, average="none", ignore_index=255)
    assert torch.allclose(tm[:3], torch.tensor([2 / 4, 2 / 3, 1 / 2]))
    assert image_iou(pred.numpy(), truth.numpy(), 4, 255) == pytest.approx(f["miou"])


def test_loss_skips_void_and_falls_when_right():
    y = torch.randint(0, 3, (2, 8, 8))
    good = torch.nn.functional.one_hot(y, 3).permute(0, 3, 1, 2).float() * 10
    bad = torch.zeros(2, 3, 8, 8)
    for kind in ("cross-entropy", "focal", "dice", "cross-entropy+dice"):
        assert seg_loss(good, y, kind, None, 255) < seg_loss(bad, y, kind, None, 255)
    void = y.clone()
    void[:, :4] = 255   # whatever is predicted there counts for nothing
    noisy = good.clone()
    noisy[:, :, :4] = torch.randn(2, 3, 4, 8) * 10
    assert seg_loss(noisy, void, "cross-entropy+dice", None, 255) == pytest.approx(
        seg_loss(good, void, "cross-entropy+dice", None, 255).item(), abs=1e-4)


def test_augment_moves_the_mask_with_the_image():
    x = torch.zeros(4, 3, 32, 32)
    y = torch.zeros(4, 32, 32, dtype=torch.uint8)
    x[:, :, 8:20, 5:14] = 1.0
    y[:, 8:20, 5:14] = 2
    ax, ay = SegAugment(brightness=0, contrast=0)(x, y, torch.Generator().manual_seed(0))
    assert set(ay.unique().tolist()) <= {0, 2}           # nearest neighbour: no class in between
    bright, marked = ax[:, 0] > 0.5, ay == 2
    agree = (bright == marked).float().mean()
    assert agree > 0.97 and not torch.equal(ay, y)


def test_shapes_masks_match_the_boxes():
    ds = load_shapes_masks(6, 1, 1, size=64)
    im = ds.splits["train"][0]
    assert im.image.shape == (64, 64, 3) and im.mask.shape == (64, 64)
    assert ds.classes[0] == "background" and im.mask.max() < len(ds.classes)
    assert (im.mask > 0).any() or all((i.mask == 0).all() for i in ds.splits["train"])


def square_pairs(root, n=48, side=32, seed=0):
    """A folder of pairs: a bright square (class 1) and a dim disc (class 2) on a dark noisy ground."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:side, :side]
    for i in range(n):
        img = rng.integers(0, 40, (side, side, 3)).astype(np.uint8)
        mask = np.zeros((side, side), np.uint8)
        x0, y0, s = rng.integers(2, side // 2), rng.integers(2, side // 2), rng.integers(6, side // 2)
        img[y0:y0 + s, x0:x0 + s] = 230
        mask[y0:y0 + s, x0:x0 + s] = 1
        cx, cy, r = rng.integers(6, side - 6), rng.integers(6, side - 6), rng.integers(3, 6)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        img[disc] = 120
        mask[disc] = 2
        Image.fromarray(img).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("background\nsquare\ndisc\n")
    return root


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory, cli):
    data = square_pairs(tmp_path_factory.mktemp("pairs"))
    project = tmp_path_factory.mktemp("runs")
    # half-width unet-seg, 25 epochs: test mIoU 0.97 (the full width in 40 epochs: 0.98, in 2.7x the time)
    r = cli("train", "segment", "--data", data, "--epochs", 25, "--width", 0.5, "--batch", 8, "--lr", 0.01,
            "--project", project, "--quiet")
    assert r.returncode == 0, r.stderr
    return project / "segment" / "exp1", data


def test_training_reaches_a_stated_miou_on_a_tiny_set(seg_run):
    run, _ = seg_run
    test = json.loads((run / "summary.json").read_text())["test"]
    assert test["miou"] >= 0.8, test
    assert set(test["iou_per_class"]) == {"background", "square", "disc"}
    data = json.loads((run / "dataset.json").read_text())
    assert sum(data["pixels_per_class"]["train"]) == data["images"]["train"] * 32 * 32
    for png in ("masks.png", "worst.png", "iou_per_class.png", "confusion.png"):
        assert (run / "plots" / png).is_file()
    assert "mIoU" in (run / "report.html").read_text()


def test_predict_writes_index_masks_and_overlays_at_any_size(seg_run, cli, tmp_path):
    run, _ = seg_run
    img = np.full((45, 70, 3), 20, np.uint8)
    img[10:30, 20:40] = 230
    Image.fromarray(img).save(tmp_path / "odd.png")
    r = cli("predict", run, tmp_path / "odd.png", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    mask = np.asarray(Image.open(tmp_path / "out" / "odd.png"))
    assert mask.shape == (45, 70) and Image.open(tmp_path / "out" / "odd.png").mode == "P"
    assert (mask[14:26, 24:36] == 1).mean() > 0.8 and (mask[:5, :10] == 0).mean() > 0.8
    assert np.asarray(Image.open(tmp_path / "out" / "odd_overlay.png")).shape == (45, 70, 3)
    r = cli("val", run, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["miou"] >= 0.8


def test_bad_input_is_one_line(tmp_path, cli):
    data = square_pairs(tmp_path / "d", n=4)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(data / "masks" / "1.png")
    r = cli("train", "segment", "--data", data, "--epochs", 1, "--project", tmp_path / "runs")
    assert r.returncode == 2 and "1.png" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("train", "segment", "--loss", "mse", "--epochs", 1, "--project", tmp_path / "runs")
    assert r.returncode == 2 and "--loss" in r.stderr
    r = cli("train", "segment", "--model", "vgg7", "--epochs", 1, "--project", tmp_path / "runs")
    assert r.returncode == 2 and "not a segmenter" in r.stderr


def test_export_onnx_predicts_as_the_run_and_serves(seg_run, cli, tmp_path, start_server):
    import base64
    import io

    import httpx

    from deepix.serve.app import make_app
    run, data = seg_run
    onnx = tmp_path / "seg.onnx"
    r = cli("export", run, "-o", onnx)
    assert r.returncode == 0, r.stderr
    parity = json.loads((tmp_path / "seg.onnx.json").read_text())["parity"]
    assert parity["ok"] and parity["pixel_agreement"] > 0.99, parity
    img = data / "images" / "3.png"
    ours = cli("predict", run, img, "-o", tmp_path / "a")
    theirs = cli("predict", onnx, img, "-o", tmp_path / "b")
    assert ours.returncode == theirs.returncode == 0, theirs.stderr
    a, b = (np.asarray(Image.open(tmp_path / d / "3.png")) for d in ("a", "b"))
    assert (a == b).mean() > 0.99
    s = start_server(make_app([str(run)]))
    buf = io.BytesIO()
    Image.open(img).save(buf, format="PNG")
    res = httpx.post(f"{s.url}/v1/models/{run.name}/predict", files={"file": ("x.png", buf.getvalue())}).json()
    answer = res["results"][0]
    assert res["task"] == "segment" and set(answer["shares"]) <= {"background", "square", "disc"}
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_png"]))))
    assert mask.shape == (32, 32, 4) and (mask[..., 3] > 0).any()   # the classes drawn, the background clear


def test_explain_maps_a_class_region(seg_run, cli, tmp_path):
    run, data = seg_run
    r = cli("explain", run, data / "images" / "5.png", "--class", "square", "-o", tmp_path / "x")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x" / "5_regions.png").is_file() and "square" in (tmp_path / "x" / "explain.html").read_text()
    r = cli("explain", run, data / "images" / "5.png", "--class", "tree", "-o", tmp_path / "x")
    assert r.returncode == 2 and "tree" in r.stderr


def test_fcos_n_seg_shares_the_detectors_backbone():
    from deepix.models import Spec, build_model
    seg = build_model("fcos-n-seg", Spec(3, 4, (64, 64)))
    det = build_model("fcos-n", Spec(3, 5, (64, 64)))
    seg_keys, det_keys = seg.state_dict(), det.state_dict()
    shared = [k for k in det_keys if k.startswith(("stem.", "stages.", "lateral.", "smooth."))]
    assert shared and all(seg_keys[k].shape == det_keys[k].shape for k in shared)
    assert not any(k.startswith(("cls", "box", "ctr", "scales")) for k in seg_keys)
    assert seg(torch.rand(2, 3, 45, 70)).shape == (2, 4, 45, 70)


def test_diagnosis_names_the_classic_failures():
    from deepix.tasks.segment.report import findings
    summary = {"data": {"classes": ["background", "road", "sign"], "imgsz": 128,
                        "pixels_per_class": {"train": [9000, 900, 100]}},
               "test": {"miou": 0.55, "pixel_accuracy": 0.9, "dice": 0.6,
                        "confusion": [[900, 10, 0], [20, 80, 0], [5, 5, 0]],   # "sign" is never predicted
                        "objects_found": {"small": {"found": 2, "objects": 20, "share": 0.1},
                                          "large": {"found": 18, "objects": 20, "share": 0.9}},
                        "boundary_accuracy": 0.6, "interior_accuracy": 0.97}}
    found = {f["finding"].split(":")[0]: f for f in findings([], summary)}
    assert "Never predicted" in found and "--class-weights auto" in " ".join(found["Never predicted"]["remedies"])
    assert "Small objects are missed" in found and "--imgsz 256" in " ".join(found["Small objects are missed"]["remedies"])
    assert "Blurred boundaries" in found
    healthy = dict(summary, test=dict(summary["test"], confusion=[[900, 10, 0], [20, 80, 0], [1, 1, 8]],
                                      boundary_accuracy=0.95, objects_found={}))
    assert [f["finding"].split(":")[0] for f in findings([], healthy)] == ["mIoU 0.55"]


def test_torchvision_segmenters_build_without_downloading():
    from types import SimpleNamespace

    from deepix.tasks.segment.train import build
    cfg = SimpleNamespace(model="tv:lraspp_mobilenet_v3_large", width=1.0)
    m = build(cfg, 3, 64).eval()
    assert m(torch.rand(1, 3, 64, 80)).shape == (1, 3, 64, 80)
