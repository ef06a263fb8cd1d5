"""A trained run as a file that runs without deepix: ONNX (torch.onnx's exporter, onnxruntime for the check)
or TorchScript, with what a caller must do to the pixels written into the file, and a parity check of the
file's outputs against deepix's own on real inputs, reported and kept in export.json."""
from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .config import make_config
from .errors import UserError
from .runs import find_run

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}
TOLERANCE = 1e-4   # largest |difference| allowed, relative to the outputs' own scale (fp32 both sides)


class _Generator(torch.nn.Module):
    """A GAN's averaged generator with its output mapped to pixels in [0, 1]."""

    def __init__(self, g: torch.nn.Module, conditional: bool):
        super().__init__()
        self.g, self.conditional = g, conditional

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.g(z, labels if self.conditional else None).add(1).div(2).clamp(0, 1)


class _Diffusion(torch.nn.Module):
    """The diffusion model's whole DDIM sampler (25 steps, guidance 2) from its starting noise."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.model.sample(z.shape[0], labels if self.model.num_classes else None, z=z)


class _Encoder(torch.nn.Module):
    """A pretrained encoder: images in, flat features out."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images).flatten(1)


class _Dense(torch.nn.Module):
    """FCOS's outputs decoded up to the NMS: boxes (N, P, 4) in the letterboxed image's pixels and scores
    (N, P, C) = sqrt(class probability x centre-ness), as deepix's own decoder computes them."""

    def __init__(self, model: torch.nn.Module, points: torch.Tensor, side: int):
        super().__init__()
        self.model, self.side = model, side
        self.register_buffer("points", points)

    def forward(self, images: torch.Tensor):
        from .detect.fcos_head import to_boxes
        out = self.model(images).float()
        c = out.shape[-1] - 5
        scores = torch.sqrt(out[..., :c].sigmoid() * out[..., -1:].sigmoid())
        return to_boxes(self.points[None], out[..., c:c + 4]).clamp(0, self.side), scores


def _real_images(cfg, n: int) -> tuple[torch.Tensor, str]:
    """Up to n test images of the run's own data, as floats in [0, 1]."""
    from .tasks.classify import load_data
    try:
        ds = load_data(cfg)
    except UserError as e:
        raise UserError(f"the parity check runs on the run's own test images, and they could not be read ({e}); "
                        f"pass --data to point at them") from None
    split = ds.test if len(ds.test) else ds.val
    return split.x[:n].float().div(255), f"{min(n, len(split))} {'test' if len(ds.test) else 'val'} images of {ds.name}"


