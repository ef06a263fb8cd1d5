"""Training a searcher: DAgger on the oracle's actions in the states the agent itself reaches, then PPO on
the environment's reward, validated each epoch by searching fixed validation images, tested beside the
oracle, the whole-image box, a centre box of the mean size and a random agent."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...data.boxes import DetImage
from ...data.detection import read_detection
from ...data.shapes import load_shapes
from ...engine.checkpoint import load_weights
from ...errors import UserError
from ...models import count_params
from ...rl.step import AgentStep, RolloutItems
from ..base import Job
from . import baselines
from .env import ACTIONS, Locate
from .model import Head, Searcher, agent, init_searcher

SHAPES = (1000, 100, 300)   # built-in shapes: train, val and test images (the same for every run)
VAL_IMAGES, TEST_IMAGES = 100, 300
ITEMS = 16                  # rollouts (each followed by its update) per epoch; DAgger aggregates an epoch's
KEYS = [("observation", "crop"), ("observation", "history")]


@dataclass
class Images:
    name: str
    train: list[DetImage]
    val: list[DetImage]
    test: list[DetImage]
    note: str = ""

    def info(self) -> dict:
        return {"name": self.name, "images": {s: len(getattr(self, s)) for s in ("train", "val", "test")},
                "objects": {s: int(sum(len(im.boxes) for im in getattr(self, s))) for s in ("train", "val", "test")},
                "note": self.note}


def load_images(cfg) -> Images:
    """The built-in shapes, or a COCO / YOLO / VOC set (split by --val/--test-fraction when it has no splits)."""
    if cfg.data == "shapes":
        return images_of(load_shapes(*SHAPES, size=cfg.imgsz or 128), cfg,
                         "coloured shapes on textured backgrounds, 1 to 6 a picture, made by seed")
    ds = read_detection(cfg.data)
    return images_of(ds, cfg, f"read as {ds.info.get('format', 'detection data')}")


def images_of(ds, cfg, note: str) -> Images:
    """A DetDataset's train / val / test images (split by the fractions when it has no such splits)."""
    splits = ds.splits
    if not ("train" in splits and ("val" in splits or "test" in splits)):
        every = ds.images()
        order = np.random.default_rng(cfg.seed).permutation(len(every))
        n_val, n_test = max(1, int(len(every) * cfg.val_fraction)), max(1, int(len(every) * cfg.test_fraction))
        pick = lambda idx: [every[i] for i in idx]  # noqa: E731
        splits = {"val": pick(order[:n_val]), "test": pick(order[n_val:n_val + n_test]),
                  "train": pick(order[n_val + n_test:])}
        note += "; split by --val-fraction and --test-fraction"
    train, val, test = splits.get("train", []), splits.get("val") or splits.get("test"), splits.get("test") or splits.get("val")
    for name, part in (("training", train), ("validation", val), ("test", test)):
        if not any(len(im.boxes) for im in part or []):
            raise UserError(f"--data {cfg.data}: no boxes in its {len(part or [])} {name} images; locate needs "
                            "objects to find")
    return Images(ds.name, train, val, test, note)


class Search(AgentStep):

    def __init__(self, cfg, images: Images, model, dev, bf16: bool):
        self.cfg, self.images, self.model, self.dev, self.bf16 = cfg, images, model, dev, bf16
        self.learner(Head(model, 0), Head(model, 1), KEYS, len(ACTIONS), cfg.batch, joint=model)
        self.train_env = Locate(images.train)   # its copies share its images, read once
        self.val_env = Locate(images.val)
        self.val_eps = baselines.episodes(self.val_env, VAL_IMAGES, seed=1)

    def act(self, model, autocast):
        def act(obs, fresh):
            with autocast():
                logits, value = model(torch.from_numpy(obs["crop"]).to(self.dev),
                                      torch.from_numpy(obs["history"]).to(self.dev))
            return logits.float().cpu(), value.float().cpu()
        return act

    def train_step(self, model, x, y, opts, autocast) -> dict[str, float]:
        epoch, i = (int(v) for v in x.tolist())
        return self.rollout_step(model, epoch, i, opts, autocast, lambda: copy.copy(self.train_env),
                                 lambda envs: np.stack([e.good() for e in envs]))

    def evaluate(self, model, val, dev, bf16) -> dict[str, float]:
        model.eval()
        r = baselines.evaluate(agent(model, dev, bf16), self.val_env, self.val_eps)
        return {"recall50": r["recall50"], "ap50": r["ap50"], "mean_iou": r["mean_iou"],
                "steps_per_object": r["steps_per_object"] or 0.0, "frames": float(self.frames)}


def test(model, images: Images, dev, bf16: bool, seed: int = 2) -> dict:
    """The agent beside the oracle and the baselines on the same test images."""
    env = Locate(images.test)
    eps = baselines.episodes(env, TEST_IMAGES, seed)
    model.eval()
    searchers = {"agent": agent(model, dev, bf16), "oracle": baselines.oracle_policy,
                 "whole image": baselines.whole_image, "centre box": baselines.centre_box(*baselines.mean_size(images.train)),
                 "random": baselines.random_agent(seed)}
    rows = {}
    for name, policy in searchers.items():
        t0 = time.perf_counter()
        r = baselines.evaluate(policy, env, eps)
        r.pop("detections")
        r["seconds"] = time.perf_counter() - t0
        rows[name] = r
    a = rows["agent"]
    return {"split": "test", "images": len(eps), "objects": a["objects"], "recall50": a["recall50"],
            "ap50": a["ap50"], "ap": a["ap"], "searchers": rows}


def setup(cfg, dataset, net, dev, bf16: bool, resume: str | None) -> Job:
    if net is not None:
        raise UserError("locate trains its own searcher; own networks are not supported")
    model = Searcher(cfg.width, standardised=bool(cfg.init))
    if cfg.init and not resume:   # before the images are read: a wrong --init says so at once
        n = init_searcher(model, cfg.init)
        if not cfg.quiet:
            print(f"init: {n} tensors of the crop encoder from {cfg.init}")
    model = model.to(dev)
    images = images_of(dataset, cfg, "given in Python") if dataset is not None else load_images(cfg)
    step = Search(cfg, images, model, dev, bf16)

    def finish(run: Path, result: dict) -> tuple[dict, dict]:
        load_weights(model, run / "weights" / "best.safetensors")
        t = test(model, images, dev, bf16)
        from .pictures import pictures  # matplotlib loads when the run ends
        pictures(run, model, images, t, dev, bf16)
        return t, {"test": t, "model": {"params": count_params(model), "summary": str(model)}, "frames": step.frames}

    about = (f"{images.name}: {len(images.train)} training images; a searcher "
             + (f"(its crop encoder from {cfg.init}) " if cfg.init else "") +
             f"{'cloning the oracle (DAgger) for ' + format(cfg.bc, '.0%') + ' of the epochs, then ' if cfg.bc else ''}"
             f"{cfg.algo.upper()} on {cfg.envs} environments")
    return Job(model, step, RolloutItems(cfg, ITEMS), step.val_eps, {**images.info(), "kind": "boxes"}, about,
               finish, begin=step.begin)
