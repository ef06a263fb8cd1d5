"""The proof of the task contract: a new task (predict an image's mean brightness) written entirely here,
registered, and taken by every verb (train, val, predict, export, serve, report, advise, sweep) with no
edit anywhere in deepix."""
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import deepix
from deepix import tasks
from deepix.cli import run as deepix_cli
from deepix.data.inputs import to_batch
from deepix.data.loader import Batches
from deepix.data.types import Split
from deepix.engine.checkpoint import load_weights
from deepix.engine.fit import autocast
from deepix.tasks.base import Exportable, Job, Loaded, Report, Step, Task

SIDE = 12


def images(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise around a random level per image: uint8 (n, 1, SIDE, SIDE) and each image's mean in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    level = torch.rand(n, 1, 1, 1, generator=g) * 200 + 20
    x = (level + torch.randn(n, 1, SIDE, SIDE, generator=g) * 15).clamp(0, 255).round().to(torch.uint8)
    return x, x.float().div(255).mean(dim=(1, 2, 3))


def network() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 1))


class Mean(Step):
    def prepare(self, x, y, train, g=None):
        return x.float().div(255), y

    def loss(self, out, y):
        return F.mse_loss(out.float().squeeze(1), y)

    @torch.no_grad()
    def evaluate(self, model, val, dev, bf16):
        model.eval()
        x, y = self.prepare(val.x, val.y, False)
        with autocast(bf16, dev):
            out = model(x).float().squeeze(1)
        return {"loss": F.mse_loss(out, y).item(), "mae": (out - y).abs().mean().item()}


class Scorer(Loaded):
    task = "brightness"
    batching = True

    def __init__(self, run: Path):
        self.run, self.model = run, network()
        load_weights(self.model, run / "weights" / "best.safetensors")
        self.model.eval()

    def scores(self, x):
        with torch.no_grad():
            return self.model(x).squeeze(1)

    def predict(self, images, **options):
        return self.scores(to_batch(images, 1, (SIDE, SIDE))).tolist()

    def predict_files(self, sources, output, options):
        for path, v in zip(sources, self.predict(list(sources))):
            print(f"{path}: brightness {v:.3f}")

    def answer(self, images, options):
        return [{"brightness": v} for v in self.predict(list(images))]


class FromFile(Scorer):
    def __init__(self, file):
        self.file = file

    def scores(self, x):
        return torch.from_numpy(self.file.run({"images": x})).squeeze(1)


class Brightness(Task):
    name = "brightness"
    defaults = dict(data="levels", model="tiny", monitor="val_mae", epochs=6, batch=16, lr=0.03, schedule="constant",
                    weight_decay=0.0)

    def higher_is_better(self, monitor):
        return not monitor.endswith(("loss", "mae"))

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        model = network()
        (x, y), (vx, vy), (tx, ty) = images(cfg.seed, 128), images(cfg.seed + 1, 32), images(cfg.seed + 2, 32)

        def finish(run, result):
            load_weights(model, run / "weights" / "best.safetensors")
            test = Mean().evaluate(model, Split(tx, ty), dev, bf16)
            return test, {"test": test}

        return Job(model, Mean(), Batches(Split(x, y), cfg.batch, True, cfg.seed), Split(vx, vy),
                   {"name": cfg.data, "images": 160}, "levels: 128 train / 32 val / 32 test images", finish)

    def load(self, run, weights="best", model=None):
        return Scorer(run)

    def val(self, run, data=None, split="test"):
        tx, ty = images(deepix.config.make_config(run / "config.yaml").seed + 2, 32)
        return Mean().evaluate(Scorer(run).model, Split(tx, ty), torch.device("cpu"), False)

    def main_figure(self, test):
        return "test_mae", test["mae"]

    def print_result(self, result, console):
        console.print(f"{result['run']}: mean absolute error {result['test']['mae']:.4f}")

    def report(self, run, summary, rows, config):
        return Report(f"Test error {summary['test']['mae']:.4f}", "grey levels",
                      [("test", "Test", f"<p>mean absolute error {summary['test']['mae']:.4f}</p>")])

    def findings(self, rows, summary, config):
        return [{"finding": "Healthy brightness", "evidence": f"{len(rows)} epochs", "remedies": []}]

    def exportable(self, run, weights, data):
        x = images(1, 8)[0].float().div(255)
        return Exportable(Scorer(run).model, (x,), ["images"], ["brightness"], {"images": {0: "batch"}},
                          {"channels": 1, "size": [SIDE, SIDE]}, "8 grey images")

    def exported(self, file):
        return FromFile(file)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tasks.register(Brightness())
    root = tmp_path_factory.mktemp("brightness")
    return root, deepix.train("brightness", project=str(root), quiet=True, threads=1)


