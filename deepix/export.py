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
from .tasks import get
from .data.labelled import load_data

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}
TOLERANCE = 1e-4   # largest |difference| allowed, relative to the outputs' own scale (fp32 both sides)


def real_images(cfg, n: int) -> tuple[torch.Tensor, str]:
    """Up to n test images of the run's own data, as floats in [0, 1]."""
    try:
        ds = load_data(cfg)
    except UserError as e:
        raise UserError(f"the parity check runs on the run's own test images, and they could not be read ({e}); "
                        f"pass --data to point at them") from None
    split = ds.test if len(ds.test) else ds.val
    return split.x[:n].float().div(255), f"{min(n, len(split))} {'test' if len(ds.test) else 'val'} images of {ds.name}"


def photos(channels: int, side: int = 96) -> torch.Tensor:
    """scikit-image's camera man and astronaut, centre crops: real photographs shipped with an installed package."""
    from skimage import data  # scikit-image takes ~1 s to import: only this path pays it
    out = []
    for im in (data.camera(), data.astronaut()):
        t = torch.from_numpy(np.ascontiguousarray(im)).float().div(255)
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
        t = t.mean(0, keepdim=True) if channels == 1 and t.shape[0] == 3 else t.expand(channels, -1, -1)
        h, w = t.shape[1:]
        out.append(t[:, h // 2 - side // 2:h // 2 + side // 2, w // 2 - side // 2:w // 2 + side // 2])
    return torch.stack(out)


def export(run: str | Path, fmt: str = "onnx", out: str | Path | None = None, weights: str = "best",
           data: str | None = None) -> dict:
    """Writes the file and checks it against deepix's own outputs; returns what export.json records."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    run = find_run(run)
    if not (run / "weights" / f"{weights}.safetensors").is_file():
        raise UserError(f"{run} has no weights/{weights}.safetensors: is it a finished run?")
    cfg = make_config(run / "config.yaml")
    task = get(cfg.task)
    ex = task.exportable(run, weights, data)
    model, inputs, names, outputs, dynamic, about = ex.module, ex.inputs, ex.input_names, ex.output_names, ex.dynamic, ex.about
    info = {"deepix_task": task.name, "model": cfg.model, "weights": weights, **ex.info}
    model.eval()
    path = Path(out) if out else run / "weights" / f"{weights}{FORMATS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if fmt == "onnx":
        _to_onnx(model, inputs, names, outputs, dynamic, info, path, ex.optimize)
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
    if ex.parity is not None:
        record["parity"].update(ex.parity(got, want))
    (path.parent / f"{path.name}.json").write_text(json.dumps(record, indent=1))
    return record


def _to_onnx(model, inputs, names, outputs, dynamic, info, path: Path, optimize: bool = True) -> None:
    import onnx  # onnx: only export needs it
    def dim(name: str, label: str):
        return torch.export.Dim("batch", min=1, max=4096) if label == "batch" else \
            torch.export.Dim(f"{name}_{label}", min=16, max=8192)

    shapes = tuple({axis: dim(name, label) for axis, label in dynamic[name].items()} or None for name in names)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its passes
        torch.onnx.export(model, inputs, str(path), input_names=names, output_names=outputs, dynamic_shapes=shapes,
                          dynamo=True, external_data=False, optimize=optimize)
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
            import onnxruntime as ort  # onnxruntime: only exported files need it
            _LOADED[key] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        else:
            with warnings.catch_warnings():  # TorchScript is deprecated upstream, and says so on every load
                warnings.simplefilter("ignore")
                _LOADED[key] = torch.jit.load(str(path))
    return _LOADED[key]


def read_metadata(path: Path) -> dict:
    """What export wrote into an ONNX or TorchScript file."""
    if path.suffix == ".onnx":
        import onnxruntime as ort  # onnxruntime: only exported files need it
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


class File:
    """An exported file and what export wrote into it; `run(feeds)` runs it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"not found: {self.path}")
        try:
            self.meta = read_metadata(self.path)
        except Exception as e:  # a damaged or foreign file fails inside onnxruntime / torch.jit in many ways
            raise UserError(f"{self.path} is not a file deepix export wrote ({type(e).__name__})") from None

    def run(self, feeds: dict[str, torch.Tensor], every: bool = False):
        return run_file(self.path, feeds, every)


def load_exported(path: str | Path):
    """An exported file used the way its run is (`deepix predict model.onnx img.png`), by its task's hook."""
    file = File(path)
    task = file.meta.get("deepix_task")
    if not task:
        raise UserError(f"{file.path} holds a foreign model; predict takes files that deepix export wrote")
    return get(task).exported(file)
