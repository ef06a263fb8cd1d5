"""`deepix prune RUN --ratio R`: whole channels removed (Torch-Pruning), fine-tuned, and a normal run folder that
val, predict, export and --resume take; bad ratios and tasks it does not take are one line, exit 2."""
import json

import numpy as np
import torch
from PIL import Image

import deepix


def convs(model) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def test_a_pruned_run_has_fewer_channels_loads_and_predicts(classify_run, tmp_path, cli):
    r = cli("prune", classify_run, "--ratio", 0.5, "--epochs", 1, "--name", "half", "--threads", 1, check=True)
    run = classify_run.parent / "half"
    assert f"{run}:" in r.stdout and "before pruning" in r.stdout
    pruned = json.loads((run / "summary.json").read_text())["pruned"]
    assert pruned["params_after"] < 0.4 * pruned["params_before"]  # half the channels: about a quarter of the weights
    small, big = deepix.load(run), deepix.load(classify_run)
    assert all(a < b for a, b in zip(convs(small.model)[1:], convs(big.model)[1:])) and \
        len(convs(small.model)) == len(convs(big.model))
    img = tmp_path / "digit.png"
    Image.fromarray(np.asarray(torch.rand(28, 28).mul(255).byte())).save(img)
    assert json.loads(cli("predict", run, img, "--json", check=True).stdout)["class"] in small.classes
    cli("train", "classify", "--resume", run, "--epochs", 2, check=True)  # the state loads into the smaller layers
    assert len((run / "metrics.csv").read_text().splitlines()) == 3


def test_bad_prune_requests_are_one_line_exit_2(classify_run, generate_run, cli):
    for args, says in (([classify_run, "--ratio", 1], "in (0, 1)"), ([classify_run, "--ratio", 0], "in (0, 1)"),
                       ([generate_run, "--ratio", 0.5], "does not take generate runs")):
        r = cli("prune", *args)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_advise_deploy_measures_each_form_and_picks_one_within_the_latency(classify_run, cli):
    from deepix.deploy import deploy
    d = deploy(classify_run, latency_ms=1e4, seconds=0.05)
    rows = {r["row"]: r for r in d["rows"]}
    assert {"fp32 (onnxruntime)", "int8 (onnxruntime)"} <= set(rows)
    assert {"bf16 (torch)", "fp32 (torch)"} & set(rows)  # bf16 where this CPU computes it natively
    assert rows["int8 (onnxruntime)"]["bytes"] < rows["fp32 (onnxruntime)"]["bytes"] / 2
    assert all(r["p50_ms"] <= r["p95_ms"] and r["images_per_s"] > 0 for r in d["rows"])
    best = max(r["figure"] for r in d["rows"])
    assert rows[d["pick"]]["figure"] == best  # every row fits 10 s: the pick is the best figure
    assert json.loads((classify_run / "deploy.json").read_text())["pick"] == d["pick"]
    from deepix.deploy import choose
    rows = [{"row": "a", "figure": 0.90, "p50_ms": 1.0, "p95_ms": 2.0},
            {"row": "b", "figure": 0.95, "p50_ms": 3.0, "p95_ms": 6.0},
            {"row": "c", "figure": 0.945, "p50_ms": 2.0, "p95_ms": 2.5}]
    assert choose(rows, "acc", True, 5, 0.01)[0] == "c" and choose(rows, "acc", True, 10, 0.01)[0] == "b"
    assert choose(rows, "acc", True, 1, 0.01)[0] is None and "the fastest is a" in choose(rows, "acc", True, 1, 0)[1]
    assert choose(rows, "acc", True, None, 0.01)[0] == "c" and choose(rows, "acc", True, None, 0.0)[0] == "b"
    assert choose(rows, "fid", False, None, 0.0)[0] == "a"  # lower is better
    r = cli("advise", classify_run, "--deploy", "--latency-ms", 0)
    assert r.returncode == 2 and "--latency-ms" in r.stderr