def cli(*args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert deepix_cli([str(a) for a in args]) == 0
    return out.getvalue()


def test_train_and_val(trained):
    _, r = trained
    run = Path(r["run"])
    assert run.parent.name == "brightness" and (run / "report.html").is_file()
    assert r["test"]["mae"] < 0.05  # learnt: guessing the middle level is off by about 0.2
    assert deepix.val(run)["mae"] == pytest.approx(r["test"]["mae"], abs=2e-3)  # val in fp32, the run maybe bf16
    assert json.loads((run / "summary.json").read_text())["task"] == "brightness"
    assert "Test error" in (run / "report.html").read_text()


def test_predict_through_the_api_and_the_cli(trained, tmp_path):
    _, r = trained
    dark, light = np.full((SIDE, SIDE), 40, np.uint8), np.full((SIDE, SIDE), 210, np.uint8)
    got = deepix.load(r["run"]).predict(np.stack([dark, light]))
    assert got[0] == pytest.approx(40 / 255, abs=0.08) and got[1] == pytest.approx(210 / 255, abs=0.08)
    Image.fromarray(light).save(tmp_path / "light.png")
    said = cli("predict", r["run"], tmp_path / "light.png")
    assert said.startswith(f"{tmp_path / 'light.png'}: brightness ")
    assert float(said.split()[-1]) == pytest.approx(got[1], abs=1e-3)


def test_export_and_serve(trained, tmp_path):
    from fastapi.testclient import TestClient

    from deepix.serve.app import make_app
    _, r = trained
    rec = deepix.export.export(r["run"], "onnx", tmp_path / "b.onnx")
    assert rec["parity"]["ok"] and rec["deepix_task"] == "brightness"
    light = np.full((SIDE, SIDE), 210, np.uint8)
    assert deepix.load(tmp_path / "b.onnx").predict(light)[0] == pytest.approx(deepix.load(r["run"]).predict(light)[0],
                                                                                 abs=1e-4)
    buf = io.BytesIO()
    Image.fromarray(light).save(buf, format="PNG")
    with TestClient(make_app([str(r["run"])])) as client:
        reply = client.post(f"/v1/models/{Path(r['run']).name}/predict", files={"file": ("l.png", buf.getvalue())})
    assert reply.status_code == 200, reply.text
    assert reply.json()["task"] == "brightness"
    assert reply.json()["results"][0]["brightness"] == pytest.approx(210 / 255, abs=0.08)


def test_report_and_advise(trained):
    _, r = trained
    page = Path(r["run"]) / "report.html"
    page.unlink()
    assert "report:" in cli("report", r["run"])
    assert "Healthy brightness" in page.read_text() and "Test error" in page.read_text()
    a = deepix.advise(r["run"])
    assert a["task"] == "brightness" and a["findings"][0]["finding"] == "Healthy brightness"
    assert a["verdict"]["verdict"] in ("good fit", "underfitting", "overfitting", "unknown")


def test_sweep_of_two_trials(trained):
    root, _ = trained
    s = deepix.sweep("brightness", grid=["lr=0.01,0.003"], epochs=1, project=str(root), parallel=1, quiet=True)
    assert [t["status"] for t in s["trials"]] == ["done", "done"]
    assert {t["labels"]["lr"] for t in s["trials"]} == {0.01, 0.003}
    assert all(t["test"] is not None for t in s["trials"])
