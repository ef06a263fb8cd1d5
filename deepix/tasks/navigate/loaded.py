"""A trained navigate run in use: `deepix.load(RUN).predict("map.png", start=(r, c), goal=(r, c))` walks
the agent on a map image (read at the run's grid size) and answers with its path as JSON; `deepix predict
RUN map.png --start R,C --goal R,C -o path.png` draws it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...engine import machine
from ...engine.checkpoint import load_weights
from ...errors import UserError
from ...predict import iter_images
from ...runs import open_run
from ..base import Loaded
from .env import GridWorld
from .maps import image_map, largest_free
from .model import build
from .planner import check_cell, path_length
from .train import Maps, load_maps, test as test_walkers


def cell(text, what: str) -> tuple[int, int] | None:
    """'R,C' (or a pair) as a cell; None stays None."""
    if text is None or text == "":
        return None
    if isinstance(text, (tuple, list)) and len(text) == 2:
        return int(text[0]), int(text[1])
    try:
        r, c = (int(v) for v in str(text).split(","))
    except ValueError:
        raise UserError(f"--{what} must be ROW,COL, two whole numbers (got {text!r})") from None
    return r, c


class Navigator(Loaded):
    task = "navigate"

    def __init__(self, run, weights: str = "best"):
        self.run, self.cfg, self.meta = open_run(run)
        self.weights = weights
        self.size = tuple(self.meta.get("size") or (self.cfg.imgsz or 16,) * 2)
        self.model = build(self.cfg.model, self.cfg.width, max(self.size))
        load_weights(self.model, self.run / "weights" / f"{weights}.safetensors")
        self.model.eval()

    def maps(self, data: str | None = None) -> Maps:
        """The run's own maps (the built-in ones are made again from their seed), or those of `data`."""
        if data:
            self.cfg.data = data
        if self.cfg.data not in ("maps", "") and not Path(self.cfg.data).is_dir():
            raise UserError(f"the run's maps ({self.cfg.data}) are not there any more; give --data FOLDER")
        return load_maps(self.cfg)

    def read(self, image, name: str) -> np.ndarray:
        if isinstance(image, (str, Path)):
            try:
                image = Image.open(image)
                image.load()
            except OSError as e:
                raise UserError(f"{name}: not a readable image ({type(e).__name__})") from None
        elif isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        threshold = None if self.cfg.wall_threshold < 0 else self.cfg.wall_threshold
        return image_map(image, name, threshold, self.cfg.cost, self.size[0] if self.size[0] == self.size[1] else None)

    def walk(self, cost: np.ndarray, start, goal, name: str, seed: int = 0) -> dict:
        """The agent's path from start to goal (drawn on the largest open region when not given)."""
        if start is None or goal is None:
            region = np.argwhere(~largest_free(~np.isfinite(cost)))
            if len(region) < 2:
                raise UserError(f"{name}: fewer than two open cells joined together, so no start and goal fit")
            rng = np.random.default_rng(seed)
            for _ in range(100):  # a pair a third of the map apart where there is one
                pick = region[rng.choice(len(region), 2, replace=False)]
                if np.abs(pick[0] - pick[1]).max() >= max(cost.shape) // 3:
                    break
            start = start or tuple(int(v) for v in pick[0])
            goal = goal or tuple(int(v) for v in pick[1])
        check_cell(cost, start, "start")
        check_cell(cost, goal, "goal")
        env = GridWorld([cost])
        env.reset(options={"map": 0, "start": start, "goal": goal})  # says so when no path joins them
        x = torch.zeros((1, 2, *cost.shape))
        x[0, 0] = torch.from_numpy(env.channels[0])
        x[0, 1][goal] = 1.0
        with torch.no_grad():
            logits, value = self.model(x)
        moves = logits[0].argmax(0).numpy()
        done = truncated = False
        while not (done or truncated):
            _, _, done, truncated, info = env.step(int(moves[env.pos]))
        best, taken = path_length(env.optimal), path_length(env.taken)
        return {"image": name, "start": list(start), "goal": list(goal), "success": bool(done),
                "path": [list(p) for p in env.taken], "steps": env.steps, "length": round(taken, 4),
                "cost": round(env.spent, 4), "collisions": env.collisions,
                "optimal_length": round(best, 4), "optimal_cost": round(env.optimal_cost, 4),
                "spl": round(float(done) * best / max(taken, best), 4) if best else float(done),
                "size": list(cost.shape), "value": value[0].numpy()}

    def predict(self, images, start=None, goal=None, **options) -> list[dict]:
        if isinstance(images, (str, Path, Image.Image, np.ndarray)):
            images = [images]
        out = []
        for k, image in enumerate(images):
            name = str(image) if isinstance(image, (str, Path)) else f"image {k}"
            r = self.walk(self.read(image, name), cell(start, "start"), cell(goal, "goal"), name)
            r.pop("value")
            out.append(r)
        return out

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        files = list(iter_images(sources))
        single = output and len(files) == 1 and Path(output).suffix.lower() in (".png", ".jpg", ".jpeg")
        for path in files:
            cost = self.read(path, str(path))
            r = self.walk(cost, cell(options.get("start"), "start"), cell(options.get("goal"), "goal"), str(path))
            value = r.pop("value")
            if options.get("json"):
                print(json.dumps(r))
            else:
                print(f"{path}: {'reached' if r['success'] else 'did not reach'} the goal {r['goal'][0]},{r['goal'][1]} "
                      f"from {r['start'][0]},{r['start'][1]} in {r['steps']} steps, length {r['length']:.2f} "
                      f"(optimal {r['optimal_length']:.2f}), SPL {r['spl']:.3f}")
            if output:
                png = Path(output) if single else Path(output) / f"{path.stem}.png"
                png.parent.mkdir(parents=True, exist_ok=True)
                draw(cost, r, value).save(png)
                png.with_suffix(".json").write_text(json.dumps(r, indent=1))
                if not options.get("json"):
                    print(f"  drawn: {png}, path: {png.with_suffix('.json')}")

    def answer(self, images: list, options: dict) -> list[dict]:
        out = []
        for k, img in enumerate(images):
            r = self.walk(self.read(img, f"image {k}"), options.get("start"), options.get("goal"), f"image {k}")
            r.pop("value")
            out.append(r)
        return out

    def options(self, form: dict) -> dict:
        return {"start": cell(form.get("start"), "start"), "goal": cell(form.get("goal"), "goal")}


def draw(cost: np.ndarray, r: dict, value: np.ndarray, side: int = 384) -> Image.Image:
    """The map scaled up: walls black, free cells white to grey by cost, the path blue, start red, goal green."""
    free = np.isfinite(cost)
    lo, hi = (cost[free].min(), cost[free].max()) if free.any() else (1, 1)
    shade = np.where(free, 255 - (0 if hi == lo else 150 * (np.where(free, cost, lo) - lo) / (hi - lo)), 0)
    img = np.repeat(shade[..., None], 3, 2).astype(np.uint8)
    for p in r["path"]:
        img[tuple(p)] = (120, 160, 255)
    img[tuple(r["start"])] = (230, 40, 40)
    img[tuple(r["goal"])] = (40, 200, 60)
    scale = max(1, side // max(cost.shape))
    return Image.fromarray(img.repeat(scale, 0).repeat(scale, 1))


def val(nav: Navigator, data: str | None = None) -> dict:
    """The run's weights on its test maps (or on the maps of `data`) beside the walkers."""
    maps = nav.maps(data)
    dev = torch.device("cpu")
    return test_walkers(nav.model, maps, dev, machine.use_bf16(nav.cfg.precision, dev))  # the run's own precision
