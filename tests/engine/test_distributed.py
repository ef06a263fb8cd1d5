"""Several processes on the CPU (gloo), started by `--nproc` as torchrun would start them."""
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

import deepix
from deepix.launch import child_argv

# no BatchNorm, no dropout, no augmentation, fp32: one process on the global batch and two on its halves
# compute the same gradients, so the curves agree up to float summation order (plain SGD keeps it so;
# Adam's normalised steps would blow those 1e-7 differences up to 1e-4)
SAME = ["--data", "digits", "--model", "seed-cnn", "--dropout", "0", "--augment", "none", "--precision", "fp32",
        "--batch", "64", "--optimizer", "sgd", "--lr", "0.05", "--quiet"]
TOL = 2e-3  # relative, on every epoch's train and val loss


def deepix_cli(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "deepix", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def pair(tmp_path_factory, cli):
    """The same training in one process (this one) and in two."""
    root = tmp_path_factory.mktemp("ddp")
    one = cli("train", *SAME, "--epochs", "3", "--name", "one", "--project", root / "runs")
    assert one.returncode == 0, one.stderr
    two = deepix_cli("train", *SAME, "--epochs", "3", "--name", "two", "--nproc", "2", cwd=root)
    assert two.returncode == 0, two.stderr
    return root / "runs" / "classify" / "one", root / "runs" / "classify" / "two", two


def test_two_processes_follow_the_curve_of_one_with_the_same_global_batch(pair):
    one, two, _ = pair
    a, b = rows(one), rows(two)
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        for key in ("train_loss", "val_loss", "train_accuracy"):
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=TOL), (key, ra, rb)
    wa, wb = load_file(one / "weights" / "last.safetensors"), load_file(two / "weights" / "last.safetensors")
    for k in wa:  # after one epoch they agree to 2e-5; training grows any float-order difference, as it would any
        assert (wa[k] - wb[k]).abs().max() < 3e-3, k


def test_only_rank_0_writes_and_reports(pair):
    _, two, proc = pair
    assert proc.stdout.count("report:") == 1  # one process speaks
    summary = json.loads((two / "summary.json").read_text())
    assert summary["train"]["processes"] == 2
    assert (two / "report.html").is_file()
    assert not list(two.parent.glob("two?*"))  # the other rank made no second run folder


