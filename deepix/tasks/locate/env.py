"""Active object localisation as a Gymnasium environment (Caicedo & Lazebnik 2015): the agent sees the
pixels under its box, resized to a fixed crop, and the last actions it took; it moves, scales and reshapes
the box, or triggers. A transform earns the sign of its IoU change with the object it is nearest to; a
trigger earns +ETA when the box covers an object not yet found at TRIGGER_IOU, else -ETA. Either way the
triggered region is masked (inhibition of return) and the box starts again from the whole image, so one
episode finds every object of one image in turn."""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
from PIL import Image

from deepix.data.boxes import DetImage
from deepix.data.folder import read_rgb
from deepix.errors import UserError

ALPHA = 0.2            # each transform moves or resizes the box by this share of its width or height
TRIGGER_IOU = 0.6      # a trigger is a hit at this IoU with an object not yet found
ETA = 3.0              # the trigger's reward, + on a hit and - on a miss
HISTORY = 10           # the last actions the agent is shown, one-hot
STEPS_PER_OBJECT = 20  # episodes are truncated after this many steps per object of the image
CROP = 64              # the side of the observed crop
MIN_SIDE = 4.0         # the box never gets thinner than this many pixels

ACTIONS = ("right", "left", "down", "up", "bigger", "smaller", "fatter", "taller", "trigger")
TRIGGER = ACTIONS.index("trigger")


