"""Path planning (issue 18, first part): maps, the optimal planner, the environment and the baselines."""
import math

import networkx as nx
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image
from scipy import ndimage

from deepix.errors import UserError
from deepix.tasks.navigate import baselines, maps
from deepix.tasks.navigate.env import GOAL_BONUS, WALL_PENALTY, GridWorld
from deepix.tasks.navigate.planner import MOVES, plan, step_cost

R2 = math.sqrt(2)


def dijkstra(cost, start, goal):
    """The cheapest cost by networkx on the 8-connected grid, each move charged as the environment does."""
    g = nx.Graph()
    free = [tuple(p) for p in np.argwhere(np.isfinite(cost))]
    for a in free:
        for dr, dc in MOVES:
            b = (a[0] + dr, a[1] + dc)
            if 0 <= b[0] < cost.shape[0] and 0 <= b[1] < cost.shape[1] and math.isfinite(cost[b]):
                g.add_edge(a, b, weight=step_cost(cost, a, b))
    return nx.shortest_path_length(g, start, goal, weight="weight")


def grid(text):
    return np.array([[math.inf if ch == "#" else 1.0 for ch in row] for row in text.split()])


def test_the_planner_finds_the_optimal_cost_on_hand_made_maps():
    open5 = np.ones((5, 5))
    assert plan(open5, (0, 0), (0, 4))[1] == pytest.approx(4)
    assert plan(open5, (0, 0), (4, 4))[1] == pytest.approx(4 * R2)
    wall = grid("""..#..
                   ..#..
                   ..#..
                   ..#..
                   .....""")
    path, total = plan(wall, (0, 0), (0, 4))
    assert total == pytest.approx(4 + 4 * R2)      # down to the one gap and back up, diagonals where they pay
    assert (4, 2) in path and path[0] == (0, 0) and path[-1] == (0, 4)
    assert all(math.isfinite(wall[p]) for p in path)
    assert sum(step_cost(wall, a, b) for a, b in zip(path, path[1:])) == pytest.approx(total)
    costly = np.ones((3, 5))
    costly[1, 1:4] = 9.0                            # the straight row is dear: go round it
    assert plan(costly, (1, 0), (1, 4))[1] == pytest.approx(2 * R2 + 2)


def test_the_planner_agrees_with_dijkstra_on_generated_and_cost_maps():
    rng = np.random.default_rng(0)
    cost_map = maps.generate(1, 16, 5, ("cave",))[0] * rng.uniform(1, 5, (16, 16))
    for m in maps.generate(3, 16, 4) + [cost_map]:
        free = np.argwhere(np.isfinite(m))
        for _ in range(5):
            a, b = (tuple(map(int, free[i])) for i in rng.choice(len(free), 2, replace=False))
            assert plan(m, a, b)[1] == pytest.approx(dijkstra(m, a, b))


def test_maps_are_connected_walled_repeatable_and_the_splits_disjoint():
    for kind in maps.KINDS:
        for m in maps.generate(6, 16, 1, (kind,)):
            walls = np.isinf(m)
            assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
            assert ndimage.label(~walls, structure=np.ones((3, 3)))[1] == 1
            assert (~walls).mean() >= maps.MIN_FREE
    assert all((a == b).all() for a, b in zip(maps.generate(4, 16, 7), maps.generate(4, 16, 7)))
    s = maps.splits({"train": 60, "val": 20, "test": 20}, 16, 0)
    prints = {k: {maps.fingerprint(m) for m in v} for k, v in s.items()}
    assert not (prints["train"] & prints["test"]) and not (prints["val"] & prints["test"])
    assert len(s["test"]) >= 15


def test_a_map_image_is_read_with_otsu_or_as_costs(tmp_path):
    walls = np.isinf(maps.generate(1, 16, 3)[0])
    grey = np.where(walls, 30, 220).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "map.png")
    assert (np.isinf(maps.read_map(tmp_path / "map.png")) == walls).all()
    shades = grey.copy()
    shades[~walls] = np.where(np.arange((~walls).sum()) % 2, 255, 160)
    Image.fromarray(shades).save(tmp_path / "cost.png")
    c = maps.read_map(tmp_path / "cost.png", wall_threshold=100, cost=True)
    assert (np.isinf(c) == walls).all() and set(np.unique(c[~walls])) == {1.0, 10.0}
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="not a readable image"):
        maps.read_map(tmp_path / "bad.png")
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(tmp_path / "flat.png")
    with pytest.raises(UserError, match="one grey level"):
        maps.read_map(tmp_path / "flat.png")


