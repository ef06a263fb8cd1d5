"""model.summary(): Keras's table of layers, output shapes and parameter counts."""
from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table

from ..errors import UserError


def count(layer) -> tuple[int, int]:
    """(trainable, non-trainable) values, counting BatchNormalization's moving statistics as Keras does."""
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in layer.parameters() if not p.requires_grad)
    frozen += sum(b.numel() for name, b in layer.named_buffers() if name.startswith("running_"))
    return trainable, frozen


def readable(n_values: int) -> str:
    size, unit = n_values * 4.0, "B"  # float32 weights
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            break
        size /= 1024
    return f"{size:.2f} {unit}"


def shape_text(shape) -> str:
    return "(" + ", ".join(["None", *(str(s) for s in shape)]) + ")"


def summary_text(model, line_length=None) -> str:
    if not model.built:
        raise UserError(f'model "{model.name}" is not built yet, so its shapes are unknown: give the first layer '
                        f"input_shape=(28, 28, 1) (or start with Input(shape=...)), call "
                        f"model.build((None, 28, 28, 1)), "
                        f"or fit it first")
    table = Table(box=box.HEAVY_HEAD, show_lines=True, header_style="bold")
    table.add_column("Layer (type)", width=31, no_wrap=False)
    table.add_column("Output Shape", width=22)
    table.add_column("Param #", width=13, justify="right")
    trainable = frozen = 0
    for layer in model.layers:
        t, f = count(layer)
        trainable, frozen = trainable + t, frozen + f
        table.add_row(f"{layer.name} ({type(layer).__name__})", shape_text(layer.output_shape_), f"{t + f:,}")
    out = io.StringIO()
    Console(file=out, width=line_length or 200, color_system=None, force_terminal=False, legacy_windows=False,
            emoji=False, highlight=False).print(table)
    total = trainable + frozen
    lines = [f'Model: "{model.name}"', out.getvalue().rstrip("\n"),
             f" Total params: {total:,} ({readable(total)})",
             f" Trainable params: {trainable:,} ({readable(trainable)})",
             f" Non-trainable params: {frozen:,} ({readable(frozen)})"]
    return "\n".join(lines)
