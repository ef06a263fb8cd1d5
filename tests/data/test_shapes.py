"""The synthetic detection set: repeatable, disjoint splits, tight valid boxes, occlusion, empty images."""
import time

import numpy as np
import pytest
import torch

from deepix.data.boxes import DetDataset
from deepix.data.shapes import DEFAULT_CLASSES, SHAPES, _draw, _Object, load_shapes, make_shapes
from deepix.errors import UserError

# flat background, no noise, hard edges: every pixel is exactly background or exactly an object
PLAIN = dict(background="plain", noise=0, antialias=False)


def same(a, b):
    return torch.equal(a.image, b.image) and torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels)


def foreground(im):
    # objects sit inside their enclosing circle, which never reaches a corner: the corner is background
    return (im.image != im.image[:, :1, :1]).any(0).numpy()


def test_images_and_boxes_have_the_internal_form():
    for i, im in enumerate(make_shapes(20, size=48)):
        assert im.file == "" and im.size == (48, 48) and im.id == i
        assert im.image.dtype == torch.uint8 and im.image.shape == (3, 48, 48)
        assert im.boxes.dtype == torch.float32 and im.boxes.shape == (len(im.labels), 4)
        assert im.labels.dtype == torch.int64
    im = make_shapes(1, size=(40, 64), empty_fraction=0)[0]
    assert im.image.shape == (3, 40, 64) and im.size == (40, 64)


def test_a_seed_gives_the_same_set_and_another_seed_another():
    a, b = make_shapes(30, 32, seed=3), make_shapes(30, 32, seed=3)
    assert all(same(x, y) for x, y in zip(a, b))
    assert all(same(x, y) for x, y in zip(make_shapes(10, 32, seed=3), a))   # a longer set extends a shorter one
    c = make_shapes(30, 32, seed=4)
    assert not any(torch.equal(x.image, y.image) for x, y in zip(a, c))


def test_splits_are_disjoint_repeatable_and_recorded():
    ds = load_shapes(60, 30, 30, size=32, seed=1, max_objects=3)
    assert isinstance(ds, DetDataset) and ds.name == "shapes" and ds.classes == list(DEFAULT_CLASSES)
    pixels = {name: {im.image.numpy().tobytes() for im in ims} for name, ims in ds.splits.items()}
    assert {k: len(v) for k, v in pixels.items()} == {"train": 60, "val": 30, "test": 30}   # no repeats inside
    assert not pixels["train"] & pixels["val"] and not pixels["train"] & pixels["test"]
    assert not pixels["val"] & pixels["test"]
    again = load_shapes(60, 30, 30, size=32, seed=1, max_objects=3)
    assert all(same(x, y) for name in ds.splits for x, y in zip(ds.splits[name], again.splits[name]))
    assert ds.info["seed"] == 1 and ds.info["sizes"] == {"train": 60, "val": 30, "test": 30}
    assert ds.info["settings"]["max_objects"] == 3 and ds.info["settings"]["size"] == (32, 32)


def test_boxes_are_valid_pixel_corners():
    for im in make_shapes(300, 40, seed=2):
        b, (H, W) = im.boxes, im.size
        assert ((b[:, 0] >= 0) & (b[:, 0] < b[:, 2]) & (b[:, 2] <= W)).all()
        assert ((b[:, 1] >= 0) & (b[:, 1] < b[:, 3]) & (b[:, 3] <= H)).all()
        assert torch.equal(b, b.round())
        assert ((im.labels >= 0) & (im.labels < len(DEFAULT_CLASSES))).all()


def test_a_box_is_exactly_its_objects_extent():
    for im in make_shapes(200, 48, max_objects=1, empty_fraction=0, classes=SHAPES, **PLAIN):
        ys, xs = np.nonzero(foreground(im))
        assert im.boxes.tolist() == [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]


def test_boxes_touch_their_objects_on_all_four_sides_and_cover_every_object():
    for im in make_shapes(100, 64, occlusion=False, empty_fraction=0, classes=SHAPES, **PLAIN):
        fg, covered = foreground(im), np.zeros(im.size, bool)
        for x1, y1, x2, y2 in im.boxes.int().tolist():
            inner = fg[y1:y2, x1:x2]
            assert inner[0].any() and inner[-1].any() and inner[:, 0].any() and inner[:, -1].any()
            covered[y1:y2, x1:x2] = True
        assert not (fg & ~covered).any()


