"""The searchers an agent is measured against, and the field's figures for any policy on fixed images: the
boxes it triggers on, scored as detections (recall at IoU 0.5, the mean best IoU per object, COCO AP50 and
AP class-agnostic), and the steps it takes per object it finds.

A policy is called with the environment before each step and returns an action; it may set
`env.last_score` (1.0 unless it does) before returning the trigger, as the detection's score. A policy
that returns None ends its episode there: the one-shot baselines (whole image, centre box) emit their one
box and stop, where the environment would go on searching for the other objects."""
from __future__ import annotations

import copy
import time
from typing import Callable

import numpy as np
import torch

from deepix.data.boxes import DetImage

from .env import ACTIONS, TRIGGER, Locate, iou

Policy = Callable[[Locate], "int | None"]   # reads the environment (its observation, or its truth for the oracle)


def episodes(env: Locate, n: int, seed: int) -> list[dict]:
    """n image indices drawn once (all of them when n >= the number of images), so every policy searches the same."""
    k = len(env.sources)
    picked = range(k) if n >= k else sorted(np.random.default_rng(seed).choice(k, n, replace=False).tolist())
    return [{"image": int(i)} for i in picked]


def oracle_policy(env: Locate) -> int:
    """The expert that knows the true boxes (Locate.oracle)."""
    return env.oracle()


def whole_image(env: Locate) -> int | None:
    """Triggers at once on the box it starts with, the whole image; then stops."""
    return None if env.triggers else TRIGGER


def mean_size(images: list[DetImage]) -> tuple[float, float]:
    """The mean width and height in pixels of the boxes of `images` (the training set's, for centre_box)."""
    boxes = [im.boxes.reshape(-1, 4) for im in images if len(im.boxes)]
    if not boxes:
        return 0.0, 0.0
    b = torch.cat(boxes).double()
    return float((b[:, 2] - b[:, 0]).mean()), float((b[:, 3] - b[:, 1]).mean())


def centre_box(mean_w: float, mean_h: float) -> Policy:
    """Sets the box to one of the mean size (clipped to the image) at the image's centre, triggers, and stops."""
    def act(env: Locate) -> int | None:
        if env.triggers:
            return None
        w, h = min(mean_w, env.w), min(mean_h, env.h)
        cx, cy = env.w / 2, env.h / 2
        env.box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float64)
        return TRIGGER
    return act


def random_agent(seed: int = 0) -> Policy:
    """Uniformly random actions, the trigger among them."""
    rng = np.random.default_rng(seed)
    return lambda env: int(rng.integers(len(ACTIONS)))


def match50(truth: np.ndarray, dets: list[tuple[list[float], float]]) -> tuple[int, np.ndarray]:
    """True boxes matched at IoU 0.5, greedily by score (each taken once), and each true box's best IoU."""
    if not len(truth):
        return 0, np.zeros(0)
    if not dets:
        return 0, np.zeros(len(truth))
    taken = np.zeros(len(truth), bool)
    best = np.zeros(len(truth))
    for box, _ in sorted(dets, key=lambda d: -d[1]):
        ious = iou(box, truth)
        best = np.maximum(best, ious)
        free = np.where(taken, -1.0, ious)
        j = int(np.argmax(free))
        if free[j] >= 0.5:
            taken[j] = True
    return int(taken.sum()), best


def coco_ap(truth: list[np.ndarray], detections: list[list[tuple[list[float], float]]],
            sizes: list[tuple[int, int]]) -> tuple[float, float]:
    """COCO AP@[.5:.95] and AP50, class-agnostic (every box one category), via deepix's COCOeval."""
    from deepix.data.coco_eval import evaluate as coco_evaluate  # on use: pycocotools loads here

    images = [DetImage("", size, torch.as_tensor(t, dtype=torch.float32).reshape(-1, 4),
                       torch.zeros(len(t), dtype=torch.long)) for t, size in zip(truth, sizes)]
    preds = [{"boxes": torch.tensor([b for b, _ in d], dtype=torch.float32).reshape(-1, 4),
              "scores": torch.tensor([s for _, s in d], dtype=torch.float32),
              "labels": torch.zeros(len(d), dtype=torch.long)} for d in detections]
    m = coco_evaluate(images, preds, ["object"])
    return float(m["map"] or 0.0), float(m["map50"] or 0.0)


def evaluate(policy: Policy, env: Locate, eps: list[dict], lanes: int = 32) -> dict:
    """The policy's figures over the episodes; `detections` holds each image's triggered (box, score) pairs.
    Up to `lanes` episodes run side by side (copies of `env` that share its images), so that a policy with a
    `batch(envs) -> actions` method answers for all of them in one pass; others are asked one env at a time.
    ms_per_image is the wall time over the images, so a batched policy's is its share of a pass."""
    ask = getattr(policy, "batch", None) or (lambda envs: [policy(e) for e in envs])
    queue = list(range(len(eps)))[::-1]
    running: dict[int, tuple[Locate, list, list]] = {}   # episode -> (its env, its detections, [steps since])
    out: list = [None] * len(eps)
    searches: list[int] = []
    t0 = time.perf_counter()
    while queue or running:
        while queue and len(running) < lanes:
            k = queue.pop()
            e = copy.copy(env)
            e.reset(options=eps[k])
            running[k] = (e, [], [0])
        keys = list(running)
        for e, _, _ in running.values():
            e.last_score = 1.0
        for k, action in zip(keys, ask([running[k][0] for k in keys])):
            e, dets, since = running[k]
            ended = action is None
            if not ended:
                _, _, done, truncated, info = e.step(action)
                since[0] += 1
                if "triggered" in info:
                    dets.append((info["triggered"], float(e.last_score)))
                    if info["hit"]:
                        searches.append(since[0])   # the steps this object's search took
                    since[0] = 0
                ended = done or truncated
            if ended:
                out[k] = (e.steps, e.boxes, dets, (e.h, e.w))
                del running[k]
    ms = 1000 * (time.perf_counter() - t0)
    steps = sum(o[0] for o in out)
    matched, best_ious = 0, []
    for _, truth, dets, _ in out:
        k, best = match50(truth, dets)
        matched += k
        best_ious.extend(best.tolist())
    objects = sum(len(o[1]) for o in out)
    detections = [o[2] for o in out]
    ap, ap50 = coco_ap([o[1] for o in out], detections, [o[3] for o in out])
    return {"episodes": len(eps), "objects": objects, "recall50": matched / max(objects, 1),
            "mean_iou": float(np.mean(best_ious)) if best_ious else 0.0,
            "steps_per_object": steps / matched if matched else None,
            "ap50": ap50, "ap": ap, "ms_per_image": ms / max(len(eps), 1), "search_steps": searches,
            "detections": detections}
