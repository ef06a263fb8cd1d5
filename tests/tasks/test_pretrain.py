"""`deepix pretrain` and the few-label options of `train classify`: the three methods train through the
engine, the monitor, the saved encoder, --init/--freeze/--labels-per-class, resume, and bad input."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import deepix
from deepix.data.augment import Augment
from deepix.models import Spec, build_model, with_preprocess
from deepix.models.ssl import Pretrainer, strip_head
from deepix.tasks.pretrain.train import knn_accuracy, per_class, probe_accuracy


def shapes_16(n=240, seed=0):
    """Three classes of 16x16 images told apart by a shape (bar, square, cross) anywhere in the image."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    x = rng.integers(0, 30, size=(n, 16, 16)).astype(np.uint8)
    for i, c in enumerate(y):
        r, q = rng.integers(2, 9, size=2)
        if c == 0:
            x[i, r:r + 6, q + 2:q + 4] = 220
        elif c == 1:
            x[i, r:r + 5, q:q + 5] = 220
        else:
            x[i, r + 2, q:q + 6] = 220
            x[i, r:r + 6, q + 2] = 220
    return x, y


FAST = dict(epochs=2, batch=32, threads=1, quiet=True, width=0.25, time_limit=0.0)


def encoder(method):
    net = with_preprocess(build_model("vgg7", Spec(1, 3, (16, 16), width=0.25)), [0.1], [0.3])
    return Pretrainer(net, strip_head(net), method, 1, (16, 16))


def test_the_new_batch_augmentations_crop_blur_and_erase():
    x = torch.rand(64, 1, 16, 16)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = Augment(crop=0.3, blur=1.0, erase=1.0)
    assert torch.equal(a(x, g()), a(x, g()))  # seeded: the same views again
    blurred = Augment(blur=1.0)(x, g())
    assert blurred.diff(dim=3).abs().mean() < 0.7 * x.diff(dim=3).abs().mean()  # smoother
    erased = Augment(erase=1.0)(x, g())
    share = (erased != x).float().mean().item()
    assert 0.01 < share < 0.25  # 2-25% of each image
    flat = torch.linspace(0, 1, 16).expand(8, 1, 16, 16).contiguous()
    cropped = Augment(crop=0.25)(flat, g())
    assert (cropped[..., -1] - cropped[..., 0]).mean() < 0.95  # zoomed in: less of the ramp is visible


@pytest.mark.parametrize("method", ["simclr", "byol", "mae"])
def test_each_method_gives_a_finite_loss_with_gradients_into_the_encoder(method):
    m = encoder(method)
    x = torch.rand(8, 1, 16, 16)
    second = m.mask(8) if method == "mae" else torch.rand(8, 1, 16, 16)
    loss = m.loss(x, second)
    loss.backward()
    assert torch.isfinite(loss)
    first = m.encoder[1][0].weight
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert m.embed(x).shape == (8, m.dim)


def test_mae_hides_the_asked_share_and_byol_target_follows_slowly():
    m = encoder("mae")
    assert abs(m.mask(200).mean().item() - 0.5) < 0.02
    b = encoder("byol")
    with torch.no_grad():
        for p in b.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in b.encoder_m.parameters()]
    b.update_momentum(0.9)
    for p0, pm, p in zip(before, b.encoder_m.parameters(), b.encoder.parameters()):
        assert torch.allclose(pm, 0.9 * p0 + 0.1 * p, atol=1e-6)


def test_knn_and_probe_read_separable_features_and_chance_on_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    f = torch.nn.functional.one_hot(y, 3).float() * 3 + torch.randn(300, 3, generator=g) * 0.3
    assert knn_accuracy(f[:200], y[:200], f[200:], y[200:]) > 0.95
    assert probe_accuracy(f[:200], y[:200], f[200:], y[200:]) > 0.95
    noise = torch.randn(300, 16, generator=g)
    assert knn_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.55
    pick = per_class(y, 4, 0)
    assert torch.bincount(y[pick]).tolist() == [4, 4, 4]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pt")
    return deepix.train("pretrain", data=shapes_16(), project=str(root), name="p", **FAST)


