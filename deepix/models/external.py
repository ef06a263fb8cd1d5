"""torchvision and timm classifiers by name, adapted to the data's channels and classes."""
from __future__ import annotations

from torch import nn

from ..errors import UserError
from .registry import Spec


def build(name: str, spec: Spec) -> nn.Module:
    lib, _, arch = name.partition(":")
    if lib == "timm":
        try:
            import timm  # optional dependency (pip install timm)
        except ImportError:
            raise UserError("timm models need timm: pip install 'deepix[timm]'") from None
        if arch not in timm.list_models():
            raise UserError(f"timm has no model {arch!r}")
        return timm.create_model(arch, pretrained=False, num_classes=spec.num_classes, in_chans=spec.in_channels)
    import torchvision.models as tvm  # torchvision's model zoo takes ~0.5 s to import: only this path pays it
    if arch not in tvm.list_models(module=tvm):
        raise UserError(f"torchvision has no classifier {arch!r}; see torchvision.models.list_models()")
    model = tvm.get_model(arch, weights=None, num_classes=spec.num_classes)
    if spec.in_channels != 3:
        _adapt_first_conv(model, spec.in_channels)
    return model


def _adapt_first_conv(model: nn.Module, channels: int) -> None:
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                new = nn.Conv2d(channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, child.groups, child.bias is not None)
                setattr(parent, child_name, new)
                return
