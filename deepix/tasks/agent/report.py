"""The agent report: the environment, the network, the agent beside a random agent on the test episodes,
a GIF of test episodes and the training episodes over frames."""
from __future__ import annotations

from pathlib import Path

from ...report.html import esc, img, table
from ..base import Report


def rows_of(agents: dict) -> list[list]:
    return [[k, f"{r['return']:.3f} ± {r['return_std']:.3f}", f"{r['length']:.1f}",
             "-" if r["success"] is None else f"{r['success']:.1%}", f"{r['ms_per_step']:.2f}"] for k, r in agents.items()]


HEAD = ["agent", "mean return", "episode length", "success", "ms per step"]


def parts(run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
    data, test, model = summary.get("data") or {}, summary.get("test") or {}, summary.get("model") or {}
    plots = run / "plots"
    c, h, w = data.get("observation") or ("?", "?", "?")
    d = (f"<p>{esc(data.get('name', '?'))}: observations of {c}x{h}x{w} ({esc(data.get('dtype', '?'))}), "
         f"{data.get('actions', '?')} actions; {esc(data.get('note', ''))}.</p>")
    bc, algo = config.get("bc", 0), str(config.get("algo", "ppo")).upper()
    m = (f"<p>A small CNN on the observation, pooled to a 4x4 map, into the actions' logits and the state's value; "
         f"{model.get('params', 0):,} parameters. " + (f"The first {bc:.0%} of the epochs clone the environment's "
                                                       "expert (DAgger); " if bc else "")
         + f"{algo} on {config.get('envs')} environments, {config.get('rollout')} steps each per update; "
         f"{summary.get('frames', 0):,} environment frames.</p><pre>{esc(model.get('summary', ''))}</pre>")
    agents = test.get("agents") or {}
    t = []
    if agents:
        t.append(f"<p>{test['episodes']} test episodes (seeds {test['seeds'][0]} to {test['seeds'][1]}, which training "
                 "and validation never use); the agent takes its most likely action.</p>")
        t.append(table(HEAD, rows_of(agents)))
        t.append("<p>Test episodes, as the agent saw them:</p>" + img(plots / "episodes.gif", "episodes"))
    t.append(img(plots / "episodes.png", "training episodes"))
    a = agents.get("agent")
    headline = (f"Test mean return {a['return']:.3f} (random agent {agents['random']['return']:.3f})"
                + ("" if a["success"] is None else f", success {a['success']:.1%}") if a else "agent run")
    return Report(headline, f"{data.get('name', '?')}", [("data", "Environment", d), ("model", "Agent", m),
                                                        ("test", "On the test episodes", "".join(t))])
