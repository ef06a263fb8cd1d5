"""The diagnosis of an agent's learning curves (metrics.csv rows): not learning, unstable (the policy's
entropy collapsed, the value loss exploding), still improving; each with its evidence and the flags to try."""
from __future__ import annotations

import math


def diagnose(rows: list[dict], summary: dict, config: dict, figure: str, label: str, share: bool = True) -> list[dict]:
    """`figure`: the validation column that says how well the agent does: a share in [0, 1], or (share=False)
    a return on the environment's own scale."""
    out = []
    f = (lambda v: f"{v:.1%}") if share else (lambda v: f"{v:.3g}")
    if not rows:
        return out
    val = [r.get(figure, math.nan) for r in rows]
    ppo = [r for r in rows if not math.isnan(r.get("train_return", math.nan))]
    lr = config.get("lr", 0.003)
    best = max((v for v in val if not math.isnan(v)), default=math.nan)
    flat = (best - val[0] < 0.02 and best < 0.5) if share else best - val[0] <= 0.02 * (abs(val[0]) + 1)
    if len(rows) >= 3 and not math.isnan(best) and flat:
        out.append({"finding": f"Not learning: {label} stays flat",
                    "evidence": f"{label} {f(val[0])} at epoch 1, best {f(best)} after {len(rows)} epochs",
                    "remedies": ["--bc 0.5 (start from the expert's demonstrations)", f"--lr {lr / 3:.4g}",
                                 "--time-limit 20"]})
    ent = [r.get("train_entropy", math.nan) for r in ppo]
    last = val[-1] if not math.isnan(val[-1]) else 0.0
    if ppo and ent[-1] < 0.05 and (last < 0.9 if share else flat):
        out.append({"finding": "Unstable: the policy's entropy collapsed before it succeeds",
                    "evidence": f"entropy {ent[-1]:.3f} at the last epoch, {label} {f(last)}",
                    "remedies": [f"--entropy {max(0.02, 2 * config.get('entropy', 0.01)):.3g}", f"--lr {lr / 3:.4g}"]})
    vl = [r.get("train_value_loss", math.nan) for r in ppo]
    if len(vl) >= 3 and vl[-1] > 10 * max(min(vl), 1e-3):
        out.append({"finding": "Unstable: the value loss is exploding",
                    "evidence": f"value loss {min(vl):.3g} at its lowest, {vl[-1]:.3g} at the last epoch",
                    "remedies": ["--grad-clip 0.5", f"--lr {lr / 3:.4g}", "--gamma 0.98"]})
    if len(val) >= 4 and summary.get("train", {}).get("best_epoch") == len(rows) and val[-1] > val[-4]:
        out.append({"finding": "Still improving: the best epoch is the last",
                    "evidence": f"{label} {f(val[-4])} three epochs before the end, {f(val[-1])} at the end",
                    "remedies": [f"--time-limit {2 * (config.get('time_limit') or 10):g}",
                                 f"deepix train {summary.get('task', 'TASK')} --resume RUN --epochs {2 * len(rows)}"]})
    return out