def test_bad_starts_and_goals_are_one_line_errors():
    two_rooms = grid("""..#..
                        ..#..
                        ..#..""")
    with pytest.raises(UserError, match="no free path"):
        plan(two_rooms, (0, 0), (0, 4))
    with pytest.raises(UserError, match="start 0,2 is inside a wall"):
        plan(two_rooms, (0, 2), (0, 4))
    with pytest.raises(UserError, match="goal 9,9 is outside"):
        plan(two_rooms, (0, 0), (9, 9))
    env = GridWorld([two_rooms])
    with pytest.raises(UserError, match="no free path"):
        env.reset(options={"start": (1, 0), "goal": (1, 4)})


def test_the_environment_keeps_gymnasiums_contract_and_pays_as_it_says():
    ms = maps.generate(8, 16, 2)
    check_env(GridWorld(ms), skip_render_check=True)
    env = GridWorld(ms)
    obs, info = env.reset(seed=3)
    assert obs.shape == (3, 16, 16) and obs[1].sum() == 1 and obs[2].sum() == 1
    assert obs[1][info["start"]] == 1 and obs[2][info["goal"]] == 1 and (obs[0] == np.isinf(ms[info["map"]])).all()
    total, done = 0.0, False
    act = baselines.planner()
    while not done:
        _, reward, done, truncated, info = env.step(act(env))
        total += reward
        assert not truncated
    assert info["success"] and total == pytest.approx(GOAL_BONUS - info["optimal_cost"])
    corridor = grid("""#####
                       #...#
                       #####""")
    env = GridWorld([corridor], min_steps=1)
    env.reset(options={"start": (1, 1), "goal": (1, 3)})
    _, reward, done, truncated, info = env.step(MOVES.index((-1, 0)))   # into the wall above
    assert reward == -WALL_PENALTY and info["pos"] == (1, 1) and info["collisions"] == 1 and not done
    while not truncated:
        _, _, done, truncated, info = env.step(MOVES.index((0, -1)))
    assert not done and info["steps"] == env.limit >= 3 * info["optimal_steps"]


def test_the_planner_beats_greedy_which_beats_random_on_unseen_maps():
    env = GridWorld(maps.splits({"train": 10, "test": 40}, 16, 1)["test"])
    eps = baselines.episodes(env, 80, seed=0)
    best = baselines.evaluate(baselines.planner(), env, eps)
    greedy = baselines.evaluate(baselines.greedy, env, eps)
    rand = baselines.evaluate(baselines.random_walker(0), env, eps)
    assert best["success"] == 1.0 and best["spl"] == pytest.approx(1.0) and best["cost_ratio"] == pytest.approx(1.0)
    assert best["collisions"] == 0 and best["ms_per_path"] > 0
    assert rand["success"] < greedy["success"] < 1.0 and greedy["spl"] <= greedy["success"]
    assert rand["collisions"] > greedy["collisions"]


def test_the_planners_moves_at_every_cell_start_optimal_paths():
    from deepix.tasks.navigate.planner import cost_to_go, optimal_moves
    rng = np.random.default_rng(1)
    cost_map = maps.generate(1, 16, 6, ("rooms",))[0] * rng.uniform(1, 4, (16, 16))
    for m in maps.generate(3, 16, 8) + [cost_map]:
        free = [tuple(map(int, p)) for p in np.argwhere(np.isfinite(m))]
        goal = free[rng.integers(len(free))]
        togo, moves = cost_to_go(m, goal), optimal_moves(m, goal)
        assert togo[goal] == 0 and np.isinf(togo[np.isinf(m)]).all()
        assert moves[:, goal[0], goal[1]].sum() == 0 and moves[:, np.isinf(m)].sum() == 0
        for cell in [free[i] for i in rng.choice(len(free), 12, replace=False)]:
            if cell == goal:
                continue
            assert togo[cell] == pytest.approx(plan(m, cell, goal)[1])
            assert moves[:, cell[0], cell[1]].sum() == pytest.approx(1.0)
            for a in np.flatnonzero(moves[:, cell[0], cell[1]]):   # each move marked lands one step nearer
                nxt = (cell[0] + MOVES[a][0], cell[1] + MOVES[a][1])
                assert step_cost(m, cell, nxt) + togo[nxt] == pytest.approx(togo[cell])
    corner = grid("""...
                     ...
                     ...""")
    moves = optimal_moves(corner, (0, 0))
    assert moves[MOVES.index((-1, -1)), 1, 1] == 1.0            # one optimal move: the diagonal
    assert moves[:, 0, 2].tolist() == [0, 0, 1, 0, 0, 0, 0, 0]  # from the far corner of the top row: left
