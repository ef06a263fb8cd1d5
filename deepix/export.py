"""A trained run as a file that runs without deepix: ONNX (torch.onnx's exporter, onnxruntime for the check)
or TorchScript, with what a caller must do to the pixels written into the file, and a parity check of the
file's outputs against deepix's own on real inputs, reported and kept in FILE.json.
`int8=True`: onnxruntime's static quantisation (QDQ, per-channel int8 weights, activations calibrated on the
run's own training images), and the task's test figure measured for the float file and the int8 one."""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
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


def own_data(cfg):
    """The run's own labelled data (a Dataset), or one line on where to point --data."""
    try:
        return load_data(cfg)
    except UserError as e:
        raise UserError(f"the parity check runs on the run's own test images, and they could not be read ({e}); "
                        f"pass --data to point at them") from None


def real_images(cfg, n: int, ds=None) -> tuple[torch.Tensor, str]:
    """Up to n test images of the run's own data, as floats in [0, 1]."""
    ds = ds or own_data(cfg)
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
           data: str | None = None, int8: bool = False, calibrate: int = 256) -> dict:
    """Writes the file and checks it against deepix's own outputs; returns what FILE.json records."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if int8 and fmt != "onnx":
        raise UserError("--int8 writes an ONNX file (onnxruntime's quantisation): leave out --format torchscript")
    if int8 and calibrate < 1:
        raise UserError(f"--calibrate takes a number of training images, 1 or more (got {calibrate})")
    run = find_run(run)
    if not (run / "weights" / f"{weights}.safetensors").is_file():
        raise UserError(f"{run} has no weights/{weights}.safetensors: is it a finished run?")
    cfg = make_config(run / "config.yaml")
    task = get(cfg.task)
    if int8 and task.no_int8:
        raise UserError(f"--int8 does not apply to {task.name} runs: {task.no_int8}")
    ex = task.exportable(run, weights, data)
    model, inputs, names, outputs, dynamic, about = ex.module, ex.inputs, ex.input_names, ex.output_names, ex.dynamic, ex.about
    info = {"deepix_task": task.name, "model": cfg.model, "weights": weights, **ex.info}
    model.eval()
    path = Path(out) if out else run / "weights" / f"{weights}{'.int8' if int8 else ''}{FORMATS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if int8:
        return _int8(ex, info, path, calibrate)
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


def _int8(ex, info: dict, path: Path, n: int) -> dict:
    """The float ONNX file quantised to int8 (QDQ, per-channel weights: onnxruntime fuses it into integer kernels;
    with the ReLU before each pool, vgg7's file ran 2.3x the float file's images/s at its accuracy, while the
    integer-operator form was slower: benchmarks/int8_forms.py), its size and its task figure on the run's test
    split beside the float file's; `ok` when int8 loses no more than the task allows (FILE.json says so either
    way)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, batches):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        fp32, pre, q = Path(tmp) / "float.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        _to_onnx(ex.module, ex.inputs, ex.input_names, ex.output_names, ex.dynamic, info, fp32, ex.optimize)
        batches = ex.calibration(n)
        seen = sum(len(b[0]) for b in batches)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_logs():
            warnings.simplefilter("ignore")
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)  # it gives up on free H and W
            quantize_static(str(pre), str(q), Reader([{k: v.numpy() for k, v in zip(ex.input_names, b)}
                                                      for b in batches]),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=_tail(pre))
        _add_metadata(q, {**info, "precision": "int8", "calibration": f"{seen} training images"})
        os.replace(q, path)
        seconds = time.perf_counter() - t0
        float_bytes = fp32.stat().st_size
        want, want_answers = ex.score(FileNet(fp32))
    got, got_answers = ex.score(FileNet(path))
    metric, allowed = ex.int8_budget
    loss = want[metric] - got[metric] if ex.higher else got[metric] - want[metric]
    parity = {"split": want.pop("split"), "images": want.pop("images"), "metric": metric,
              "float": want, "int8": {k: v for k, v in got.items() if k not in ("split", "images")},
              "loss": loss, "allowed": allowed, "ok": loss <= allowed}
    if want_answers is not None:
        parity["agreement"] = float((want_answers == got_answers).mean())
    record = {"file": str(path), "format": "onnx", "precision": "int8", "bytes": path.stat().st_size,
              "float_bytes": float_bytes, "export_seconds": round(seconds, 2), "calibration": f"{seen} training images",
              "parity": parity, **info}
    (path.parent / f"{path.name}.json").write_text(json.dumps(record, indent=1))
    return record


