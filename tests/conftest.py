"""Shared fixtures and helpers. The tiny runs that several test files use are trained once per session (the
four that most files use once for all pytest-xdist workers, the rest once per worker) and must be treated as
read-only: a test that changes a run works on a copy (`copy_run`)."""
import contextlib
import io
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# tests must never reach the network or a user's cache
os.environ.setdefault("DEEPIX_DATA", "/nonexistent-deepix-data")
# the reports' figures at half their resolution: drawing them is most of a tiny run's time, and no test reads pixels
os.environ.setdefault("DEEPIX_PLOT_DPI", "55")
# under pytest-xdist each worker has a core of its own: a test's torch threads (and its subprocesses') stay at one,
# since two threads on a core that the other worker also uses ran 1.5x slower than one (benchmarks/shared_core.py)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    _set_threads = torch.set_num_threads
    torch.set_num_threads = lambda n: _set_threads(1)
    _set_threads(1)


def in_process(*args, check=False):
    """The CLI's main() in this process (no torch import per call); returns a CompletedProcess."""
    from deepix.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    r = subprocess.CompletedProcess(args, e.value.code, out.getvalue(), err.getvalue())
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="session")
def cli():
    """`cli("predict", run, img)`: the command line run in this process, as a CompletedProcess."""
    return in_process


@pytest.fixture(scope="session")
def copy_run(tmp_path_factory):
    """`copy_run(run)`: a private copy of a shared run folder, for tests that write into it."""
    def copy(run):
        dest = tmp_path_factory.mktemp("copy") / run.parent.name / run.name
        shutil.copytree(run, dest)
        return dest
    return copy


@pytest.fixture
def tiny_arrays():
    """A 3-class set of 8x8 images whose class is where a bright square sits: easy to learn."""
    rng = np.random.default_rng(0)
    n = 90
    y = np.repeat(np.arange(3), n // 3)
    x = rng.integers(0, 40, size=(n, 8, 8)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 * c:2 * c + 3, 1:4] = 230
    return x, y


@pytest.fixture(scope="session")
def fast():
    """Settings of a tiny classify run on the built-in 8x8 digits."""
    return dict(data="digits", model="seed-cnn", epochs=2, batch=64, quiet=True, threads=1)


def _digits_28():
    """scikit-learn's 8x8 digits blown up to 28x28: small and fast, 10 classes."""
    import torch
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images[:600]).float()[:, None] * (255 / 16)
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear").round().clamp(0, 255).byte()
    return x[:, 0].numpy(), d.target[:600]


@pytest.fixture(scope="session")
def digits_28():
    """`digits_28()`: 600 of scikit-learn's digits at 28x28, fresh arrays on each call."""
    return _digits_28


@contextlib.contextmanager
def few_generate_samples(eval=200):
    """Generate runs score fewer samples after each epoch than the 1,000 of a real run (and pass --test-samples)."""
    from deepix.tasks.generate import train as g
    saved = g.EVAL_SAMPLES
    g.EVAL_SAMPLES = eval
    try:
        yield
    finally:
        g.EVAL_SAMPLES = saved


# ---- shared tiny runs, trained once per session --------------------------------------------------------------

@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """seed-cnn, 2 epochs on the 8x8 digits, trained through the command line: (run folder, its stdout)."""
    root = tmp_path_factory.mktemp("digits")
    r = in_process("train", "--data", "digits", "--model", "seed-cnn", "--epochs", 2, "--batch", 64, "--threads", 1,
                   "--quiet", "--project", root, "--name", "d", check=True)
    return root / "classify" / "d", r.stdout


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    """Crops of two photographs in train/val/test folders."""
    import skimage.data
    from PIL import Image
    root = tmp_path_factory.mktemp("photos")
    cam = skimage.data.camera()
    for split, crops in (("train", [cam[:96, :96], cam[200:296, 300:396]]), ("val", [cam[300:364, 100:164]]),
                         ("test", [cam[100:180, 150:250]])):
        (root / split).mkdir()
        for i, c in enumerate(crops):
            Image.fromarray(c).save(root / split / f"{i}.png")
    return root


COMMON = dict(quiet=True, threads=1, epochs=1)


