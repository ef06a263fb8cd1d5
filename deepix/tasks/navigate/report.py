"""The navigate report: the agent beside the walkers on the test maps, the value and arrows over test maps,
a GIF of test episodes, the training episodes over frames; and the diagnosis of the learning curves."""
from __future__ import annotations

from pathlib import Path

from ...report.html import esc, img, table
from ...rl.diagnose import diagnose
from ..base import Report


def parts(run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
    data, test, model = summary.get("data") or {}, summary.get("test") or {}, summary.get("model") or {}
    plots = run / "plots"
    walkers = test.get("walkers") or {}
    size = "x".join(map(str, data.get("size") or []))
    maps = data.get("maps") or {}
    d = (f"<p>{maps.get('train', '?')} training, {maps.get('val', '?')} validation and {maps.get('test', '?')} test "
         f"maps of {size} cells ({esc(data.get('name', '?'))}: {esc(data.get('note', ''))}). An episode draws a map, "
         f"a start and a goal; the agent sees the map, itself and the goal as three image channels and takes one of "
         f"8 moves. Reward: minus each step's cost, +10 at the goal, -1 for walking into a wall; an episode is cut "
         f"off at 3 times the optimal path's steps.</p>")
    bc = config.get("bc", 0)
    m = (f"<p>{esc(config.get('model', '?'))}, {model.get('params', 0):,} parameters: it reads the map and the goal "
         f"and answers for every cell at once (the moves' logits and the value), read at the agent's cell. "
         + (f"The first {bc:.0%} of the epochs clone the optimal planner's moves and values (behaviour cloning); "
            if bc else "") + f"then PPO ({config.get('envs')} environments, {config.get('rollout')} steps each per "
         f"update, {config.get('ppo_epochs')} passes, discount {config.get('gamma')}, entropy bonus "
         f"{config.get('entropy')}); {summary.get('frames', 0):,} environment frames in all.</p>"
         f"<pre>{esc(model.get('summary', ''))}</pre>")
    t = []
    if walkers:
        t.append(f"<p>{test['episodes']} episodes on {test['maps']} test maps the agent never saw; every walker walks "
                 "the same episodes. SPL: success weighted by the optimal path's length over the length walked.</p>")
        t.append(table(["walker", "success", "SPL", "cost / optimal", "collisions", "steps", "ms per path"],
                       [[k, f"{r['success']:.1%}", f"{r['spl']:.3f}",
                         "-" if r["cost_ratio"] is None else f"{r['cost_ratio']:.3f}", f"{r['collisions']:.2f}",
                         f"{r['length']:.1f}", f"{r['ms_per_path']:.2f}"] for k, r in walkers.items()]))
        t.append("<p>The learnt value over test maps, white arrows the agent's move at each cell, the goal a red "
                 "star:</p>" + img(plots / "value_map.png", "value map"))
        t.append("<p>Test episodes (agent red, goal green, its path blue):</p>" + img(plots / "episodes.gif", "episodes"))
    t.append(img(plots / "episodes.png", "training episodes"))
    a = walkers.get("agent", {})
    headline = (f"Test success {a['success']:.1%}, SPL {a['spl']:.3f} (greedy walker {walkers['greedy']['success']:.1%}, "
                f"planner 100%)" if a else "navigate run")
    return Report(headline, f"{size} maps", [("data", "Maps and episodes", d), ("model", "Agent", m),
                                             ("test", "On unseen test maps", "".join(t))])


def findings(rows: list[dict], summary: dict, config: dict) -> list[dict]:
    """The RL core's diagnosis on validation success, and whether the agent walks worse than the greedy walker."""
    out = diagnose(rows, summary, config, "val_success", "val success")
    test = (summary.get("test") or {}).get("walkers") or {}
    greedy = test.get("greedy", {}).get("success")
    if greedy is not None and test.get("agent", {}).get("success", 1) < greedy:
        out.append({"finding": "The agent walks worse than the greedy walker",
                    "evidence": f"test success {test['agent']['success']:.1%} against greedy {greedy:.1%}",
                    "remedies": ["--bc 0.5", "--time-limit 20", "--model fcn"]})
    return out
