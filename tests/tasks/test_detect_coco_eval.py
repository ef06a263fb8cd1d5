"""The COCO evaluator against AP worked out by hand on tiny cases.

How COCO's AP goes, for one class at one IoU threshold: detections, highest score first, are each
a true positive (TP) when they match an unmatched box with IoU >= the threshold, else a false
positive (FP). After each, recall = TP / boxes and precision = TP / (TP + FP). Precision is made
non-increasing from the right (each point takes the best precision at any recall at or past it),
then read at the 101 recall points 0, 0.01, ..., 1: at point r, the precision of the first
detection whose recall reaches r, or 0 when no detection reaches it. AP is the mean of those 101
values; AP@[.5:.95] is the mean over the ten thresholds 0.5, 0.55, ..., 0.95.
So when precision stays 1 up to recall R and nothing reaches further, AP = (points <= R) / 101:
R = 1/2 gives 51/101 (0, ..., 0.50) and R = 2/3 gives 67/101 (0, ..., 0.66).
"""

import numpy as np
import pytest
import torch

from deepix.data.boxes import DetImage
from deepix.data.coco_eval import _cocoeval, _summary_lines, confusion_matrix, evaluate, plot_confusion, plot_pr

A = [0.0, 0.0, 100.0, 100.0]
B = [200.0, 200.0, 300.0, 300.0]


def image(boxes, labels, size=(400, 400)):
    return DetImage("", size, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels).long())


def pred(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels).long()}


def test_perfect_predictions_score_one():
    truth = [image([A, B], [0, 1]), image([[10, 20, 60, 90]], [1])]
    preds = [pred([A, B], [0.9, 0.8], [0, 1]), pred([[10, 20, 60, 90]], [0.7], [1])]
    r = evaluate(truth, preds, ["a", "b"])
    for key in ("map", "map50", "map75", "mar_100"):
        assert r[key] == pytest.approx(1.0, abs=1e-9)
    assert r["per_class"] == {c: {"map": pytest.approx(1.0), "map50": pytest.approx(1.0)} for c in "ab"}
    assert r["pr"]["precision"]["a"] == pytest.approx([1.0] * 101) and len(r["pr"]["recall"]) == 101
    assert r["evaluator"].startswith("pycocotools") and r["max_dets"] == 100
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in r["summary_text"]


def test_shifted_box_counts_only_at_low_iou_thresholds():
    # B shifted 20 px right: overlap 80x100 = 8000, union 20000 - 8000, IoU 2/3.
    # At 0.5, 0.55, 0.6, 0.65 both are TPs: AP 1. At the six thresholds 0.7..0.95 it is an FP after
    # the exact TP: recall stops at 1/2 with precision 1, AP 51/101. Mean: (4 + 6 * 51/101) / 10 = 71/101.
    truth = [image([A, B], [0, 0])]
    r = evaluate(truth, [pred([A, [220, 200, 320, 300]], [0.9, 0.8], [0, 0])], ["a"])
    assert r["map"] == pytest.approx(71 / 101, abs=1e-6)
    assert r["map50"] == pytest.approx(1.0, abs=1e-6)
    assert r["map75"] == pytest.approx(51 / 101, abs=1e-6)
    assert r["per_class"]["a"]["map"] == pytest.approx(71 / 101, abs=1e-6)
    assert r["mar_100"] == pytest.approx((4 * 1.0 + 6 * 0.5) / 10, abs=1e-6)


def test_missed_box_caps_recall():
    # Two of three boxes found, both exactly: precision 1 up to recall 2/3 at every threshold, AP 67/101.
    truth = [image([A, B, [50, 250, 150, 350]], [0, 0, 0])]
    r = evaluate(truth, [pred([A, B], [0.9, 0.8], [0, 0])], ["a"])
    assert r["map"] == pytest.approx(67 / 101, abs=1e-6)
    assert r["mar_100"] == pytest.approx(2 / 3, abs=1e-6)
    assert r["pr"]["precision"]["a"][:67] == pytest.approx([1.0] * 67) and r["pr"]["precision"]["a"][67:] == [0.0] * 34


def test_duplicate_is_a_false_positive_after_the_true_positive():
    # A (0.9) TP, A again (0.8) FP, B (0.7) TP: (recall, precision) = (1/2, 1), (1/2, 1/2), (1, 2/3).
    # Made non-increasing: 1, 2/3, 2/3. Points 0..0.50 read 1, points 0.51..1 read 2/3:
    # AP = (51 + 50 * 2/3) / 101 = 253/303, the same at every threshold (the boxes are exact).
    truth = [image([A, B], [0, 0])]
    r = evaluate(truth, [pred([A, A, B], [0.9, 0.8, 0.7], [0, 0, 0])], ["a"])
    assert r["map"] == pytest.approx(253 / 303, abs=1e-6)
    assert r["mar_100"] == pytest.approx(1.0, abs=1e-6)