def once(tmp_path_factory, key: str, make) -> Path:
    """The folder where `make(folder)` trained a shared run, once for the whole session: under pytest-xdist the
    first worker to ask trains it where every worker sees it, and the others wait for it and read it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(key)
        make(folder)
        return folder
    from filelock import FileLock
    folder = tmp_path_factory.getbasetemp().parent / f"shared-{key}"
    with FileLock(f"{folder}.lock"):
        if not (folder / "done").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / "done").touch()
    return folder


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory):
    import deepix
    return once(tmp_path_factory, "classify-run", lambda root: deepix.train(
        data="mnist-5k", model="vgg7", width=0.25, batch=256, name="c", project=str(root), **COMMON)) / "classify" / "c"


@pytest.fixture(scope="session")
def restore_run(tmp_path_factory, photos):
    import deepix
    return once(tmp_path_factory, "restore-run", lambda root: deepix.train(
        "restore", data=str(photos), model="unet-s", width=0.25, patches=32, batch=16, patch=32, name="r",
        project=str(root), **COMMON)) / "restore" / "r"


# one class of plain squares at 32x32: the smallest set on which fcos-n learns real boxes in seconds
EASY_SQUARES = dict(classes=("square",), max_objects=1, min_side=0.3, max_side=0.6, background="plain",
                    occlusion=False, empty_fraction=0)


@pytest.fixture(scope="session")
def detect_run(tmp_path_factory):
    """fcos-n, 30 epochs on 64 scenes of one square at 32x32 (16 val, 16 test): {"run", "data"}.
    Measured: test mAP@.5 0.68, mAP 0.23 (fp32, 15 s on 2 threads)."""
    import deepix
    from deepix.data.shapes import load_shapes
    ds = load_shapes(64, 16, 16, size=32, seed=1, **EASY_SQUARES)  # drawn from its seed: the same in every worker
    root = once(tmp_path_factory, "detect-run", lambda root: deepix.train(
        "detect", data=ds, epochs=30, batch=4, augment="none", precision="fp32", name="d", quiet=True, threads=2,
        project=str(root)))
    return {"run": root / "detect" / "d", "data": ds}


@pytest.fixture(scope="session")
def generate_run(tmp_path_factory, digits_28):
    import deepix

    def make(root):
        with few_generate_samples():
            deepix.train("generate", data=digits_28(), model="dcgan", width=0.25, batch=32, judge_epochs=1,
                         test_samples=300, name="g", project=str(root), **COMMON)
    return once(tmp_path_factory, "generate-run", make) / "generate" / "g"


@pytest.fixture(scope="session")
def ddpm_run(tmp_path_factory, digits_28, generate_run):
    import deepix
    with few_generate_samples():  # judged by the GAN's judge (--judge): one fewer classifier to train
        return deepix.train("generate", data=digits_28(), model="ddpm", width=0.25, batch=32, judge=str(generate_run),
                            test_samples=300, sample_steps=5, name="dd", project=str(tmp_path_factory.mktemp("runs")),
                            **COMMON)["run"]


@pytest.fixture(scope="session")
def runs(classify_run, restore_run, detect_run, generate_run):
    """Tiny classify, restore, detect and GAN runs for export and serve."""
    return {"classify": classify_run, "restore": restore_run, "detect": detect_run["run"], "generate": generate_run}


# ---- a real server on a loopback port ------------------------------------------------------------------------

def png(a: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def to_png():
    """`to_png(array)`: the bytes of a PNG file."""
    return png


class Server:
    def __init__(self, app):
        import uvicorn
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def start_server():
    """`start_server(app)`: a uvicorn server in a thread; `.url`, `.stop()` (stopped at the end anyway)."""
    started = []

    def start(app):
        started.append(Server(app))
        return started[-1]
    yield start
    for s in started:
        if s.thread.is_alive():
            s.stop()


# the slowest files first (each file runs whole on one pytest-xdist worker): started last, one of them would leave
# the other worker idle at the end (serial seconds on 2 cores, 2026-12-07: 151, 57, 52, 50, 45, 39)
SLOW_FIRST = ("engine/test_distributed.py", "tasks/test_generate.py", "tasks/test_locate.py", "tasks/test_classify.py",
              "tasks/test_navigate_agent.py", "explain/test_explain.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return next((i for i, slow in enumerate(SLOW_FIRST) if path.endswith(slow)), len(SLOW_FIRST))
    items.sort(key=rank)  # stable: the order within a file, and among the rest, stays