def test_pretraining_writes_monitor_encoder_pictures_and_report(pretrained):
    run = pretrained["run"]
    head = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "val_knn", "val_probe"} <= set(head)
    meta = json.loads((run / "encoder.json").read_text())
    assert meta["model"] == "vgg7" and meta["method"] == "simclr" and meta["width"] == 0.25
    enc = load_file(str(run / "weights" / "encoder.safetensors"))
    assert "0.mean" in enc and "1.0.weight" in enc  # the classifier's own names
    rows = pretrained["test"]["few_labels"]
    assert {"1", "10", "all"} <= set(rows) and rows["10"]["labels"] == 30
    assert all(0 <= r["pretrained_probe"] <= 1 and 0 <= r["random_knn"] <= 1 for r in rows.values())
    for name in ("views.png", "embedding.png", "knn.png"):
        assert (run / "plots" / name).is_file(), name
    html = (run / "report.html").read_text()
    assert "What the unlabelled images bought" in html and "linear probe" in html


def test_predict_on_a_pretrain_run_points_to_fine_tuning(pretrained, tmp_path, cli):
    run = pretrained["run"]
    x, y = shapes_16()
    folder = tmp_path / "img"
    folder.mkdir()
    Image.fromarray(x[0]).save(folder / "a.png")
    r = cli("predict", run, folder / "a.png")
    assert r.returncode == 2 and "--init" in r.stderr


def test_fine_tuning_starts_from_the_encoder_and_freeze_keeps_it(pretrained, tmp_path):
    run = pretrained["run"]
    enc = load_file(str(run / "weights" / "encoder.safetensors"))
    r = deepix.train("classify", data=shapes_16(seed=1), init=str(run), freeze=True, labels_per_class=5,
                     project=str(tmp_path), name="probe", epochs=2, batch=8, threads=1, quiet=True)
    cfg = (r["run"] / "config.yaml").read_text()
    assert "width: 0.25" in cfg  # the architecture followed the encoder
    w = load_file(str(r["run"] / "weights" / "last.safetensors"))
    frozen = [k for k in enc if k.startswith("1.")]
    assert frozen and all(torch.equal(w[k], enc[k]) for k in frozen)  # BatchNorm statistics included
    labelled = json.loads((r["run"] / "dataset.json").read_text())["info"]["labelled"]
    assert labelled["images"] == 15 and labelled["per_class"] == 5
    r2 = deepix.train("classify", data=shapes_16(seed=1), init=str(run / "weights" / "encoder.safetensors"),
                      label_fraction=0.1, project=str(tmp_path), name="ft", epochs=1, batch=8, threads=1, quiet=True,
                      width=0.25)
    w2 = load_file(str(r2["run"] / "weights" / "last.safetensors"))
    assert not torch.equal(w2["1.0.weight"], enc["1.0.weight"])  # fine-tuned: the encoder moved
    base = json.loads((r2["run"] / "summary.json").read_text())["baseline"]
    assert 0 <= base["accuracy"] <= 1 and (r2["run"] / "classify" / "baseline" / "report.html").is_file()
    b = load_file(str(r2["run"] / "classify" / "baseline" / "weights" / "last.safetensors"))
    assert not torch.equal(b["1.0.weight"], w2["1.0.weight"])
    assert "bought by the pretraining" in (r2["run"] / "report.html").read_text()