def _photo(channels: int, side: int = 96) -> torch.Tensor:
    """scikit-image's camera man and astronaut, centre crops: real photographs shipped with an installed package."""
    from skimage import data
    out = []
    for im in (data.camera(), data.astronaut()):
        t = torch.from_numpy(np.ascontiguousarray(im)).float().div(255)
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
        t = t.mean(0, keepdim=True) if channels == 1 and t.shape[0] == 3 else t.expand(channels, -1, -1)
        h, w = t.shape[1:]
        out.append(t[:, h // 2 - side // 2:h // 2 + side // 2, w // 2 - side // 2:w // 2 + side // 2])
    return torch.stack(out)


def exportable(run: Path, weights: str, data: str | None = None):
    """(module, example inputs, their names, output names, dynamic axes, metadata, what the inputs are)."""
    cfg = make_config(run / "config.yaml")
    if data:
        cfg.data = data
    meta = json.loads((run / "dataset.json").read_text())
    info = {"deepix_task": cfg.task, "model": cfg.model, "weights": weights}
    if cfg.task == "classify":
        from .api import Predictor
        model = Predictor(run, weights).model
        x, about = _real_images(cfg, 64)
        info.update(classes=meta["classes"], channels=meta["channels"], size=meta["size"],
                    input="images: float32 (N, C, H, W), pixels scaled to [0, 1], " +
                          ("gray" if meta["channels"] == 1 else "RGB") + f", {meta['size'][0]}x{meta['size'][1]}; "
                          "the standardisation is inside the graph",
                    output="logits (N, classes): softmax gives the probabilities")
        return model, (x,), ["images"], ["logits"], {"images": {0: "batch"}}, info, about
    if cfg.task == "restore":
        from .tasks.restore import Restorer
        r = Restorer(run, weights)
        clean = _photo(r.channels)
        x = r.degrade(clean, torch.Generator().manual_seed(0)).clamp(0, 1) if r.degrade.steps else clean
        info.update(channels=r.channels, scale=r.degrade.scale, degrade=cfg.degrade,
                    input="image: float32 (N, C, H, W) in [0, 1], any H and W",
                    output=f"restored: float32 (N, C, {r.degrade.scale}H, {r.degrade.scale}W); clip to [0, 1]")
        return (r.model, (x,), ["image"], ["restored"], {"image": {0: "batch", 2: "height", 3: "width"}}, info,
                f"{len(x)} photographs (scikit-image's camera and astronaut, 96x96) degraded by {cfg.degrade}")
    if cfg.task == "generate":
        from .tasks.generate import Sampler
        s = Sampler(run, weights)
        n = 16
        z = s.model.latent(n, torch.Generator().manual_seed(0))
        labels = torch.arange(n) % max(1, s.model.num_classes)
        shape = "x".join(map(str, z.shape[1:]))
        info.update(classes=s.classes, z_shape=list(z.shape[1:]), conditional=bool(s.model.num_classes),
                    input=f"z: float32 (N, {shape}) from N(0, 1); labels: int64 (N,) class indices"
                          + ("" if s.model.num_classes else " (ignored: unconditional)"),
                    output="images: float32 (N, C, H, W) in [0, 1]"
                           + ("" if hasattr(s.model, "g_ema") else "; the whole DDIM sampler (25 steps) is in the graph"))
        net = (_Generator(s.model.g_ema, bool(s.model.num_classes)) if hasattr(s.model, "g_ema")
               else _Diffusion(s.model))
        # the sampler's graph fixes its batch at export (the exporter specialises it): batches of 16 images
        dynamic = {"z": {0: "batch"}, "labels": {0: "batch"}} if hasattr(s.model, "g_ema") else {"z": {}, "labels": {}}
        if not dynamic["z"]:
            info["input"] += f"; batches of exactly {n}"
        return (net.eval(), (z, labels), ["z", "labels"], ["images"], dynamic, info,
                f"{n} latents drawn with seed 0, labels 0..9")
    if cfg.task == "pretrain":
        from .tasks.pretrain import build
        from .engine.checkpoint import load_weights
        ch, size = meta["channels"], meta["size"]
        model = build(cfg, ch, size, [0.0] * ch, [1.0] * ch)  # the standardisation comes with the weights
        # what the run is for: its encoder (the last epoch's), whatever --weights says
        load_weights(model.encoder, run / "weights" / "encoder.safetensors")
        info["weights"] = "encoder"
        if meta.get("classes"):
            x, about = _real_images(cfg, 64)
        else:
            x = torch.nn.functional.interpolate(_photo(ch), size=tuple(size), mode="bilinear", antialias=True)
            about = f"{len(x)} photographs (scikit-image's camera and astronaut)"
        info.update(channels=ch, size=size, method=cfg.method, features=model.dim,
                    input=f"images: float32 (N, {ch}, {size[0]}, {size[1]}) in [0, 1]; the standardisation is inside "
                          "the graph",
                    output=f"features (N, {model.dim}): the encoder's, for k-NN, probes or your own head")
        return _Encoder(model.encoder).eval(), (x,), ["images"], ["features"], {"images": {0: "batch"}}, info, about
    if cfg.task == "detect":
        from .tasks.detect import FILL, Detector, letterbox
        from .tasks.detect import load_data as detect_data
        det = Detector(run, weights)
        if det.task.tv:
            raise UserError(f"{cfg.model} is a torchvision detector; export covers deepix's own (fcos-n, fcos-s) so far")
        try:
            ds = detect_data(cfg)
        except UserError as e:
            raise UserError(f"the parity check runs on the run's own images, and they could not be read ({e}); "
                            f"pass --data to point at them") from None
        split = "test" if ds.splits.get("test") else "val"
        x = letterbox(ds.splits[split][:16], det.side)[0].float().div(255)
        det.task.prepare(x, None, False)  # sets the points of this image size
        info.update(classes=det.classes, size=[det.side, det.side], iou=cfg.iou,
                    input=f"images: float32 (N, 3, {det.side}, {det.side}) RGB in [0, 1]: each image scaled so its "
                          f"longer side is {det.side}, placed top-left, the rest filled with grey {FILL:.4f} (114/255)",
                    output=f"boxes (N, P, 4) x1 y1 x2 y2 in those pixels (divide by the scale for the image's own), "
                           f"scores (N, P, classes); keep scores over a threshold (0.25) and apply class-wise NMS at "
                           f"IoU {cfg.iou}")
        return (_Dense(det.model.float().cpu(), det.task.points.cpu(), det.side).eval(), (x,), ["images"],
                ["boxes", "scores"], {"images": {0: "batch"}}, info, f"{len(x)} {split} images of {ds.name}")
    raise UserError(f"export of {cfg.task} runs is not supported yet (classify, detect, restore and GAN runs are)")


def export(run: str | Path, fmt: str = "onnx", out: str | Path | None = None, weights: str = "best",
           data: str | None = None) -> dict:
    """Writes the file and checks it against deepix's own outputs; returns what export.json records."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    run = find_run(run)
    if not (run / "weights" / f"{weights}.safetensors").is_file():
        raise UserError(f"{run} has no weights/{weights}.safetensors: is it a finished run?")
    model, inputs, names, outputs, dynamic, info, about = exportable(run, weights, data)
    model.eval()
    path = Path(out) if out else run / "weights" / f"{weights}{FORMATS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if fmt == "onnx":
        _to_onnx(model, inputs, names, outputs, dynamic, info, path)
    else:
        _to_torchscript(model, inputs, info, path)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        want = model(*inputs)
    want = [w.float().numpy() for w in (want if isinstance(want, tuple) else (want,))]
    got = run_file(path, dict(zip(names, inputs)), every=True)
    # each output against its own scale (a detector's boxes are pixels, its scores probabilities)
    checks = [(float(np.abs(g - w).max()), TOLERANCE * max(1.0, float(np.abs(w).max()))) for g, w in zip(got, want)]
    diff, tolerance = max(checks, key=lambda c: c[0] / c[1])
    got, want = got[0], want[0]
    record = {"file": str(path), "format": fmt, "bytes": path.stat().st_size, "export_seconds": round(seconds, 2),
              "parity": {"inputs": about, "max_abs_diff": diff, "tolerance": tolerance,
                         "ok": all(d <= t for d, t in checks)},
              **info}
    if info["deepix_task"] == "classify":
        record["parity"]["top1_agreement"] = float((got.argmax(1) == want.argmax(1)).mean())
    (path.parent / f"{path.name}.json").write_text(json.dumps(record, indent=1))
    return record


def _to_onnx(model, inputs, names, outputs, dynamic, info, path: Path) -> None:
    import onnx
    def dim(name: str, label: str):
        return torch.export.Dim("batch", min=1, max=4096) if label == "batch" else \
            torch.export.Dim(f"{name}_{label}", min=16, max=8192)

    shapes = tuple({axis: dim(name, label) for axis, label in dynamic[name].items()} or None for name in names)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its passes
        torch.onnx.export(model, inputs, str(path), input_names=names, output_names=outputs, dynamic_shapes=shapes,
                          dynamo=True, external_data=False)
    proto = onnx.load(str(path))
    for k, v in info.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.save(proto, str(path))


def _to_torchscript(model, inputs, info, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, inputs, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"deepix.json": json.dumps(info)})


def run_file(path: Path, feeds: dict[str, torch.Tensor], every: bool = False):
    """The exported file's first output (every output: a list) for these inputs (onnxruntime, or TorchScript)."""
    m = _loaded(path)
    if path.suffix == ".onnx":
        wanted = {i.name for i in m.get_inputs()}
        outs = m.run(None, {k: v.numpy() for k, v in feeds.items() if k in wanted})
        return outs if every else outs[0]
    with torch.no_grad():
        outs = m(*feeds.values())
    outs = [o.float().numpy() for o in (outs if isinstance(outs, tuple) else (outs,))]
    return outs if every else outs[0]


_LOADED: dict[tuple, object] = {}


def _loaded(path: Path):
    """The file's onnxruntime session or TorchScript module, loaded once per version of the file."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _LOADED:
        if path.suffix == ".onnx":
            import onnxruntime as ort
            _LOADED[key] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        else:
            with warnings.catch_warnings():  # TorchScript is deprecated upstream, and says so on every load
                warnings.simplefilter("ignore")
                _LOADED[key] = torch.jit.load(str(path))
    return _LOADED[key]


def read_metadata(path: Path) -> dict:
    """What export wrote into an ONNX or TorchScript file."""
    if path.suffix == ".onnx":
        import onnxruntime as ort
        props = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        out = {}
        for k, v in props.items():
            try:
                out[k] = json.loads(v)
            except ValueError:
                out[k] = v
        return out
    files = {"deepix.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(str(path), _extra_files=files)
    return json.loads(files["deepix.json"])


class Exported:
    """An exported file used the way a run is: `deepix predict model.onnx img.png` (classify or restore)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"not found: {self.path}")
        try:
            self.meta = read_metadata(self.path)
        except Exception as e:  # a damaged or foreign file fails inside onnxruntime / torch.jit in many ways
            raise UserError(f"{self.path} is not a file deepix export wrote ({type(e).__name__})") from None
        task = self.meta.get("deepix_task")
        if task not in ("classify", "restore", "detect"):
            raise UserError(f"{self.path} holds a {task or 'foreign'} model; predict takes exported classifiers, "
                            "detectors and restorers")
        self.channels = int(self.meta.get("channels", 3))
        self.size = tuple(self.meta.get("size") or ())
        self.classes = self.meta.get("classes")
        if task == "restore":
            self.restore = self._restore
        if task == "detect":
            self.detect = self._detect

    def _detect(self, images, conf: float = 0.25, max_dets: int = 100) -> list[dict]:
        """Boxes in each image's own pixels: the file's dense outputs, thresholded, class-wise NMS."""
        from torchvision.ops import batched_nms

        from .data.boxes import DetImage
        from .tasks.detect import letterbox
        items = [DetImage(str(im), (0, 0), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)) for im in images]
        x, _, scales = letterbox(items, self.size[0])
        boxes, scores = (torch.from_numpy(a) for a in run_file(self.path, {"images": x.float().div(255)}, every=True))
        out = []
        for b, s, scale in zip(boxes, scores, scales.tolist()):
            flat = s.flatten()
            keep = (flat > conf).nonzero().squeeze(1)
            keep = keep[flat[keep].topk(min(len(keep), 3 * max_dets)).indices]
            point, label = keep // s.shape[1], keep % s.shape[1]
            kept = batched_nms(b[point], flat[keep], label, float(self.meta.get("iou", 0.6)))[:max_dets]
            out.append({"boxes": b[point][kept] / scale, "scores": flat[keep][kept], "labels": label[kept]})
        return out

    def predict(self, images, top_k: int = 5) -> list[dict]:
        from .api import Predictor
        x = Predictor._batch(self, images)
        probs = torch.from_numpy(run_file(self.path, {"images": x})).softmax(1)
        k = min(top_k, len(self.classes))
        p, i = probs.topk(k, 1)
        return [{"class": self.classes[ii[0]], "probability": float(pp[0]),
                 "top": [{"class": self.classes[c], "probability": float(v)} for v, c in zip(pp.tolist(), ii.tolist())],
                 "probabilities": pr.tolist()} for pp, ii, pr in zip(p, i, probs)]

    def _restore(self, path) -> torch.Tensor:
        from .restore import images as imgio
        x = imgio.read(path, self.channels)[0]
        return torch.from_numpy(run_file(self.path, {"image": x[None]}))[0].clamp(0, 1)
