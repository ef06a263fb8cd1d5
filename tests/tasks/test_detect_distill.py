"""`deepix train detect --teacher RUN`: a smaller detector follows a trained one's class scores, boxes and
centre-ness point by point, and beats the same detector trained alone."""
import json

import pytest
import torch

import deepix
from deepix.errors import UserError
from deepix.tasks.detect import fcos_head


def test_the_distillation_loss_is_least_where_the_student_answers_as_the_teacher():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 60, 3 + 5, generator=g)
    teacher[..., 3:7] = teacher[..., 3:7].abs() * 10 + 1  # distances in pixels
    assert fcos_head.distill(teacher.clone(), teacher) < 1e-4  # the same answers cost nothing
    wrong_class, wrong_box = teacher.clone(), teacher.clone()
    wrong_class[..., :3] = -teacher[..., :3]
    wrong_box[..., 3:7] *= 3
    assert fcos_head.distill(wrong_class, teacher) > 0.5 and fcos_head.distill(wrong_box, teacher) > 0.5
    # the box and centre-ness terms count only where the teacher sees something: the same wrong boxes on points
    # it scores as background cost almost nothing
    teacher[..., :3] = wrong_box[..., :3] = -20
    assert fcos_head.distill(wrong_box, teacher) < 0.01


def test_a_detector_taught_beats_the_same_detector_alone(detect_run, tmp_path):
    r = deepix.train("detect", data=detect_run["data"], epochs=10, batch=4, augment="none", precision="fp32",
                     width=0.5, teacher=str(detect_run["run"]), distill_weight=0.7, name="s", quiet=True, threads=2,
                     project=str(tmp_path))
    s = json.loads((r["run"] / "summary.json").read_text())
    taught, alone = s["test"]["map50"], s["baseline"]["map50"]
    assert s["teacher"]["map50"] > alone + 0.05  # the teacher is clearly better than the student alone
    # measured: 0.70 against 0.51 (teacher 0.68); with seeds 1 and 2, +0.17 and +0.29
    assert taught > alone + 0.1, (taught, alone)
    assert s["teacher"]["student_params"] < s["teacher"]["params"] / 3
    page = (r["run"] / "report.html").read_text()
    assert "Distilled from the teacher" in page and "trained alone" in page


def test_a_detect_teacher_must_see_the_same_classes_at_the_same_size(detect_run, classify_run, tmp_path):
    from deepix.data.shapes import load_shapes
    data = detect_run["data"]
    two = load_shapes(8, 4, 4, size=32, seed=1, classes=("square", "circle"))
    for teacher, settings, says in ((classify_run, {}, "is a classify run"),
                                    (detect_run["run"], {"imgsz": 64}, "--imgsz 32"),
                                    (detect_run["run"], {"model": "tv:fcos_resnet50_fpn"}, "deepix's own detectors"),
                                    (detect_run["run"], {"data": two}, "same classes")):
        with pytest.raises(UserError, match=says):
            deepix.train("detect", **{"data": data, "epochs": 1, "teacher": str(teacher), "quiet": True,
                                      "project": str(tmp_path), **settings})
