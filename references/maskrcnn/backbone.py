"""ResNet-50 body in the MSRA form with an FPN (spec §2, "Backbone" and "FPN").

Built from torchvision's ``Bottleneck``/``ResNet`` parts and ``BackboneWithFPN``; only what
the reference does differently is written here:

- the stride of a downsampling block sits on its first 1×1 conv (``STRIDE_IN_1X1``), where
  torchvision's v1.5 puts it on the 3×3 conv;
- every BatchNorm is ``FrozenBatchNorm2d`` with eps 0 (torchvision builds trainable
  ``BatchNorm2d`` when no weights are named, and FrozenBN with eps 1e-5 otherwise);
- the stem and res2 are frozen (``FREEZE_CONV_BODY_AT`` 2);
- ``width`` scales every stage (64 is the reference; the small preset uses 16), which
  torchvision's ``ResNet`` cannot do because it fixes the stem at 64 channels.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.models.detection.backbone_utils import BackboneWithFPN

STAGES = ("layer1", "layer2", "layer3", "layer4")   # res2..res5


def frozen_bn(num_features: int) -> FrozenBatchNorm2d:
    """The reference's FrozenBatchNorm2d: y = x·w/√var + (b − mean·w/√var), no epsilon."""
    return FrozenBatchNorm2d(num_features, eps=0.0)


def resnet_body(width: int = 64, blocks: tuple = (3, 4, 6, 3),
                norm_layer: Callable[[int], nn.Module] = frozen_bn) -> ResNet:
    """ResNet-50 (``blocks``) with stage widths width·(1, 2, 4, 8) and outputs ×4, the
    stride on the first 1×1 conv of each downsampling block. ``norm_layer`` is FrozenBN for
    detection and ``nn.BatchNorm2d`` for the small preset's pretraining. The classifier
    (``fc``) maps to 1000 classes as in torchvision and is not used by detection."""
    model = ResNet.__new__(ResNet)
    nn.Module.__init__(model)
    model._norm_layer = norm_layer
    model.inplanes, model.dilation, model.groups, model.base_width = width, 1, 1, 64
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = norm_layer(width)
    model.relu = nn.ReLU(inplace=True)
    model.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    model.layer1 = model._make_layer(Bottleneck, width, blocks[0])
    model.layer2 = model._make_layer(Bottleneck, width * 2, blocks[1], stride=2)
    model.layer3 = model._make_layer(Bottleneck, width * 4, blocks[2], stride=2)
    model.layer4 = model._make_layer(Bottleneck, width * 8, blocks[3], stride=2)
    model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    model.fc = nn.Linear(width * 8 * Bottleneck.expansion, 1000)
    for stage in STAGES[1:]:
        first = getattr(model, stage)[0]
        first.conv1.stride, first.conv2.stride = (2, 2), (1, 1)   # STRIDE_IN_1X1
    for module in model.modules():  # MSRA init for a from-scratch body (the pkl replaces it)
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def freeze_at_res2(body: ResNet) -> None:
    """``FREEZE_CONV_BODY_AT`` 2: stem and res2 get no gradient and are not optimised."""
    for module in (body.conv1, body.bn1, body.layer1):
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def resnet_fpn(width: int = 64, fpn_channels: int = 256) -> BackboneWithFPN:
    """Frozen-BN ResNet-50 body + FPN on C2..C5 with P6 = max-pool(1, stride 2) of P5.
    Output: an ordered dict of feature maps '0'..'3' (P2..P5, strides 4..32) and 'pool'
    (P6, stride 64), each ``fpn_channels`` wide. torchvision's FPN already matches the
    spec: 1×1 laterals, nearest upsampling + add, 3×3 outputs without ReLU, Kaiming-uniform
    (a = 1) init with zero bias."""
    body = resnet_body(width)
    freeze_at_res2(body)
    in_channels = [width * m * Bottleneck.expansion for m in (1, 2, 4, 8)]
    return BackboneWithFPN(body, {stage: str(i) for i, stage in enumerate(STAGES)}, in_channels,
                           fpn_channels, extra_blocks=LastLevelMaxPool())


def fold_batch_norm(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A trained BatchNorm as the affine channel (scale, bias) Detectron stores (``_bn_s``,
    ``_bn_b``): scale = γ/√(var+eps), bias = β − mean·scale."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean * scale
