import pytest
import torch

from deepix.errors import UserError
from deepix.models import Spec, build_model, count_params, list_models


def test_seed_cnn_is_the_reference_network():
    model = build_model("seed-cnn", Spec(1, 10, (28, 28)))
    assert count_params(model) == 121_930
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64] and convs[0].kernel_size == (3, 3)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules())


@pytest.mark.parametrize("name", ["seed-cnn", "seed-cnn-bn", "resnet8", "resnet14"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_builtin_models_take_each_size(name, shape):
    model = build_model(name, Spec(shape[0], 7, shape[1:], activation="gelu", kernel_size=5, width=0.5))
    model.eval()
    assert model(torch.zeros(2, *shape)).shape == (2, 7)


def test_settings_change_the_model():
    base = count_params(build_model("seed-cnn", Spec(1, 10, (28, 28))))
    assert count_params(build_model("seed-cnn", Spec(1, 10, (28, 28), width=2))) > base
    act = build_model("seed-cnn", Spec(1, 10, (28, 28), activation="tanh"))
    assert any(isinstance(m, torch.nn.Tanh) for m in act.modules())
    drop = build_model("seed-cnn", Spec(1, 10, (28, 28), dropout=0.2))
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in drop.modules())


def test_torchvision_model_adapts_channels_and_classes():
    model = build_model("tv:resnet18", Spec(1, 4, (32, 32)))
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 4)


def test_unknown_models_are_user_errors():
    for name in ("nope", "tv:nope"):
        with pytest.raises(UserError):
            build_model(name, Spec(1, 10, (28, 28)))


def test_list_models_counts_parameters():
    rows = {name: n for name, _, _, n in list_models()}
    assert rows["seed-cnn"] == 121_930 and rows["resnet8"] > 0


def test_a_backbone_file_loads_into_the_models_backbone(tmp_path):
    from torch import nn

    from deepix.engine.checkpoint import load_weights
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 16, 3))
    torch.save(backbone.state_dict(), tmp_path / "backbone.pt")
    detector = nn.ModuleDict({"net": nn.ModuleDict({"body": nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8),
                                                                           nn.Conv2d(8, 16, 3))}),
                              "head": nn.Conv2d(16, 4, 1)})
    skipped = load_weights(detector, tmp_path / "backbone.pt", strict=False)
    assert torch.equal(detector["net"]["body"][2].weight, backbone[2].weight)
    assert skipped == ["head.bias", "head.weight"]