def iou(box, boxes) -> np.ndarray:
    """IoU of one xyxy box with each of (N, 4) xyxy boxes; (N,) float64, 0 where the union is empty."""
    b = np.asarray(box, np.float64).reshape(4)
    bs = np.asarray(boxes, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(b[2], bs[:, 2]) - np.maximum(b[0], bs[:, 0]), 0, None)
    ih = np.clip(np.minimum(b[3], bs[:, 3]) - np.maximum(b[1], bs[:, 1]), 0, None)
    inter = iw * ih
    union = (b[2] - b[0]) * (b[3] - b[1]) + (bs[:, 2] - bs[:, 0]) * (bs[:, 3] - bs[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _fit(lo: float, hi: float, size: int) -> tuple[float, float]:
    """One side clipped into [0, size], then widened about its centre to MIN_SIDE (or the image) and slid inside."""
    lo, hi = max(lo, 0.0), min(hi, float(size))
    side = min(MIN_SIDE, float(size))
    if hi - lo < side:
        c = (lo + hi) / 2
        lo, hi = c - side / 2, c + side / 2
    if lo < 0:
        lo, hi = 0.0, hi - lo
    if hi > size:
        lo, hi = lo - (hi - size), float(size)
    return lo, hi


def transform(box: np.ndarray, action: int, h: int, w: int) -> np.ndarray:
    """The box after one action, float64 xyxy inside an h x w image. Every transform is clipped to the image,
    so a move against the border trims the side that trails (the one way to shrink a box off-centre while it
    spans the image); scalings are about the centre. "fatter" takes ALPHA off the height and "taller" ALPHA
    off the width, the paper's two aspect-ratio changes."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
    dx, dy = ALPHA * (x2 - x1), ALPHA * (y2 - y1)
    name = ACTIONS[int(action)]
    if name == "right":
        x1, x2 = x1 + dx, x2 + dx
    elif name == "left":
        x1, x2 = x1 - dx, x2 - dx
    elif name == "down":
        y1, y2 = y1 + dy, y2 + dy
    elif name == "up":
        y1, y2 = y1 - dy, y2 - dy
    elif name == "bigger":
        x1, x2, y1, y2 = x1 - dx / 2, x2 + dx / 2, y1 - dy / 2, y2 + dy / 2
    elif name == "smaller":
        x1, x2, y1, y2 = x1 + dx / 2, x2 - dx / 2, y1 + dy / 2, y2 - dy / 2
    elif name == "fatter":
        y1, y2 = y1 + dy / 2, y2 - dy / 2
    elif name == "taller":
        x1, x2 = x1 + dx / 2, x2 - dx / 2
    x1, x2 = _fit(x1, x2, w)
    y1, y2 = _fit(y1, y2, h)
    return np.array([x1, y1, x2, y2], np.float64)


def pixels(im: DetImage) -> np.ndarray:
    """The image as uint8 H x W x 3: from memory (grey repeated, alpha dropped) or read from its file."""
    if im.image is not None:
        a = im.image.detach().cpu().numpy()
        a = np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a[:3]
        return np.ascontiguousarray(a.transpose(1, 2, 0)).astype(np.uint8)
    try:
        return read_rgb(im.file)
    except OSError as e:
        raise UserError(f"locate: cannot read image {im.file!r}: {e}") from e


def _pixel_span(box: np.ndarray) -> tuple[int, int, int, int]:
    """The whole pixels a float box touches, at least one a side."""
    x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
    return x0, y0, max(int(math.ceil(box[2])), x0 + 1), max(int(math.ceil(box[3])), y0 + 1)


class Locate(gym.Env):
    """Episodes on the images of `images` that hold boxes (the rest are left out, and indices count only the
    kept ones). `reset(options={"image": i})` fixes the image; otherwise one is drawn. Class labels are not
    used: every box is an object to find."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, images: list[DetImage], steps_per_object: int = STEPS_PER_OBJECT,
                 render_mode: str | None = None):
        self.sources = [im for im in images if len(im.boxes)]
        if not self.sources:
            raise UserError(f"locate: no boxes in any of the {len(images)} images: there is nothing to find")
        self.steps_per_object, self.render_mode = steps_per_object, render_mode
        self.pictures = [pixels(im) for im in self.sources]   # loaded once; crops are resized, images never
        self.truth = [im.boxes.detach().cpu().numpy().astype(np.float64).reshape(-1, 4) for im in self.sources]
        self.fill = [p.reshape(-1, 3).mean(0).round().astype(np.uint8) for p in self.pictures]
        self.observation_space = gym.spaces.Dict({
            "crop": gym.spaces.Box(0, 255, (3, CROP, CROP), np.uint8),
            "history": gym.spaces.Box(0.0, 1.0, (HISTORY * len(ACTIONS),), np.float32)})
        self.action_space = gym.spaces.Discrete(len(ACTIONS))
        self.last_score = 1.0   # a policy's confidence in the box it triggers on, read by baselines.evaluate

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "image" in options:
            self.index = int(options["image"])
            if not 0 <= self.index < len(self.sources):
                raise UserError(f"locate: image {self.index} is out of range: there are {len(self.sources)}")
        else:
            self.index = int(self.np_random.integers(len(self.sources)))
        self.picture = self.pictures[self.index].copy()   # the working copy that triggers mask
        self.h, self.w = self.picture.shape[:2]
        self.boxes = self.truth[self.index]
        self.found = np.zeros(len(self.boxes), bool)
        self.limit = self.steps_per_object * len(self.boxes)
        self.max_triggers = len(self.boxes) + 2
        self.steps = self.triggers = 0
        self.whole()
        return self.observe(), self.info()

    def whole(self) -> None:
        """The box back to the whole image and the history emptied: the start of each search."""
        self.box = np.array([0.0, 0.0, self.w, self.h], np.float64)
        self.history: list[int] = []

    def unfound_ious(self, box: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The indices of the objects not yet found and their IoUs with the box (the current one by default)."""
        left = np.flatnonzero(~self.found)
        return left, iou(self.box if box is None else box, self.boxes[left])

    def target(self) -> int | None:
        """The object not yet found that the box overlaps most (the first on ties), or None when all are found."""
        left, ious = self.unfound_ious()
        return int(left[int(np.argmax(ious))]) if len(left) else None

    def observe(self) -> dict:
        x0, y0, x1, y1 = _pixel_span(self.box)
        crop = Image.fromarray(self.picture[y0:y1, x0:x1]).resize((CROP, CROP), Image.BILINEAR)
        history = np.zeros(HISTORY * len(ACTIONS), np.float32)
        for k, a in enumerate(reversed(self.history[-HISTORY:])):   # slot 0 is the latest action
            history[k * len(ACTIONS) + a] = 1.0
        return {"crop": np.ascontiguousarray(np.asarray(crop, np.uint8).transpose(2, 0, 1)), "history": history}

    def info(self) -> dict:
        ious = self.unfound_ious()[1]
        return {"image": self.index, "box": self.box.tolist(), "found": int(self.found.sum()),
                "objects": len(self.boxes), "steps": self.steps, "iou": float(ious.max()) if len(ious) else 0.0,
                "success": bool(self.found.all())}

    def step(self, action):
        a = int(action)
        self.steps += 1
        extra = {}
        if a == TRIGGER:
            self.triggers += 1
            left, ious = self.unfound_ious()
            j = int(np.argmax(ious)) if len(left) else -1
            hit = bool(len(left) and ious[j] >= TRIGGER_IOU)
            if hit:
                self.found[left[j]] = True
            reward = ETA if hit else -ETA
            x0, y0, x1, y1 = _pixel_span(self.box)
            self.picture[y0:y1, x0:x1] = self.fill[self.index]   # masked, hit or miss: the agent moves on
            extra = {"triggered": self.box.tolist(), "hit": hit}
            self.whole()
        else:
            t, new = self.target(), transform(self.box, a, self.h, self.w)
            reward = 0.0   # stepping on after every object is found earns nothing
            if t is not None:
                reward = float(np.sign(iou(new, self.boxes[t])[0] - iou(self.box, self.boxes[t])[0]))
            self.box = new
            self.history.append(a)
        done = bool(self.found.all())
        truncated = not done and (self.steps >= self.limit or self.triggers >= self.max_triggers)
        return self.observe(), float(reward), done, truncated, {**self.info(), **extra}

    def oracle(self) -> int:
        """The expert for behaviour cloning: trigger at TRIGGER_IOU; else the transform that raises the IoU
        with the target most (the first in ACTIONS on ties). With none that raises it, the first of the best
        two transforms that do (one step alone finds 0.89 of the shapes' objects at IoU 0.5, two 0.99);
        with no such pair, trigger at IoU 0.5 (a detection, though no hit), else take the best transform."""
        left, ious = self.unfound_ious()
        if not len(left):
            return TRIGGER
        now = float(ious.max())
        if now >= TRIGGER_IOU:
            return TRIGGER
        t = self.boxes[left[int(np.argmax(ious))]]
        boxes = [transform(self.box, a, self.h, self.w) for a in range(TRIGGER)]
        after = [iou(b, t)[0] for b in boxes]
        best = int(np.argmax(after))
        if after[best] > now:
            return best
        # a local optimum: two steps may climb out of it where one cannot (an off-centre object, say)
        two = [max(iou(transform(b, a, self.h, self.w), t)[0] for a in range(TRIGGER)) for b in boxes]
        first = int(np.argmax(two))
        if two[first] > now:
            return first
        return TRIGGER if now >= 0.5 else best

    def good(self) -> np.ndarray:
        """The expert's answer as a distribution, for cloning: the trigger at TRIGGER_IOU, else an equal share on
        every transform that raises the IoU with the target (the object not yet found that the box overlaps
        most, the one the reward follows); the oracle's one action where none does. Where several moves help,
        none is the one right answer, and a learner need not guess which."""
        y = np.zeros(len(ACTIONS), np.float32)
        left, ious = self.unfound_ious()
        if not len(left) or ious.max() >= TRIGGER_IOU:
            y[TRIGGER] = 1.0
            return y
        now, t = ious.max(), self.boxes[left[int(np.argmax(ious))]]
        for a in range(TRIGGER):
            if iou(transform(self.box, a, self.h, self.w), t)[0] > now + 1e-9:
                y[a] = 1.0
        if not y.any():
            y[self.oracle()] = 1.0
        return y / y.sum()

    def render(self) -> np.ndarray:
        """RGB uint8: the working image (masked where triggered), found objects in green, the box in red."""
        img = self.picture.copy()
        for j in np.flatnonzero(self.found):
            _outline(img, self.boxes[j], (40, 200, 60))
        _outline(img, self.box, (230, 40, 40))
        return img


def _outline(img: np.ndarray, box: np.ndarray, colour) -> None:
    """A one-pixel rectangle along the inside of the box's pixels."""
    x0, y0, x1, y1 = _pixel_span(box)
    x1, y1 = min(x1, img.shape[1]) - 1, min(y1, img.shape[0]) - 1
    img[y0, x0:x1 + 1] = img[y1, x0:x1 + 1] = colour
    img[y0:y1 + 1, x0] = img[y0:y1 + 1, x1] = colour
