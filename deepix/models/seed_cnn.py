"""The reference network of the Keras listing, and its BatchNorm variant."""
from __future__ import annotations

import torch
from torch import nn

from .registry import Spec, act_pool, activation, register


def _flat_size(features: nn.Module, spec: Spec) -> int:
    with torch.no_grad():
        return features(torch.zeros(1, spec.in_channels, *spec.size)).numel()


def _keras_init(model: nn.Module) -> None:
    # Keras's defaults (glorot-uniform kernels, zero biases): the reference learns as in Keras
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _cnn(spec: Spec, batchnorm: bool) -> nn.Sequential:
    c1, c2, d = (max(1, round(c * spec.width)) for c in (32, 64, 64))
    k = spec.kernel_size
    pool = 2 if min(spec.size) >= 4 * (k - 1) + 6 else 1  # tiny inputs (8x8 digits) can't take two pools

    def block(cin, cout):
        layers = [nn.Conv2d(cin, cout, k, bias=not batchnorm)]
        layers += [nn.BatchNorm2d(cout)] if batchnorm else []
        return layers + act_pool(spec.activation, nn.MaxPool2d(pool))

    pad = 0 if pool == 2 else k // 2
    features = nn.Sequential(*block(spec.in_channels, c1), *block(c1, c2), nn.Flatten())
    if pad:
        for m in features:
            if isinstance(m, nn.Conv2d):
                m.padding = (pad, pad)
    flat = _flat_size(features, spec)
    dropout = 0.5 if spec.dropout < 0 else spec.dropout
    head = [nn.Linear(flat, d, bias=not batchnorm)]
    head += [nn.BatchNorm1d(d)] if batchnorm else []
    head += [activation(spec.activation), nn.Dropout(dropout), nn.Linear(d, spec.num_classes)]
    model = nn.Sequential(*features, *head)
    _keras_init(model)
    return model


@register("seed-cnn", "the reference Keras network: 2 conv + pool, dense 64, dropout 0.5")
def seed_cnn(spec: Spec) -> nn.Module:
    return _cnn(spec, batchnorm=False)


@register("seed-cnn-bn", "the reference network with BatchNorm after each conv and dense layer")
def seed_cnn_bn(spec: Spec) -> nn.Module:
    return _cnn(spec, batchnorm=True)