def _tail(path: Path) -> list[str]:
    """The nodes after the last convolution or matrix product: a detector's box decoding and score product, a
    restorer's residual sum. They cost little and int8 would round what the caller reads (a box to half a
    pixel, scores to 1/255), so they stay in float: on a detector this kept mAP@.5 within 0.003 where
    quantising every node lost 0.013, at the same speed."""
    import onnx  # onnx: only export needs it
    compute = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
    nodes = onnx.load(str(path)).graph.node
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    feeds: dict[str, bool] = {}  # whether a node, or anything downstream of it, is a convolution or product

    def after(n) -> list:
        return [c for o in n.output for c in consumers.get(o, [])]

    for n in reversed(nodes):  # ONNX graphs are topologically sorted: consumers come after producers
        feeds[n.name] = n.op_type in compute or any(feeds.get(c.name, False) for c in after(n))
    return [n.name for n in nodes if not feeds[n.name]]


@contextlib.contextmanager
def _quiet_logs():
    """onnxruntime's quantiser logs a line per tensor through `logging`; a user needs none of them."""
    import logging
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class FileNet(torch.nn.Module):
    """An exported file as a module: tensors in, its outputs as tensors (one, or a tuple), so that code written
    for the network (tiles, a task's scoring) runs the file instead."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        m = _loaded(self.path)
        self.names = [i.name for i in m.get_inputs()] if self.path.suffix == ".onnx" else None

    def forward(self, *xs):
        names = self.names or [f"input{i}" for i in range(len(xs))]
        outs = run_file(self.path, {k: x.float().contiguous() for k, x in zip(names, xs)}, every=True)
        outs = tuple(torch.from_numpy(o) for o in outs)
        return outs[0] if len(outs) == 1 else outs


def _add_metadata(path: Path, info: dict, swap: bool = False) -> None:
    import onnx  # onnx: only export needs it
    proto = onnx.load(str(path))
    if swap:
        _relu_before_pool(proto.graph)
    for k, v in info.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.save(proto, str(path))


def _relu_before_pool(graph) -> int:
    """Each MaxPool whose only reader is a Relu becomes Relu then MaxPool: the same function (a rising activation
    commutes with max), the order deepix trains in because it is cheaper in torch. In a file the other order is
    cheaper: onnxruntime fuses the Relu into the convolution before it, and an int8 file keeps the pooling in int8
    (in the trained order the pool's input and output scales differ, so it ran in float between a dequantise and a
    layout change). Returns the pairs swapped."""
    readers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    ends = {o.name for o in graph.output}
    swapped = 0
    for n in graph.node:
        users = readers.get(n.output[0], []) if n.op_type == "MaxPool" and len(n.output) == 1 else []
        if len(users) == 1 and users[0].op_type == "Relu" and n.output[0] not in ends:
            relu = users[0]
            attributes = list(n.attribute)
            n.op_type, relu.op_type = "Relu", "MaxPool"  # the pool's node reads x, the Relu's node writes the result
            del n.attribute[:]
            relu.attribute.extend(attributes)
            swapped += 1
    if swapped:  # the tensor between the two now has the unpooled shape
        del graph.value_info[:]
    return swapped


def _to_onnx(model, inputs, names, outputs, dynamic, info, path: Path, optimize: bool = True) -> None:
    def dim(name: str, label: str):
        return torch.export.Dim("batch", min=1, max=4096) if label == "batch" else \
            torch.export.Dim(f"{name}_{label}", min=16, max=8192)

    shapes = tuple({axis: dim(name, label) for axis, label in dynamic[name].items()} or None for name in names)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its passes
        torch.onnx.export(model, inputs, str(path), input_names=names, output_names=outputs, dynamic_shapes=shapes,
                          dynamo=True, external_data=False, optimize=optimize)
    _add_metadata(path, info, swap=True)


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
