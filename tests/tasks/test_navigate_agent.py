"""navigate end to end on 8x8 maps: the agent against the walkers, exact resume of a killed run, predict,
val, export and the lines a user's mistakes get."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import deepix

TINY = dict(imgsz=8, epochs=4, bc=0.5, envs=8, rollout=8, batch=16, quiet=True)


@pytest.fixture(scope="module")
def nav_run(tmp_path_factory):
    return deepix.train("navigate", project=str(tmp_path_factory.mktemp("nav")), name="tiny", **TINY)


def test_the_agent_walks_far_better_than_the_random_walker(nav_run):
    walkers = nav_run["test"]["walkers"]
    assert walkers["planner"]["success"] == 1.0 and walkers["planner"]["spl"] == pytest.approx(1.0)
    assert walkers["agent"]["success"] > walkers["random"]["success"] + 0.3
    run = nav_run["run"]
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 5 and "val_spl" in rows[0] and "train_return" in rows[0]
    assert (run / "episodes.csv").read_text().count("\n") > 10      # PPO's episodes, by frames
    for name in ("value_map.png", "episodes.gif", "episodes.png"):
        assert (run / "plots" / name).stat().st_size > 1000
    html = (run / "report.html").read_text()
    assert "greedy" in html and "image/gif" in html


def test_a_killed_run_resumed_ends_where_an_uninterrupted_one_does(tmp_path, nav_run):
    class Killed(Exception):
        pass

    def kill(row, model):
        if row["epoch"] == 3:   # in the PPO phase, its rollouts half done
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deepix.train("navigate", project=str(tmp_path), name="cut", callbacks=[kill], **TINY)
    cut = tmp_path / "navigate" / "cut"
    deepix.train("navigate", resume=str(cut), quiet=True)
    a = load_file(str(nav_run["run"] / "weights" / "last.safetensors"))
    b = load_file(str(cut / "weights" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (cut / "episodes.csv").read_text() == (nav_run["run"] / "episodes.csv").read_text()


def write_map(path, text):
    """A map image from rows of '#' (wall) and '.' (free), 10 pixels a cell."""
    grid = np.array([[0 if ch == "#" else 255 for ch in row] for row in text.split()], np.uint8)
    Image.fromarray(grid).resize((grid.shape[1] * 10, grid.shape[0] * 10), Image.NEAREST).save(path)


ROOM = """........
          .######.
          .#....#.
          .#....#.
          ........
          ..####..
          ........
          ........"""


def test_predict_draws_the_path_and_writes_it_as_json(nav_run, tmp_path, cli):
    write_map(tmp_path / "room.png", ROOM)
    r = cli("predict", nav_run["run"], tmp_path / "room.png", "--start", "0,0", "--goal", "7,7",
            "-o", tmp_path / "path.png", check=True)
    assert "0,0" in r.stdout and "SPL" in r.stdout
    found = json.loads((tmp_path / "path.json").read_text())
    assert found["path"][0] == [0, 0] and found["start"] == [0, 0] and found["goal"] == [7, 7]
    assert found["optimal_length"] == pytest.approx(4 + 5 * 2 ** 0.5, abs=1e-4)   # round the walls: 4 straight, 5 diagonal
    assert Image.open(tmp_path / "path.png").size[0] >= 256
    api = deepix.load(nav_run["run"]).predict(str(tmp_path / "room.png"), start=(0, 0), goal=(7, 7))
    assert api[0]["path"] == found["path"]


def test_bad_maps_and_cells_get_one_line(nav_run, tmp_path, cli):
    write_map(tmp_path / "room.png", ROOM)
    write_map(tmp_path / "split.png", ".....###\n" * 8)   # the three right columns are walls...
    cut = np.full((8, 8), 255, np.uint8)
    cut[:, 4] = 0                                        # ...and here a wall cuts the map in two
    Image.fromarray(cut).resize((80, 80), Image.NEAREST).save(tmp_path / "cut.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    for args, words in (((tmp_path / "room.png", "--start", "1,1", "--goal", "7,7"), "inside a wall"),
                        ((tmp_path / "cut.png", "--start", "0,0", "--goal", "0,7"), "no free path"),
                        ((tmp_path / "room.png", "--start", "x", "--goal", "7,7"), "ROW,COL"),
                        ((tmp_path / "broken.png",), "not a readable image")):
        r = cli("predict", nav_run["run"], *args)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_val_and_onnx_export_match_the_run(nav_run, tmp_path, cli):
    m = deepix.val(nav_run["run"])
    # the same episodes give the same figures; the time per path is a clock's reading, not one of them
    same = {k: v for k, v in nav_run["test"]["walkers"]["agent"].items() if k != "ms_per_path"}
    assert {k: m["walkers"]["agent"][k] for k in same} == pytest.approx(same, abs=1e-9)
    assert m["success"] == nav_run["test"]["success"]
    r = cli("export", nav_run["run"], "--format", "onnx", "-o", tmp_path / "nav.onnx", check=True)
    assert (tmp_path / "nav.onnx").is_file() and "parity" in r.stdout.lower()


def test_train_on_a_folder_of_map_images_with_costs(tmp_path):
    folder = tmp_path / "maps"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        grey = rng.integers(150, 256, (8, 8)).astype(np.uint8)
        grey[rng.integers(0, 8, 6), rng.integers(0, 8, 6)] = 0
        Image.fromarray(grey).save(folder / f"m{i}.png")
    r = deepix.train("navigate", data=str(folder), cost=True, project=str(tmp_path), **{**TINY, "epochs": 2})
    assert r["test"]["maps"] >= 1 and 0 <= r["test"]["success"] <= 1
    assert r["test"]["walkers"]["planner"]["cost_ratio"] == pytest.approx(1.0)


def test_the_service_walks_a_posted_map_between_two_cells(nav_run, tmp_path, start_server):
    import httpx
    from deepix.serve.app import make_app
    write_map(tmp_path / "room.png", ROOM)
    s = start_server(make_app([str(nav_run["run"])]))
    url = f"{s.url}/v1/models/tiny/predict"
    body = (tmp_path / "room.png").read_bytes()
    r = httpx.post(url, files={"file": ("room.png", body)}, data={"start": "0,0", "goal": "7,7"})
    res = r.json()["results"][0]
    assert r.status_code == 200 and res["path"][0] == [0, 0] and res["size"] == [8, 8]
    drawn = httpx.post(url, files={"file": ("room.png", body)}).json()["results"][0]   # no cells: drawn ones
    assert drawn["start"] != drawn["goal"]
    bad = httpx.post(url, files={"file": ("room.png", body)}, data={"start": "1,1", "goal": "7,7"})
    assert bad.status_code == 422 and "inside a wall" in bad.json()["error"]
    assert "res.path" in httpx.get(s.url).text     # the page draws the path and takes two clicks
