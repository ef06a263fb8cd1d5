"""agent: the user's own Gymnasium environment (image observations, discrete actions) learnt by reward:
the built-in catch beside a random agent, PPO and DQN, exact resume, DAgger on an environment's expert,
predict, val, export, and one line for environments it cannot learn."""
import io
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import load_file

import deepix
from deepix.serve.app import make_app

TINY = dict(epochs=4, envs=8, rollout=32, batch=128, lr=0.01, quiet=True, threads=1)


class Corridor(gym.Env):
    """A 6x12 RGB picture (H, W, C) with the agent (red) and a goal (green) on one row: move left or right;
    +1 at the goal, -0.05 a step. Its expert() names the move towards the goal."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(0, 255, (6, 12, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.goal = (int(v) for v in self.np_random.choice(12, 2, replace=False))
        self.t = 0
        return self.obs(), {}

    def obs(self):
        o = np.zeros((6, 12, 3), np.uint8)
        o[:, self.pos, 0] = 255
        o[:, self.goal, 1] = 255
        return o

    def expert(self):
        return int(self.goal > self.pos)

    def step(self, a):
        self.pos = int(np.clip(self.pos + (1 if a == 1 else -1), 0, 11))
        self.t += 1
        done = self.pos == self.goal
        return self.obs(), 1.0 if done else -0.05, done, self.t >= 30, {"is_success": done}


@pytest.fixture(scope="module")
def catch_run(tmp_path_factory):
    return deepix.train("agent", project=str(tmp_path_factory.mktemp("agent")), name="catch", **TINY)


def test_catch_learns_far_better_than_a_random_agent(catch_run):
    t = catch_run["test"]["agents"]
    assert t["agent"]["success"] > 0.8 and t["agent"]["return"] > t["random"]["return"] + 0.8, t
    run = catch_run["run"]
    assert "val_return" in (run / "metrics.csv").read_text().splitlines()[0]
    assert len((run / "episodes.csv").read_text().splitlines()) > 100
    assert (run / "plots" / "episodes.gif").stat().st_size > 500 and (run / "plots" / "episodes.png").is_file()
    assert "random agent" in (run / "report.html").read_text()


def test_predict_val_and_export(catch_run, tmp_path, cli):
    run = catch_run["run"]
    player = deepix.load(run)
    obs = np.zeros((1, 10, 5), np.uint8)
    obs[0, 8, 0] = obs[0, 9, 4] = 255    # the ball one row above the floor, far left; the paddle far right
    answer = player.predict(obs)[0]
    assert answer["action"] == 0 and abs(sum(answer["probs"]) - 1) < 1e-4   # move left
    png = io.BytesIO()
    Image.fromarray(obs[0]).save(png, format="PNG")   # the same observation as a 5x10 grey picture
    with TestClient(make_app([str(run)])) as client:
        reply = client.post(f"/v1/models/{run.name}/predict", files={"file": ("frame.png", png.getvalue())})
    assert reply.status_code == 200 and reply.json()["results"][0]["action"] == 0, reply.text
    r = cli("val", run, check=True)
    assert "random" in r.stdout
    r = cli("export", run, "--format", "onnx", "-o", tmp_path / "catch.onnx", check=True)
    assert "parity" in r.stdout.lower() and (tmp_path / "catch.onnx").is_file()


def test_dqn_learns_and_resumes_exactly(tmp_path):
    kw = dict(TINY, algo="dqn", epochs=2)
    done = deepix.train("agent", project=str(tmp_path), name="whole", **kw)
    assert done["test"]["agents"]["agent"]["return"] > done["test"]["agents"]["random"]["return"]

    def kill(row, model):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deepix.train("agent", project=str(tmp_path), name="cut", callbacks=[kill], **kw)
    deepix.train("agent", resume=str(tmp_path / "agent" / "cut"), quiet=True)
    a = load_file(str(done["run"] / "weights" / "last.safetensors"))
    b = load_file(str(tmp_path / "agent" / "cut" / "weights" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_own_environment_class_is_cloned_from_its_expert(tmp_path):
    r = deepix.train("agent", env=Corridor, bc=1.0, project=str(tmp_path), name="own", **dict(TINY, epochs=2))
    assert r["test"]["agents"]["agent"]["success"] > 0.9 > r["test"]["agents"]["random"]["success"]
    assert json.loads((r["run"] / "dataset.json").read_text())["observation"] == [3, 6, 12]


def test_environments_it_cannot_learn_get_one_line(tmp_path, cli):
    (tmp_path / "envs.py").write_text(
        "import gymnasium as gym, numpy as np\n"
        "class Steer(gym.Env):\n"
        "    observation_space = gym.spaces.Box(0, 255, (8, 8), np.uint8)\n"
        "    action_space = gym.spaces.Box(-1, 1, (1,))\n")
    for data, words in (("CartPole-v1", "not images"), (f"{tmp_path / 'envs.py'}:Steer", "not a Discrete"),
                        ("no_such_module:Env", "cannot import"), (f"{tmp_path / 'envs.py'}:Nothing", "no environment"),
                        ("catch --bc 0.5", "no expert()")):
        args = data.split()
        r = cli("train", "agent", "--data", *args, "--epochs", "1", "--project", tmp_path)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (data, r.stderr)
