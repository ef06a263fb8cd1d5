"""The optimal planner (scikit-image's minimum-cost path, Dijkstra on the 8-connected grid) and the
step cost that the environment charges, which is the same as the planner's: a move's length (1, or the
square root of 2 on a diagonal) times the mean cost of the two cells."""
from __future__ import annotations

import math

import numpy as np
from skimage.graph import route_through_array

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
