"""The command line: a killed run resumes to the same weights; user errors are one line, exit 2."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.kill import killed_run, same_end

ENV = {**os.environ, "DEEPIX_DATA": "/nonexistent-deepix-data"}
BASE = ["--data", "digits", "--model", "seed-cnn", "--threads", "1", "--quiet", "--batch", "16"]


def deepix(*args, check=False):
    r = subprocess.run([sys.executable, "-m", "deepix", *args], capture_output=True, text=True, env=ENV, timeout=600)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("kill", [dict(at_step=37), dict(in_checkpoint=2)], ids=["at a step", "mid-checkpoint"])
def test_a_killed_run_resumes_to_the_uninterrupted_weights(tmp_path_factory, cli, kill):
    # 4 epochs of 12 steps (digits' 1,000-odd training images, batch 96); killed in epoch 4, or while epoch 2's
    # checkpoint is half written (its weights saved, its training state not yet)
    args = ["train", *BASE, "--batch", "96", "--epochs", "4", "--project", str(whole_root(tmp_path_factory))]
    whole = whole_root(tmp_path_factory) / "classify" / "whole"
    if not whole.exists():
        cli(*args, "--name", "whole", check=True)  # the uninterrupted reference needs no process of its own
    root = tmp_path_factory.mktemp("killed")
    assert killed_run([*args[:-1], root, "--name", "killed"], **kill) == -signal.SIGKILL
    run = root / "classify" / "killed"
    assert not (run / "summary.json").exists()
    cli("train", "--resume", str(run), "--quiet", check=True)
    assert same_end(whole, run)


def whole_root(factory):
    return factory.getbasetemp() / "whole-classify"


@pytest.fixture(scope="module")
def run(digits_run):
    return digits_run[0]


def test_train_prints_the_report_and_test_accuracy(digits_run):
    _, stdout = digits_run  # the shared run was trained through the command line
    assert "report:" in stdout and "test accuracy" in stdout


def test_predict_val_models_report(run, tmp_path, cli):
    img = tmp_path / "x.png"
    Image.fromarray((torch.rand(20, 30) * 255).byte().numpy()).save(img)
    out = deepix("predict", str(run), str(img), "--json", "--top-k", "3", check=True).stdout
    answer = json.loads(out.splitlines()[0])
    assert answer["image"] == str(img) and len(answer["top"]) == 3
    assert "accuracy" in cli("val", str(run), check=True).stdout
    assert "seed-cnn" in cli("models", check=True).stdout
    assert "report:" in cli("report", str(run), check=True).stdout


def one_line_error(r, *words):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.strip().splitlines() if x]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_user_errors_are_one_line(tmp_path, run, cli):
    one_line_error(cli("train", "--data", str(tmp_path / "missing"), "--project", str(tmp_path)), "not found")
    one_line_error(cli("train", "--data", "imagenet-1k"), "unknown data set")
    one_line_error(cli("train", "--data", "digits", "--model", "nope", "--project", str(tmp_path)), "unknown model")
    one_line_error(deepix("train", "--lr", "0"), "--lr")  # once as a real process
    one_line_error(cli("train", "--epochs", "0"), "--epochs")
    one_line_error(cli("train", "--data", "digits", "--batch", "100000", "--project", str(tmp_path)), "--batch")
    one_line_error(cli("train", "--data", "cifar10", "--project", str(tmp_path)), "cifar10")
    one_line_error(cli("predict", str(tmp_path), "x.png"), "not a deepix run")
    one_line_error(cli("predict", str(run), str(tmp_path / "none.png")), "not found")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    one_line_error(cli("predict", str(run), str(bad)), "bad.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() != 0:  # root writes anywhere; a file where the folder should be fails for everyone
        one_line_error(cli("train", *BASE, "--project", str(locked)), "cannot write")
    (tmp_path / "file").write_text("")
    one_line_error(cli("train", *BASE, "--project", str(tmp_path / "file")), "cannot write")
