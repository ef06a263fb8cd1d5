import pytest

from deepix.config import Config, make_config
from deepix.errors import UserError


@pytest.mark.parametrize("bad", [dict(lr=0), dict(lr=-1), dict(epochs=0), dict(batch=0), dict(optimizer="lbfgs"),
                                 dict(val_fraction=0.6, test_fraction=0.5), dict(kernel_size=4), dict(schedule="x")])
def test_impossible_settings_are_user_errors(bad):
    with pytest.raises(UserError):
        make_config(**bad)


def test_yaml_round_trip_and_override(tmp_path):
    cfg = make_config(epochs=7, lr=0.01, model="seed-cnn-bn")
    cfg.save(tmp_path / "c.yaml")
    again = make_config(tmp_path / "c.yaml", epochs=9)
    assert again.lr == 0.01 and again.model == "seed-cnn-bn" and again.epochs == 9


def test_unknown_setting_and_bad_type(tmp_path):
    with pytest.raises(UserError, match="unknown setting"):
        make_config(learning_rate=0.1)
    (tmp_path / "c.yaml").write_text("epochs: many\n")
    with pytest.raises(UserError, match="epochs"):
        make_config(tmp_path / "c.yaml")


def test_defaults_are_valid():
    assert Config().validate().epochs >= 1


def test_a_tasks_default_time_budget_gives_way_to_epochs_the_user_names():
    assert make_config(task="pretrain").time_limit == 10.0
    assert make_config(task="pretrain", epochs=5).time_limit == 0.0
    assert make_config(task="pretrain", epochs=5, time_limit=3).time_limit == 3.0


def test_imgsz_has_one_documented_default_per_task():
    """--imgsz 0 keeps the data's size; images of mixed sizes on disk get the task's folder_imgsz, which
    the help states and the readers use."""
    from deepix.cli import parser
    from deepix.data.folder import DEFAULT_SIZE
    from deepix.tasks import get, names
    from deepix.tasks.detect.train import FOLDER_SIZE
    assert Config().imgsz == 0
    assert get("detect").folder_imgsz == FOLDER_SIZE
    assert {get(t).folder_imgsz for t in names() if t not in ("detect", "navigate", "segment")} == {DEFAULT_SIZE}
    from deepix.tasks.segment.data import FOLDER_SIZE as SEGMENT_SIZE
    assert get("segment").folder_imgsz == SEGMENT_SIZE
    from deepix.tasks.navigate.train import GRID
    assert get("navigate").folder_imgsz == get("navigate").defaults["imgsz"] == GRID   # maps of mixed sizes: its grid
    for task in ("classify", "detect", "segment"):
        text = parser(task).format_help() + "".join(
            a.format_help() for a in parser(task)._subparsers._group_actions[0].choices.values())
        assert f"images of mixed sizes on disk: {get(task).folder_imgsz})" in " ".join(text.split())
