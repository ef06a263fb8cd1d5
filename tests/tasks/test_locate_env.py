"""Finding objects by reward (Caicedo & Lazebnik 2015): the box transforms, IoU, the environment's rewards,
masking and episode ends, and the baselines' detection figures."""
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from PIL import Image

from deepix.data.boxes import DetImage
from deepix.data.shapes import load_shapes
from deepix.errors import UserError
from deepix.tasks.locate import baselines
from deepix.tasks.locate.env import (ACTIONS, CROP, ETA, HISTORY, STEPS_PER_OBJECT, TRIGGER, Locate, iou,
                                     transform)

A = {name: k for k, name in enumerate(ACTIONS)}


def det(boxes, h=100, w=100, colour=(90, 120, 150)):
    """A flat image with a white rectangle at each box."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = colour
    for x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = 255
    return DetImage("", (h, w), torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    torch.zeros(len(boxes), dtype=torch.long), torch.from_numpy(img.transpose(2, 0, 1).copy()))


@pytest.fixture(scope="module")
def shapes():
    return load_shapes(40, 10, 10, size=96)


def test_each_transform_does_what_its_name_says():
    box = np.array([20.0, 30.0, 60.0, 80.0])          # 40 wide, 50 high: ALPHA is 8 px across, 10 down
    expect = {"right": [28, 30, 68, 80], "left": [12, 30, 52, 80], "down": [20, 40, 60, 90],
              "up": [20, 20, 60, 70], "bigger": [16, 25, 64, 85], "smaller": [24, 35, 56, 75],
              "fatter": [20, 35, 60, 75],             # height down by a fifth: wider for its height
              "taller": [24, 30, 56, 80], "trigger": [20, 30, 60, 80]}
    for name, want in expect.items():
        np.testing.assert_allclose(transform(box, A[name], 100, 100), want, err_msg=name)


def test_transforms_are_clipped_to_the_image_and_keep_four_pixels():
    whole = np.array([0.0, 0.0, 100.0, 100.0])
    np.testing.assert_allclose(transform(whole, A["bigger"], 100, 100), whole)
    np.testing.assert_allclose(transform(whole, A["right"], 100, 100), [20, 0, 100, 100])   # trims the trailing side
    np.testing.assert_allclose(transform(whole, A["up"], 100, 100), [0, 0, 100, 80])
    np.testing.assert_allclose(transform([80, 0, 100, 20], A["right"], 100, 100), [84, 0, 100, 20])
    np.testing.assert_allclose(transform([70, 10, 90, 30], A["bigger"], 60, 100), [68, 8, 92, 32])
    np.testing.assert_allclose(transform([10, 10, 14, 14], A["smaller"], 100, 100), [10, 10, 14, 14])
    np.testing.assert_allclose(transform([0, 0, 4, 4], A["left"], 100, 100), [0, 0, 4, 4])
    np.testing.assert_allclose(transform([96, 50, 100, 60], A["right"], 100, 100), [96, 50, 100, 60])
    rng = np.random.default_rng(0)
    box = np.array([0.0, 0.0, 50.0, 30.0])
    for a in rng.integers(len(ACTIONS), size=300):
        box = transform(box, a, 30, 50)
        assert 0 <= box[0] and box[2] <= 50 and 0 <= box[1] and box[3] <= 30
        assert box[2] - box[0] >= 4 - 1e-9 and box[3] - box[1] >= 4 - 1e-9


def test_iou_against_hand_computed_values():
    got = iou([0, 0, 10, 10], [[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [2, 2, 6, 6], [5, 5, 15, 15]])
    np.testing.assert_allclose(got, [50 / 150, 1.0, 0.0, 16 / 100, 25 / 175])
    assert iou([0, 0, 10, 10], np.zeros((0, 4))).shape == (0,)


@pytest.mark.filterwarnings("ignore:.*alternative render modes")   # only gymnasium.make gives an env a spec
def test_the_environment_passes_gymnasiums_checker(shapes):
    env = Locate(shapes.splits["val"], render_mode="rgb_array")
    check_env(env.unwrapped)
    assert env.render().shape == (96, 96, 3)
    obs, info = env.reset(seed=1)
    assert obs["crop"].shape == (3, CROP, CROP) and obs["crop"].dtype == np.uint8
    assert obs["history"].shape == (HISTORY * 9,) and not obs["history"].any()
    assert info["box"] == [0, 0, 96, 96] and info["found"] == 0 and info["objects"] >= 1


def test_images_without_boxes_are_skipped_and_none_at_all_is_a_user_error():
    env = Locate([det([]), det([[10, 10, 30, 30]])])
    assert len(env.sources) == 1
    with pytest.raises(UserError, match="no boxes"):
        Locate([det([]), det([])])


def test_images_on_disk_are_read_as_rgb(tmp_path):
    grey = np.full((20, 30), 77, np.uint8)
    Image.fromarray(grey).save(tmp_path / "a.png")
    env = Locate([DetImage(str(tmp_path / "a.png"), (20, 30), torch.tensor([[2.0, 2, 12, 12]]), torch.zeros(1).long())])
    obs, _ = env.reset(options={"image": 0})
    assert env.pictures[0].shape == (20, 30, 3) and (obs["crop"] == 77).all()


def test_moves_towards_the_object_earn_plus_one_and_away_minus_one():
    env = Locate([det([[50, 0, 100, 100]])])          # the right half: IoU 0.5 with the whole image
    env.reset(options={"image": 0})
    _, r, *_ = env.step(A["left"])
    assert r == -1.0
    env.reset(options={"image": 0})
    _, r, done, truncated, info = env.step(A["right"])
    assert r == 1.0 and info["iou"] == pytest.approx(0.625) and not (done or truncated)
    _, r, *_ = env.step(A["bigger"])                   # [10, 0, 100, 100]: back towards the whole image
    assert r == -1.0
    env.reset(options={"image": 0})
    _, r, *_ = env.step(A["bigger"])                   # the whole image cannot grow: no change, no reward
    assert r == 0.0
    obs, *_ = env.step(A["down"])
    assert obs["history"][A["down"]] == 1 and obs["history"][9 + A["bigger"]] == 1 and obs["history"].sum() == 2


def test_a_trigger_at_the_trigger_iou_is_a_hit_and_below_it_a_miss():
    env = Locate([det([[50, 0, 100, 100], [0, 0, 20, 20]])])
    env.reset(options={"image": 0})
    obs, r, done, truncated, info = env.step(TRIGGER)      # IoU 0.5
    assert r == -ETA and info["hit"] is False and info["found"] == 0 and info["triggered"] == [0, 0, 100, 100]
    assert (env.picture == env.fill[0]).all()              # masked anyway, and the box starts again
    assert info["box"] == [0, 0, 100, 100] and not obs["history"].any() and not (done or truncated)
    env.reset(options={"image": 0})
    assert (env.picture[5, 5] == 255).all()                # the reset brings the unmasked image back
    env.step(A["right"])                                   # [20, 0, 100, 100]: IoU 0.625
    obs, r, done, truncated, info = env.step(TRIGGER)
    assert r == ETA and info["hit"] is True and info["found"] == 1 and info["triggered"] == [20, 0, 100, 100]
    assert (env.picture[:, 20:] == env.fill[0]).all() and (env.picture[5, 5] == 255).all()
    assert info["box"] == [0, 0, 100, 100] and not (done or truncated)
    picture = env.render()
    assert picture.shape == (100, 100, 3) and picture.dtype == np.uint8
    assert (picture[50, 50] == (40, 200, 60)).all() and (picture[50, 0] == (230, 40, 40)).all()   # found, box


def test_episodes_end_when_every_object_is_found_and_are_cut_at_the_limits():
    env = Locate([det([[50, 0, 100, 100], [0, 0, 20, 20]])])
    env.reset(options={"image": 0})
    done = truncated = False
    while not (done or truncated):
        _, _, done, truncated, info = env.step(env.oracle())
    assert done and not truncated and info["found"] == 2 and env.steps < 2 * STEPS_PER_OBJECT
    env.reset(options={"image": 0})
    for k in range(2 * STEPS_PER_OBJECT):
        _, _, done, truncated, _ = env.step(A["bigger"])
        assert truncated == (k == 2 * STEPS_PER_OBJECT - 1) and not done
    env.reset(options={"image": 0})
    for k in range(4):                                    # the objects plus two triggers
        _, r, done, truncated, _ = env.step(TRIGGER)
        assert r == -ETA and truncated == (k == 3) and not done


def test_the_oracle_finds_nearly_every_object_and_random_search_does_not(shapes):
    env = Locate(shapes.splits["train"])
    eps = baselines.episodes(env, 100, 0)
    assert len(eps) == len(env.sources)
    oracle = baselines.evaluate(baselines.oracle_policy, env, eps)
    assert oracle["recall50"] >= 0.9 and oracle["ap50"] > 0.8 and oracle["ap"] > 0.2
    assert oracle["mean_iou"] > 0.6 and oracle["steps_per_object"] < STEPS_PER_OBJECT
    rand = baselines.evaluate(baselines.random_agent(0), env, eps)
    assert rand["recall50"] < 0.3 and rand["ap50"] < 0.3
    assert oracle["objects"] == rand["objects"] == sum(len(env.truth[e["image"]]) for e in eps)


def test_one_shot_baselines_give_one_box_per_image_and_score_low(shapes):
    env = Locate(shapes.splits["train"])
    eps = baselines.episodes(env, 12, 3)
    assert eps == baselines.episodes(env, 12, 3) and len({e["image"] for e in eps}) == 12
    whole = baselines.evaluate(baselines.whole_image, env, eps)
    assert [len(d) for d in whole["detections"]] == [1] * 12
    assert all(d[0][0] == [0, 0, 96, 96] for d in whole["detections"])
    assert whole["ap50"] < 0.2 and whole["ap"] < 0.1
    mw, mh = baselines.mean_size(shapes.splits["train"])
    assert 9 < mw < 48 and 9 < mh < 48
    centre = baselines.evaluate(baselines.centre_box(mw, mh), env, eps)
    assert [len(d) for d in centre["detections"]] == [1] * 12
    box = centre["detections"][0][0][0]
    assert box == pytest.approx([48 - mw / 2, 48 - mh / 2, 48 + mw / 2, 48 + mh / 2])


def test_scores_set_by_a_policy_order_the_detections():
    env = Locate([det([[50, 0, 100, 100]])])
    plan = [A["right"], TRIGGER]

    def scored(e):
        a = plan[e.steps] if e.steps < len(plan) else None
        if a == TRIGGER:
            e.last_score = 0.7
        return a
    r = baselines.evaluate(scored, env, [{"image": 0}])
    assert r["detections"] == [[([20, 0, 100, 100], 0.7)]]
    assert r["recall50"] == 1.0 and r["mean_iou"] == pytest.approx(0.625) and r["ap50"] == pytest.approx(1.0)
    assert r["steps_per_object"] == 2
