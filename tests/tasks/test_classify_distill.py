"""`deepix train classify --teacher RUN` (and restore): a small model learns from a trained teacher, the report
states its gain over the same model trained alone, and a teacher that answers another question is refused."""
import json

import deepix


def test_a_student_taught_beats_the_same_student_alone(tmp_path):
    teacher = deepix.train(data="mnist-5k", model="seed-cnn", batch=32, epochs=1, threads=1, quiet=True,
                           project=str(tmp_path), name="teacher")["run"]
    # two labelled images per class: the labels alone say little, the teacher's soft targets say much more
    r = deepix.train(data="mnist-5k", model="seed-cnn", teacher=str(teacher), labels_per_class=2,
                     distill_weight=0.9, epochs=2, threads=1, quiet=True, project=str(tmp_path), name="s")
    summary = json.loads((tmp_path / "classify" / "s" / "summary.json").read_text())
    taught, alone = summary["test"]["accuracy"], summary["baseline"]["accuracy"]
    assert summary["teacher"]["accuracy"] > alone + 0.05  # the teacher is clearly better than the student alone
    assert taught > alone + 0.05, (taught, alone)  # measured: 0.83 against 0.66
    assert summary["teacher"]["student_params"] == summary["teacher"]["params"] > 0  # the same model here
    page = (tmp_path / "classify" / "s" / "report.html").read_text()
    assert "from the teacher" in page and "alone on the same labels" in page
    assert r["test"]["accuracy"] == taught


def test_a_teacher_for_other_classes_or_tasks_is_one_line_exit_2(classify_run, restore_run, tiny_arrays, tmp_path,
                                                                cli):
    other = deepix.train(data=tiny_arrays, epochs=1, batch=16, threads=1, quiet=True, project=str(tmp_path), name="t")["run"]
    for teacher, says in ((other, "same classes"), (restore_run, "is a restore run")):
        r = cli("train", "classify", "--teacher", teacher, "--epochs", 1, "--project", tmp_path)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli("train", "classify", "--teacher", classify_run, "--distill-weight", 2)
    assert r.returncode == 2 and "--distill-weight" in r.stderr


def test_a_restore_teacher_must_do_the_same_job(classify_run, restore_run, photos, tmp_path, cli):
    for teacher, extra, says in ((restore_run, ["--degrade", "blur:1.6"], "must do the same job"),
                                 (classify_run, [], "is a classify run")):
        r = cli("train", "restore", "--data", photos, "--teacher", teacher, *extra, "--epochs", 1, "--project", tmp_path)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