@pytest.mark.parametrize("antialias", [False, True])
def test_mostly_hidden_objects_leave_the_boxes_and_partly_hidden_ones_shrink(antialias):
    circle = _Object(0, "circle", 32, 32, 10, 0, 0, np.full(3, 200.0))
    # a square of circumradius 20 turned by 45 degrees: axis-aligned, half-side 14.14
    def square_from(left):
        return _Object(1, "square", left + 14.142, 32, 20, np.pi / 4, 0, np.full(3, 90.0))

    def draw(objects, max_hidden=0.6):
        return _draw(np.zeros((64, 64, 3), np.float32), objects, max_hidden=max_hidden, antialias=antialias)[:3]

    boxes, labels, dropped = draw([circle, square_from(32)])            # right half of the circle covered
    assert labels.tolist() == [0, 1] and dropped == 0
    assert boxes[0].tolist() == [22, 22, 32, 42]                         # only the visible half
    boxes, labels, dropped = draw([circle, square_from(28)])            # about 75% covered
    assert labels.tolist() == [1] and dropped == 1
    boxes, labels, dropped = draw([circle, square_from(28)], max_hidden=0.8)
    # the visible sliver left of x=28 is shorter than the circle: the box follows it, not the circle
    assert labels.tolist() == [0, 1] and boxes[0].tolist() == [22, 23, 28, 41]
    boxes, labels, dropped = draw([circle, square_from(14)])            # wholly covered
    assert labels.tolist() == [1] and dropped == 1
    boxes, labels, dropped = draw([square_from(14), circle])            # on top, it hides nothing of itself
    assert labels.tolist() == [1, 0] and boxes[1].tolist() == [22, 22, 42, 42]


def test_about_empty_fraction_of_the_images_are_empty_background():
    ims = make_shapes(600, 24, empty_fraction=0.1, min_side=0.2, seed=5, **PLAIN)
    empty = [im for im in ims if len(im.boxes) == 0]
    assert 35 <= len(empty) <= 90
    assert all((im.image == im.image[:, :1, :1]).all() for im in empty)
    assert all(len(im.boxes) for im in make_shapes(200, 24, empty_fraction=0, min_side=0.2))
    assert not any(len(im.boxes) for im in make_shapes(20, 24, empty_fraction=1))


def test_every_class_appears_and_colour_does_not_give_it_away():
    ims = make_shapes(300, 48, classes=SHAPES, max_objects=1, empty_fraction=0, **PLAIN)
    labels = torch.cat([im.labels for im in ims])
    assert (torch.bincount(labels, minlength=len(SHAPES)) > 0).all()
    colours = np.stack([im.image.numpy()[:, foreground(im)][:, 0] for im in ims]).astype(float)
    for c in range(len(SHAPES)):
        assert (colours[labels.numpy() == c].std(0) > 40).all()   # uniform on 0..255 has std 74
    assert set(torch.cat([im.labels for im in make_shapes(100, 32)]).tolist()) == set(range(5))


def test_sizes_vary_between_the_limits():
    boxes = torch.cat([im.boxes for im in make_shapes(300, 100, min_side=0.1, max_side=0.5, occlusion=False)])
    longest = (boxes[:, 2:] - boxes[:, :2]).amax(1)
    assert longest.min() < 15 and longest.max() > 40 and longest.max() <= 51


def test_generation_is_quick():
    start = time.process_time()
    make_shapes(500, 128)
    assert time.process_time() - start < 15   # about 0.5 s on one core


def test_impossible_settings_are_user_errors():
    for bad in (dict(classes=["circle", "blob"]), dict(min_side=0.6, max_side=0.5), dict(background="sky"),
                dict(min_objects=3, max_objects=2), dict(empty_fraction=1.5), dict(size=4)):
        with pytest.raises(UserError, match="shapes"):
            make_shapes(2, **bad)
    with pytest.raises(UserError, match="unknown setting"):
        load_shapes(2, 2, 2, colour="red")