def test_sharded_predict_merges_into_input_order(pair, tmp_path, cli):
    one, _, _ = pair
    from sklearn.datasets import load_digits
    digits = load_digits()
    for i in range(13):  # nested folders, an odd count: the ranks get 7 and 6
        folder = tmp_path / "images" / ("a" if i < 5 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 16).astype(np.uint8)).save(folder / f"{i:02d}.png")
    single = cli("predict", str(one), str(tmp_path / "images"), "-o", str(tmp_path / "p1"))  # in this process
    assert single.returncode == 0, single.stderr
    multi = deepix_cli("predict", str(one), str(tmp_path / "images"), "-o", str(tmp_path / "p2"), "--nproc", "2",
                       cwd=tmp_path)
    assert multi.returncode == 0, multi.stderr
    a = [json.loads(line) for line in (tmp_path / "p1" / "predictions.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "p2" / "predictions.jsonl").read_text().splitlines()]
    assert len(a) == len(b) == 13
    assert [r["image"] for r in a] == [r["image"] for r in b] == sorted(r["image"] for r in a)
    assert [r["class"] for r in a] == [r["class"] for r in b]
    assert not list((tmp_path / "p2").glob(".*"))  # the parts are merged away


def test_killing_a_rank_ends_the_run_with_one_line_and_it_resumes_on_one_process(tmp_path, cli):
    args = [sys.executable, "-m", "deepix", "train", *SAME, "--epochs", "400", "--nproc", "2"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMP_RUN_DIR": str(tmp_path)})  # tells this test's ranks apart
    run = tmp_path / "runs" / "classify" / "exp1"
    deadline = time.time() + 120
    while not (run / "state" / "last.pt").is_file() and time.time() < deadline:
        time.sleep(0.1)
    assert (run / "state" / "last.pt").is_file(), proc.stderr.read() if proc.poll() is not None else "no epoch"
    victim = None
    for pid in os.listdir("/proc"):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"RANK=1" in env and f"TMP_RUN_DIR={tmp_path}".encode() in env:
            victim = int(pid)
    assert victim, "rank 1 not found"
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    # one line from deepix, no traceback (a C++ warning from the transport, if any, is not ours to silence)
    lines = [line for line in err.splitlines() if "deepix" in line or "Error" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "rank 1 was killed (SIGKILL)" in lines[0] and f"--resume {Path('runs/classify/exp1')}" in lines[0]
    done = len(rows(run))
    assert done >= 1
    again = cli("train", "--resume", run, "--epochs", done + 1, "--quiet")  # one process: this one
    assert again.returncode == 0, again.stderr
    assert [int(r["epoch"]) for r in rows(run)] == list(range(1, done + 2))


def test_a_task_with_its_own_optimizer_steps_trains_under_two_processes(tmp_path):
    r = deepix_cli("pretrain", "--data", "digits", "--imgsz", "16", "--epochs", "1", "--batch", "128", "--model", "seed-cnn",
                   "--quiet", "--nproc", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "pretrain" / "exp1"
    assert (run / "weights" / "encoder.safetensors").is_file() and len(rows(run)) == 1


def test_an_agent_learns_under_two_processes_each_with_its_own_environments(tmp_path):
    r = deepix_cli("train", "agent", "--epochs", "2", "--envs", "8", "--rollout", "32", "--batch", "128", "--lr", "0.01",
                   "--threads", "1", "--quiet", "--nproc", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "agent" / "exp1"
    assert [float(row["val_frames"]) for row in rows(run)] == [2 * 8 * 32 * 8 * e for e in (1, 2)]  # both ranks' frames
    test = json.loads((run / "summary.json").read_text())["test"]["agents"]
    assert test["agent"]["return"] > test["random"]["return"] + 0.5, test


def test_sync_bn_on_cpus_is_one_clear_line(tmp_path):
    r = deepix_cli("train", "--data", "digits", "--epochs", "1", "--sync-bn", "--nproc", "2", "--quiet", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "--sync-bn needs GPUs" in r.stderr  # said once


def test_launch_flags_are_not_passed_on():
    argv = ["train", "--nproc", "2", "--epochs", "3", "--nnodes=1", "--rdzv-endpoint", "h:1", "--rdzv-id", "j"]
    assert child_argv(argv) == ["train", "--epochs", "3"]


def test_several_machines_need_a_meeting_point():
    with pytest.raises(deepix.errors.UserError, match="--rdzv-endpoint"):
        from deepix.launch import launch
        launch(["train"], 2, nnodes=2)


def test_sharded_detect_and_restore_predict_write_what_one_process_writes(detect_run, restore_run, tmp_path, cli):
    runs = {"detect": detect_run["run"], "restore": restore_run}
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(images / f"{i}.png")
    for task, out_name in (("detect", "predictions.json"), ("restore", None)):
        outs = []
        for nproc in ("1", "2"):
            out = tmp_path / f"{task}{nproc}"
            low = ["--conf", "0.01"] if task == "detect" else []  # a 1-epoch detector: keep its faint boxes
            if nproc == "1":  # one process: this one
                r = cli("predict", str(runs[task]), str(images), "-o", str(out), *low)
            else:
                r = deepix_cli("predict", str(runs[task]), str(images), "-o", str(out), "--nproc", nproc, *low,
                               cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            outs.append(out)
        assert sorted(p.name for p in outs[0].iterdir()) == sorted(p.name for p in outs[1].iterdir())
        if out_name:
            a, b = (json.loads((o / out_name).read_text()) for o in outs)
            assert [d["image_id"] for d in a] == [d["image_id"] for d in b]
            assert [d["category"] for d in a] == [d["category"] for d in b]
        else:
            assert len(list(outs[1].glob("*.png"))) == 5


def test_generation_trains_under_two_processes(tmp_path):
    # its judge is a classify run inside the run (all ranks train it), and torchmetrics' FID must not wait for
    # ranks that are not measuring
    r = deepix_cli("train", "generate", "--data", "digits", "--imgsz", "16", "--model", "dcgan", "--width", "0.25",
                   "--epochs", "1", "--judge-epochs", "1", "--test-samples", "300", "--quiet", "--nproc", "2", cwd=tmp_path,
                   timeout=240)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "runs" / "generate" / "exp1" / "summary.json").read_text())
    test = summary["test"]
    assert summary["train"]["epochs_run"] == 1 and summary["train"]["processes"] == 2
    # a real measurement: one epoch's samples lie far further from the test images than the training images do
    assert math.isfinite(test["fid"]) and test["fid"] > 10 * max(test["fid_floor"], test["fid_train"]) > 0
    assert test["samples"] > 0 and 0 <= test["precision"] <= 1


def test_segmentation_trains_under_two_processes(tmp_path):
    # torchmetrics syncs across processes by itself unless told not to: rank 0 alone scores, so it would wait forever
    from tests.tasks.test_segment import square_pairs
    data = square_pairs(tmp_path / "pairs", n=24)
    r = deepix_cli("train", "segment", "--data", str(data), "--epochs", "2", "--threads", "1", "--quiet", "--nproc", "2",
                   cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "segment" / "exp1"
    assert len(rows(run)) == 2 and "miou" in json.loads((run / "summary.json").read_text())["test"]
