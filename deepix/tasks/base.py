"""The task contract: what the engine, the CLI and the verbs (val, predict, export, serve, report, advise,
sweep, explain) may know of a task. A task subclasses `Task`, fills the hooks, and registers an instance
(`deepix.tasks.register`); nothing outside its folder names it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError


class Step:
    """What `engine.fit` drives each batch. One of three ways to step, declared by `mode`:
    "forward" (the engine runs loss(model(x), y), backward and the optimizer; DDP wraps the model),
    "model" (step(model, x, y) gives (loss, out) through the model's own interface; the engine steps),
    "own" (train_step runs forward, backward and its optimizers' steps; gradients averaged by hand)."""

    mode: str = "forward"

    def prepare(self, x, y, train: bool, g=None):
        """A batch from the loader made ready for the model (pixels scaled, augmented when training)."""
        return x, y

    def loss(self, out, y):
        """The loss of the model's output ("forward" mode)."""
        raise NotImplementedError

    def step(self, model, x, y):
        """(loss, out) for one batch ("model" mode)."""
        raise NotImplementedError

    def train_step(self, model, x, y, opts: dict, autocast: Callable) -> dict[str, float]:
        """One whole training step with the task's own optimizers ("own" mode); returns its losses."""
        raise NotImplementedError

    def optimizers(self, cfg, model) -> dict | None:
        """Optional: named optimizers the task steps itself; None: one optimizer from the settings."""
        return None

    def train_stats(self, out, y) -> dict[str, float]:
        """Optional: sums over a batch (e.g. correct answers) logged as train_<name> per image."""
        return {}

    def evaluate(self, model, val, dev, bf16: bool) -> dict[str, float]:
        """The validation figures of one epoch, logged as val_<name>."""
        return {}


@dataclass
class Job:
    """One training run of a task, made by `Task.setup` before the run folder exists."""
    model: Any                                   # the nn.Module whose weights the run saves
    step: Step
    train: Any                                   # batches: len() and epoch(epoch, shard=False)
    val: Any                                     # what step.evaluate takes (None: no validation)
    data: dict                                   # dataset.json
    about: str                                   # the start line's description of data and model
    finish: Callable[[Path, dict], tuple[dict, dict]]  # rank 0 after fit: (test figures, summary fields)
    begin: Callable[[Path], None] | None = None  # optional: once the run folder exists, before fit
    files: dict[str, str] = field(default_factory=dict)  # more files written into a new run folder
    callbacks: tuple = ()                        # the task's own per-epoch callbacks


class Loaded:
    """A trained run ready to use: `deepix.load(RUN)`. `predict(images)` is the one verb every task has."""

    task: str = ""                 # the task's name, for what the service reports
    classes: list | None = None
    batching: bool = False         # the service may put several requests in one forward pass
    makes_images: bool = False     # a generator: the service's /generate, not /predict

    def predict(self, images, **options) -> list:
        """Paths, PIL images or arrays in; one answer per image."""
        raise UserError(f"a {self.task} run does not predict from images")

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        """`deepix predict RUN FILES...`: predict files and folders and write the answers."""
        self.predict([])  # says why not

    def answer(self, images: list, options: dict) -> list[dict]:
        """The service's JSON answers for a list of PIL images (one forward pass where `batching`)."""
        raise UserError(f"a {self.task} run does not predict from images")

    def options(self, form: dict) -> dict:
        """The service's request options this task reads (top_k, conf, ...)."""
        return {}

    def grid(self, n: int, asked: str | None, seed: int):
        """Optional, for `makes_images`: n new images as one (C, H, W) grid in [0, 1]."""
        raise UserError(f"a {self.task} run does not make images")

    def make_files(self, n: int, asked: str | None, seed: int, out: Path) -> list[Path]:
        """Optional, for `makes_images`: `deepix generate`'s n new images written to OUT; the files written."""
        raise UserError(f"a {self.task} run does not make images")


@dataclass
class Exportable:
    """What `deepix export` writes: the module, example inputs and what the file's caller must know."""
    module: Any
    inputs: tuple
    input_names: list[str]
    output_names: list[str]
    dynamic: dict
    info: dict
    about: str                                  # what the parity check's inputs are
    parity: Callable | None = None              # optional: (file's output, deepix's) -> more parity figures
    optimize: bool = True                       # the ONNX exporter's own graph optimisation (off for a huge unrolled
                                                # graph, where it takes most of the time; onnxruntime optimises on load)
    # int8 export (tasks whose `no_int8` is empty give all three):
    calibration: Callable | None = None         # n -> batches (tuples of input tensors) of up to n training images
    score: Callable | None = None               # module -> (figures on the test split: the budget's metric, "split",
                                                # "images"; answers to compare, e.g. top-1 classes, or None)
    int8_budget: tuple[str, float] = ("", 0.0)  # (metric, the most int8 may lose of it)
    higher: bool = True                         # whether the metric improves upward


@dataclass
class Report:
    """A run's report as the task tells it: the headline, the data in a few words, and sections
    (id, title, html); the first two go before the curves. `curves`: PNGs that replace the shared curves."""
    headline: str
    about: str
    sections: list[tuple[str, str, str]]
    curves: list[Path] | None = None


class Task:
    """A task: its settings, how it trains, evaluates, loads, prints, reports, exports and explains."""

    name: str = ""
    title: str = ""                       # a few words for help texts
    defaults: dict[str, Any] = {}         # its defaults where they differ from `Config`'s
    uses: frozenset[str] = frozenset()    # the task's own settings beyond the shared ones (config.SHARED)
    ignores: frozenset[str] = frozenset() # shared settings it does not read (a flag for them stops with one line)
    learning_curve: bool = False          # `advise --learning-curve` can retrain it on shares of its data (its test
                                          # figures then hold "accuracy", a fraction, which the curve reads)
    fit_verdict: bool = False             # the report's overfitting / underfitting verdict applies
    augment_presets: bool = True          # --augment takes the presets (else: on or off, e.g. flips)
    dropout: bool = True                  # its models take --dropout (a remedy the advisor may offer)
    result_unit: str = "images"           # what train/images_per_s counts
    folder_imgsz: int = 64                # --imgsz 0 on images of mixed sizes from disk: they are read at this side
    data_help: str = ""                   # what --data takes, where it is not images with labels (--help's line)
    no_int8: str = "its exported file has no test figure deepix can check an int8 copy by"  # why `export --int8`
                                          # does not apply ("" where it does: its Exportable gives calibration, score)

    def higher_is_better(self, monitor: str) -> bool:
        """Whether the monitored figure improves upward (accuracy) or downward (a loss)."""
        return not monitor.endswith("loss")

    def figure_unit(self, monitor: str) -> tuple[float, str]:
        """How a difference of the monitored figure is shown: (scale, unit), e.g. (100, " points") for a
        fraction, (1, " dB") for PSNR. Default: as it is, no unit."""
        return 1.0, ""

    def given(self, data) -> Any:
        """Optional: a Python object given as `data` that the task reads itself (an environment class, say):
        what `setup` then receives as `dataset`; None leaves it to the shared rules (a Dataset, or arrays)."""
        return None

    def setup(self, cfg, dataset, net, dev, bf16: bool, resume: str | None) -> Job:
        """Reads the data, checks the settings and builds the model and its step."""
        raise NotImplementedError

    def load(self, run: Path, weights: str = "best", model=None) -> Loaded:
        """The trained run as a `Loaded`."""
        raise NotImplementedError

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        """Re-measures the run's best weights on its test split (or on `data`)."""
        raise NotImplementedError

    def main_figure(self, test: dict) -> tuple[str, float | None]:
        """The test figure a sweep compares, e.g. ("test_accuracy", 0.98)."""
        raise NotImplementedError

    def print_result(self, result: dict, console) -> None:
        """What `deepix train` prints when the run ends."""
        console.print(f"report: {result['report']}")

    def print_val(self, metrics: dict, console) -> None:
        """What `deepix val` prints."""
        console.print(metrics)

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
        """The report's headline and sections."""
        return Report(f"{self.name} run", "", [])

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        """The report's diagnosis: [{finding, evidence, remedies}]."""
        return []

    def prune_keep(self, model) -> list:
        """Optional: the layers `deepix prune` leaves whole because their outputs are the task's answer (a
        classifier's last layer); the rest lose channels."""
        raise UserError(f"deepix prune does not take {self.name} runs yet")

    def exportable(self, run: Path, weights: str, data: str | None) -> Exportable:
        """Optional: the module `deepix export` writes."""
        raise UserError(f"export of {self.name} runs is not supported")

    def exported(self, file) -> Loaded:
        """Optional: an exported file of this task used like a run (`deepix predict model.onnx ...`)."""
        raise UserError(f"{file.path} holds a {self.name} model; predict takes exported files of other tasks")

    def explain(self, run: Path, images, layer, cls, out: Path, conf: float) -> dict:
        """Optional: `deepix explain`'s maps for this task's predictions: a dict with task, layer, class,
        predictions, notes, pngs, lines (printed) and html (explain.html's body), its PNGs written to `out`."""
        raise UserError(f"{run} is a {self.name} run, and deepix explain does not take {self.name} runs")
