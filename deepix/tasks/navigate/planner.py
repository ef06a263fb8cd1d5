"""The optimal planner (scikit-image's minimum-cost path, Dijkstra on the 8-connected grid) and the
step cost that the environment charges, which is the same as the planner's: a move's length (1, or the
square root of 2 on a diagonal) times the mean cost of the two cells."""
from __future__ import annotations

import math

import numpy as np
from skimage.graph import MCP_Geometric, route_through_array

from ...errors import UserError

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))   # the 8 actions


def step_cost(cost: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    return math.hypot(b[0] - a[0], b[1] - a[1]) * (cost[a] + cost[b]) / 2


def check_cell(cost: np.ndarray, cell: tuple[int, int], what: str) -> None:
    r, c = cell
    if not (0 <= r < cost.shape[0] and 0 <= c < cost.shape[1]):
        raise UserError(f"the {what} {r},{c} is outside the {cost.shape[0]}x{cost.shape[1]} map")
    if not math.isfinite(cost[r, c]):
        raise UserError(f"the {what} {r},{c} is inside a wall; pick a free cell")


def plan(cost: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> tuple[list[tuple[int, int]], float]:
    """The cheapest path from start to goal (cells, start and goal included) and its cost."""
    check_cell(cost, start, "start")
    check_cell(cost, goal, "goal")
    if start == goal:
        return [start], 0.0
    try:
        path, total = route_through_array(cost, start, goal, fully_connected=True, geometric=True)
    except ValueError:
        raise UserError(f"no free path joins the start {start[0]},{start[1]} and the goal {goal[0]},{goal[1]} "
                        "on this map") from None
    return [tuple(map(int, p)) for p in path], float(total)


def path_length(path: list[tuple[int, int]]) -> float:
    """Geometric length: 1 per straight step, sqrt(2) per diagonal one."""
    return sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(path, path[1:]))


def cost_to_go(cost: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    """The optimal cost from every cell to the goal (infinite in walls and where the goal cannot be reached):
    the planner's Dijkstra run once from the goal. Moves cost the same both ways, so this is the cost to go."""
    check_cell(cost, goal, "goal")
    togo, _ = MCP_Geometric(cost, fully_connected=True).find_costs([goal])
    return np.where(np.isfinite(cost), togo, np.inf)


def optimal_moves(cost: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    """(8, H, W): at each open cell that can reach the goal, 1/k on each of the k moves that start an optimal
    path (ties shared), 0 elsewhere: the planner's demonstrations for every start at once."""
    togo = cost_to_go(cost, goal)
    h, w = cost.shape
    best = np.full((len(MOVES), h, w), np.inf)
    for a, (dr, dc) in enumerate(MOVES):
        # the cell each move lands on, padded with walls past the border
        nxt = np.full((h, w), np.inf)
        nc = np.full((h, w), np.inf)
        rs, cs = slice(max(dr, 0), h + min(dr, 0)), slice(max(dc, 0), w + min(dc, 0))
        rd, cd = slice(max(-dr, 0), h + min(-dr, 0)), slice(max(-dc, 0), w + min(-dc, 0))
        nxt[rd, cd], nc[rd, cd] = togo[rs, cs], cost[rs, cs]
        with np.errstate(invalid="ignore"):
            best[a] = math.hypot(dr, dc) * (cost + nc) / 2 + nxt
    lowest = best.min(0)
    reach = np.isfinite(lowest) & np.isfinite(togo) & (togo > 0)
    on = (best <= lowest + 1e-9 * np.maximum(1.0, lowest)) & reach
    return (on / np.maximum(on.sum(0), 1)).astype(np.float32)