def test_no_predictions_score_zero_and_classes_without_boxes_are_none():
    truth = [image([A], [0]), image([], [])]
    r = evaluate(truth, [pred([], [], []), pred([], [], [])], ["a", "b"])
    assert r["map"] == r["map50"] == r["mar_100"] == 0.0
    assert r["per_class"] == {"a": {"map": 0.0, "map50": 0.0}, "b": {"map": None, "map50": None}}
    assert r["pr"]["precision"]["b"] is None
    nothing = evaluate([], [], ["a"])
    assert nothing["map"] is None and nothing["per_class"]["a"]["map"] is None


def test_background_image_and_class_without_boxes():
    # The FP on the empty image outranks the TP: (0, 0) then (1, 1/2); made non-increasing 1/2, 1/2, so AP 1/2.
    # Class "b" has no box: its FP is not scored, its AP is None and the mean is class "a"'s alone.
    truth = [image([A], [0]), image([], [])]
    preds = [pred([A, B], [0.8, 0.95], [0, 1]), pred([B], [0.9], [0])]
    r = evaluate(truth, preds, ["a", "b"])
    assert r["per_class"]["a"]["map"] == pytest.approx(0.5, abs=1e-6)
    assert r["per_class"]["b"] == {"map": None, "map50": None}
    assert r["map"] == pytest.approx(0.5, abs=1e-6)


def test_max_dets_drops_low_scores():
    # Two far-off FPs outrank the one TP. Kept to 2 the TP is gone: AP 0. With all 3: (0, 0), (0, 0),
    # (1, 1/3), made non-increasing 1/3 everywhere, so AP 1/3.
    truth = [image([A], [0])]
    preds = [pred([[200, 200, 250, 250], [300, 300, 350, 350], A], [0.9, 0.8, 0.7], [0, 0, 0])]
    two = evaluate(truth, preds, ["a"], max_dets=2)
    assert two["map"] == 0.0 and two["mar_100"] == 0.0 and two["max_dets"] == 2
    assert two["summary_text"].splitlines()[0].endswith("maxDets=  2 ] = 0.000")
    assert evaluate(truth, preds, ["a"], max_dets=3)["map"] == pytest.approx(1 / 3, abs=1e-6)
    full = evaluate(truth, preds, ["a"])
    assert full["map"] == pytest.approx(1 / 3, abs=1e-6)


def test_summary_written_here_reads_as_pycocotools_own():
    # Away from maxDets [1, 10, 100] the summary is written here, so it must match summarize() where both can run.
    truth = [image([A, B, [10, 10, 30, 30]], [0, 0, 0])]
    preds = [pred([A, [220, 200, 320, 300], [10, 10, 28, 30]], [0.9, 0.8, 0.7], [0, 0, 0])]
    ev = _cocoeval(truth, preds, ["a"], 100)
    assert _summary_lines(ev) == evaluate(truth, preds, ["a"])["summary_text"]


def test_size_buckets():
    # A 20x20 box (area 400 < 32^2) found, a 150x150 one (> 96^2) missed.
    # small: 1 box, found: AP 1. large: 1 box, missed (the small detection is ignored there): AP 0.
    # medium: no box: None. all: recall 1/2 at precision 1: AP 51/101.
    truth = [image([[10, 10, 30, 30], [100, 100, 250, 250]], [0, 0])]
    r = evaluate(truth, [pred([[10, 10, 30, 30]], [0.9], [0])], ["a"])
    assert r["map_small"] == pytest.approx(1.0, abs=1e-6)
    assert r["map_medium"] is None
    assert r["map_large"] == 0.0
    assert r["map"] == pytest.approx(51 / 101, abs=1e-6)


def test_confusion_matrix():
    # a found as a, b called c, c missed, a spurious b, and a low-score a that the threshold drops.
    truth = [image([A, B, [50, 250, 150, 350]], [0, 1, 2])]
    preds = [pred([A, B, [300, 0, 380, 80], [50, 250, 150, 350]], [0.9, 0.8, 0.7, 0.1], [0, 2, 1, 0])]
    cm = confusion_matrix(truth, preds, num_classes=3)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = 1   # true a, predicted a
    expected[1, 2] = 1   # true b, predicted c
    expected[2, 3] = 1   # true c, missed
    expected[3, 1] = 1   # background, predicted b
    np.testing.assert_array_equal(cm, expected)
    # the low-score box counts once the threshold lets it in: it finds the missed c, as the wrong class
    assert confusion_matrix(truth, preds, 3, score_threshold=0.05)[2, 0] == 1


def test_plots_are_written(tmp_path):
    truth = [image([A, B], [0, 1])]
    preds = [pred([A, [220, 200, 320, 300]], [0.9, 0.8], [0, 1])]
    r = evaluate(truth, preds, ["a", "b", "c"])
    assert plot_pr(r, ["a", "b", "c"], tmp_path / "pr.png").stat().st_size > 1000
    cm = confusion_matrix(truth, preds, 3)
    assert plot_confusion(cm, ["a", "b", "c"], tmp_path / "confusion.png").stat().st_size > 1000
