"""deepix explain: receptive fields, the maps' sanity checks (randomisation, localisation), the page and the
report sections, for built-in, Keras-front and torchvision models and for a detector."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import deepix
from deepix.explain.layers import hookable, trace
from deepix.explain.sanity import cascading_randomisation, localisation, patch_set


COMMON = dict(data="digits", epochs=1, batch=64, quiet=True, threads=2)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("explain")


@pytest.fixture(scope="module")
def digits_run(digits_run, copy_run):
    return copy_run(digits_run[0])  # the shared seed-cnn run on digits; explain writes into RUN/explain: a copy


@pytest.fixture(scope="module")
def images(root):
    """An 8x8 digit as the model takes it, and a 20x20 RGB one it must convert."""
    from sklearn.datasets import load_digits
    d = load_digits()
    a, b = root / "seven.png", root / "big_rgb.png"
    Image.fromarray((d.images[7] * 16).astype(np.uint8)).save(a)
    Image.fromarray((d.images[3] * 16).astype(np.uint8)).resize((20, 20)).convert("RGB").save(b)
    return a, b


@pytest.fixture(scope="module")
def patch_model(root):
    """seed-cnn trained on the patch set (the settings of benchmarks/explain.py, seed 0): about 5-10 s."""
    x, y, _, _ = patch_set(1500, seed=0)
    r = deepix.train(data=(x, y), model="seed-cnn", epochs=12, batch=64, augment="none", seed=0, threads=2,
                     quiet=True, project=str(root / "runs"), name="patches", test_fraction=0.0)
    xt, yt, boxes, _ = patch_set(300, seed=1000)
    return deepix.load(r["run"]).model, torch.from_numpy(xt)[:, None].float().div(255), torch.from_numpy(yt), boxes


def test_receptive_fields_follow_kernels_strides_dilation_and_padding():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, dilation=2),
                        nn.Conv2d(4, 4, 5, stride=2, padding=2), nn.Flatten())
    with hookable(net) as m:
        stages = trace(m, torch.zeros(1, 1, 32, 32)).stages
    assert [s.rf[0] for s in stages] == [3, 4, 12, 20]
    assert [s.jump[0] for s in stages] == [1, 2, 2, 4]
    # the first output's centre: 1 (3x3, no padding), 1.5 (pool), 5.5 (dilated 3x3), 5.5 (5x5 padded by 2)
    assert [s.start[0] for s in stages] == [1, 1.5, 5.5, 5.5]
    assert stages[-1].shape == (4, 6, 6)


def test_a_resnet_keeps_its_whole_receptive_field_across_skip_connections():
    import torchvision
    with hookable(torchvision.models.resnet18()) as m:
        stages = trace(m, torch.zeros(1, 3, 224, 224)).stages
    last = [s for s in stages if s.kind == "conv"][-1]
    assert last.name == "layer4.1.conv2" and last.rf == (435, 435) and last.jump == (32, 32)  # the published 435


def test_grad_cam_peaks_on_the_patch_that_decides_the_class(patch_model):
    model, x, y, boxes = patch_model
    loc = localisation(model, x, y, boxes)
    print(f"\nGrad-CAM peak on the deciding tile: {loc['share']:.1%} of {loc['images']} test images "
          f"(within 2 px {loc['share_within_2px']:.1%}; accuracy {loc['accuracy']:.1%}; layer {loc['layer']})")
    assert loc["accuracy"] > 0.9
    assert loc["share"] >= 0.9


def test_grad_cam_changes_when_the_weights_are_randomised_layer_by_layer(patch_model):
    model, x, y, _ = patch_model
    rows = cascading_randomisation(model, x[:48], y[:48])
    print("\nSpearman with the trained maps, layers re-drawn from the output down: "
          + ", ".join(f"+{r['randomised']} {r['grad-cam']:.2f}" for r in rows[1:]))
    assert rows[0]["grad-cam"] == 1.0 and [r["randomised"] for r in rows[1:]] == ["10", "7", "3", "0"]
    assert all(r["grad-cam"] < 0.6 for r in rows[1:])


def test_explain_writes_the_page_and_pngs_and_states_conversions(digits_run, images, tmp_path, cli):
    out = tmp_path / "out"
    r = cli("explain", digits_run, *images, "--class", "3", "-o", out, check=True)
    assert "big_rgb: 20x20 RGB, converted to the model's 8x8 grayscale input" in r.stdout
    assert "seven: " in r.stdout and "(3: " in r.stdout and str(out / "explain.html") in r.stdout
    for name in ("explain.html", "filters.png", "seven_maps.png", "seven_features.png", "big_rgb_maps.png"):
        assert (out / name).is_file(), name
    page = (out / "explain.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "converted to the model" in page
    assert "receptive field" in page and "Grad-CAM" in page and "src=\"http" not in page
    res = deepix.explain(digits_run, [images[0]])  # the default folder: RUN/explain
    assert res["page"] == digits_run / "explain" / "explain.html" and res["layer"] == "3"
    assert [s["receptive_field"][0] for s in res["stages"]] == [3, 3, 5, 5]


def test_bad_layer_class_and_image_are_one_line_each(digits_run, images, tmp_path, cli):
    r = cli("explain", digits_run, images[0], "--layer", "conv9")
    assert r.returncode == 2 and "valid layers: 0, 1, 2, 3, 4, 5" in r.stderr and len(r.stderr.splitlines()) == 1
    r = cli("explain", digits_run, images[0], "--class", "cat")
    assert r.returncode == 2 and "classes: 0, 1" in r.stderr
    r = cli("explain", digits_run, tmp_path / "missing.png")
    assert r.returncode == 2 and "missing.png" in r.stderr and len(r.stderr.splitlines()) == 1


def test_the_classify_report_shows_what_the_network_looks_at(digits_run):
    info = json.loads((digits_run / "explain.json").read_text())
    assert info["layer"] == "3" and info["seconds"] < 30
    for name in ("filters", "features", "gradcam", "embedding", "confused"):
        assert (digits_run / "plots" / info["figures"][name]).is_file(), name
    html = (digits_run / "report.html").read_text()
    assert "What the network looks at" in html and "t-SNE" in html and "Grad-CAM at layer 3" in html


def test_a_model_without_convolutions_is_one_clear_line(root, images, cli):
    from deepix.keras.layers import Dense, Flatten
    from deepix.keras.models import Sequential
    net = Sequential([Flatten(input_shape=(8, 8, 1)), Dense(16, activation="relu"), Dense(10, activation="softmax")])
    run = deepix.train(model=net, project=str(root / "runs"), name="dense", **COMMON)["run"]
    r = cli("explain", run, images[0])
    assert r.returncode == 2 and "no convolution" in r.stderr and len(r.stderr.splitlines()) == 1
    info = json.loads((run / "explain.json").read_text())  # the report still has the embedding
    assert "filters" not in info["figures"] and info["figures"]["embedding"]


def test_a_keras_front_cnn_is_explained_through_its_own_layer_names(root, images):
    from deepix.keras.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from deepix.keras.models import Sequential
    net = Sequential([Conv2D(8, 3, activation="relu", padding="same", input_shape=(8, 8, 1)), MaxPooling2D(),
                      Flatten(), Dense(10, activation="softmax")])
    run = deepix.train(model=net, project=str(root / "runs"), name="keras", **COMMON)["run"]
    r = deepix.explain(run, list(images), cls=1)
    conv, pool = net.layers[0].name, net.layers[1].name
    assert r["layer"] == conv and [s["name"] for s in r["stages"]] == [conv, pool]
    assert r["stages"][1]["shape"] == [8, 4, 4] and r["stages"][1]["receptive_field"] == [4, 4]
    with pytest.raises(deepix.UserError, match=f"valid layers: {conv}, {pool}"):
        deepix.explain(run, [images[0]], layer="nope")


def test_a_torchvision_resnet_is_explained_at_a_block(root, images):
    run = deepix.train(model="tv:resnet18", imgsz=32, project=str(root / "runs"), name="tv", **COMMON)["run"]
    r = deepix.explain(run, [images[0]], layer="layer3")
    assert r["layer"] == "layer3" and r["predictions"][0]["class"] in [str(i) for i in range(10)]
    # 32x32 in, layer4's maps are 1x1: the default is the last convolution that still has places to point at
    assert deepix.explain(run, [images[0]])["layer"] == "layer3.1.conv2"
    with pytest.raises(deepix.UserError, match="valid layers: conv1, bn1, relu, maxpool, layer1.0.conv1, .*, layer4.1.conv2, layer4, avgpool"):
        deepix.explain(run, [images[0]], layer="fc")


def test_a_detect_run_gets_per_box_maps(detect_run, tmp_path, cli):
    from deepix.data.shapes import make_shapes
    run = detect_run["run"]  # the shared fcos-n run on 32x32 square scenes
    assert (run / "plots" / "explain_boxes.png").is_file()
    assert "What the detector looks at" in (run / "report.html").read_text()
    path = tmp_path / "scene.png"
    Image.fromarray(make_shapes(1, size=(64, 80), seed=9)[0].image.permute(1, 2, 0).numpy()).save(path)
    r = cli("explain", run, path, "--conf", "0", "-o", tmp_path / "out", check=True)
    assert "letterboxed to the detector's 32x32 input" in r.stdout and "scene: " in r.stdout
    res = deepix.explain(run, [path], conf=0.0, out=tmp_path / "out2")
    boxes = res["predictions"][0]["boxes"]
    assert 1 <= len(boxes) <= 4 and res["layer"] == "stages.1"
    assert all(0 <= b["box"][0] <= b["box"][2] <= 80 + 1e-3 for b in boxes)  # in the image's own pixels
    assert (tmp_path / "out2" / "scene_boxes.png").is_file() and (tmp_path / "out2" / "explain.html").is_file()