def test_semi_supervised_training_beats_the_supervised_run_on_the_same_labels(tmp_path):
    # one label per digit class: the unlabelled rest of the 8x8 digits is what the semi-supervised run adds
    same = dict(data="digits", model="seed-cnn", labels_per_class=1, epochs=3, batch=32, threads=1, quiet=True,
                precision="fp32", project=str(tmp_path))
    alone = deepix.train("classify", name="supervised", **same)
    r = deepix.train("classify", semi=True, name="semi", **same)
    # measured on this recipe (fp32): 0.650 against 0.622 at seed 0; ahead by 0.022 and 0.028 at seeds 1 and 2
    assert r["test"]["accuracy"] > alone["test"]["accuracy"]
    rows = (r["run"] / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    assert {"train_unlabelled_loss", "train_confident", "train_accuracy", "val_accuracy"} <= set(head)
    last = dict(zip(head, rows[-1].split(",")))
    assert 0 < float(last["train_confident"]) <= 1 and float(last["train_unlabelled_loss"]) > 0


def test_a_resumed_byol_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    data = shapes_16()
    opts = {**FAST, "method": "byol"}
    whole = deepix.train("pretrain", data=data, project=str(tmp_path), name="whole", **opts)["run"]

    def stop(row, model):  # killed after the first epoch's checkpoint, with the plan (lr, momentum) of two
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deepix.train("pretrain", data=data, project=str(tmp_path), name="cut", callbacks=(stop,), **opts)
    cut = tmp_path / "pretrain" / "cut"
    deepix.train("pretrain", resume=str(cut), data=data, quiet=True)
    a = load_file(str(whole / "weights" / "last.safetensors"))
    b = load_file(str(cut / "weights" / "last.safetensors"))
    assert any(k.startswith("encoder_m.") for k in a)  # the target network travels with the run
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_folder_without_classes_pretrains_on_the_loss_alone(tmp_path, cli, start_server, to_png):
    x, _ = shapes_16(80)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, im in enumerate(x):
        Image.fromarray(im).save(folder / f"{i}.png")
    r = cli("pretrain", "--data", folder, "--imgsz", 16, "--epochs", 1, "--batch", 16, "--width", 0.25,
                   "--threads", 1, "--time-limit", 0, "--method", "mae", "--project", tmp_path, "--name", "u", "--quiet",
                   check=True)
    run = tmp_path / "pretrain" / "u"
    assert "val_knn" not in (run / "metrics.csv").read_text()
    assert (run / "weights" / "encoder.safetensors").is_file() and (run / "plots" / "reconstruction.png").is_file()
    assert "encoder:" in r.stdout
    # the encoder exports as a feature extractor, checked on photographs (there are no test images)
    from deepix.export import read_metadata, run_file
    out = tmp_path / "enc.onnx"
    assert "ok" in cli("export", run, "-o", out, check=True).stdout
    meta = read_metadata(out)
    assert meta["deepix_task"] == "pretrain" and meta["method"] == "mae"
    assert run_file(out, {"images": torch.rand(5, 1, 16, 16)}).shape == (5, meta["features"])
    # and serves its features
    import httpx
    from deepix.serve.app import make_app
    s = start_server(make_app([str(run)]))
    try:
        r = httpx.post(f"{s.url}/v1/models/u/predict", files={"file": ("a.png", to_png(x[0]))}).json()
        assert r["task"] == "pretrain" and len(r["results"][0]["features"]) == meta["features"]
    finally:
        s.stop()
    # labels cannot be asked of it
    bad = cli("train", "classify", "--data", folder, "--labels-per-class", 2, "--project", tmp_path)
    assert bad.returncode == 2 and "class folders" in bad.stderr


def test_bad_pretraining_input_is_one_line_exit_2(tmp_path, pretrained, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["pretrain", "--data", empty], "no images"),
        (["pretrain", "--data", "digits"], "too small"),
        (["pretrain", "--augment", "none"], "nothing to learn"),
        (["train", "classify", "--data", "digits", "--labels-per-class", 1000], "more than the"),
        (["train", "classify", "--data", "digits", "--init", tmp_path / "nope"], "no encoder there"),
    ]
    for args, says in cases:
        r = cli(*args, "--project", tmp_path, "--threads", 1, "--quiet")
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


@pytest.mark.parametrize("model, channels", [("fcos-n", 3), ("unet-s", 1)])
def test_detectors_and_restorers_start_from_an_encoder_of_their_own_backbone(tmp_path, model, channels, cli):
    from deepix.errors import UserError
    from deepix.models.encoder import init_from
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(48):
        im = rng.integers(0, 255, size=(32, 32, 3) if channels == 3 else (32, 32)).astype(np.uint8)
        Image.fromarray(im).save(folder / f"{i}.png")
    cli("pretrain", "--data", folder, "--imgsz", 32, "--model", model, "--epochs", 1, "--batch", 16,
               "--width", 0.25, "--threads", 1, "--time-limit", 0, "--project", tmp_path, "--name", "b", "--quiet",
               check=True)
    run = tmp_path / "pretrain" / "b"
    enc = load_file(str(run / "weights" / "encoder.safetensors"))
    target = build_model(model, Spec(channels, 2, (32, 32), width=0.25))
    n = init_from(target, str(run), standardised=False)
    own = target.state_dict()
    assert n > 4 and all(torch.equal(own[k[2:]], v) for k, v in enc.items() if k.startswith("1."))
    if model == "fcos-n":   # the segmenter on the detector's backbone starts from the same encoder
        seg = build_model("fcos-n-seg", Spec(3, 2, (32, 32), width=0.25))
        assert init_from(seg, str(run), standardised=False) > 4
        assert torch.equal(seg.state_dict()["stem.0.weight"], enc["1.stem.0.weight"])
    with pytest.raises(UserError, match="does not fit"):
        init_from(build_model("dncnn-xs", Spec(channels, 2, (32, 32))), str(run), standardised=False)
