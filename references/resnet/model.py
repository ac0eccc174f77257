"""ResNet-50 v1.5 as the MLPerf reference builds it (spec §2, REF resnet_model.py).

Written out rather than taken from torchvision because three details differ from
``torchvision.models.resnet50``: the max-pool pads the TensorFlow "SAME" way (0 px before,
1 px after), the initialisation is TF's variance scaling (truncated normal on fan-in, FC
N(0, 0.01²)), and the small preset needs a narrower stem and stages. The block layout
(stride on the 3×3 conv, projection shortcut on the first block of each stage) is v1.5,
the same as torchvision's.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# TF's variance_scaling_initializer(distribution="truncated_normal") divides the standard
# deviation by the std of a unit normal truncated at ±2 so the kept values have the target
# variance.
TRUNCATED_NORMAL_STD = 0.87962566103423978
BN_MOMENTUM = 0.1  # TF decay 0.9
BN_EPS = 1e-5


def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    # REF's fixed_padding pads k-1 split evenly before the conv: k//2 on each side for odd k.
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1, self.bn1 = conv(in_channels, width, 1), batch_norm(width)
        self.conv2, self.bn2 = conv(width, width, 3, stride), batch_norm(width)  # v1.5: stride here
        self.conv3, self.bn3 = conv(width, out_channels, 1), batch_norm(out_channels)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(conv(in_channels, out_channels, 1, stride), batch_norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place, as torchvision's block: batch norm's backward needs its input, not its
        # output, and each fresh activation-sized buffer cost page faults (README "Speed").
        identity = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        out += identity
        return F.relu(out, inplace=True)


def tf_same_max_pool(x: torch.Tensor, kernel_size: int = 3, stride: int = 2) -> torch.Tensor:
    """Max-pool with TF "SAME" padding: the total padding goes mostly *after* the input
    (on 112×112: 0 before, 1 after), where PyTorch's ``padding=1`` pads both sides."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
        total = max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)
        pads += [total // 2, total - total // 2]
    if pads[0] == pads[2] == 0:
        # Nothing before: the windows start where TF's do, and ceil_mode keeps the last one,
        # which runs off the end, as the padded one (same maxima and argmax) without a
        # padded copy of the input; used when it gives TF's ceil(size / stride) outputs.
        pooled = F.max_pool2d(x, kernel_size, stride, ceil_mode=True)
        if pooled.shape[-2:] == (math.ceil(x.shape[-2] / stride), math.ceil(x.shape[-1] / stride)):
            return pooled
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel_size, stride)


class ResNet(nn.Module):
    """ResNet v1.5 with bottleneck blocks. ``width`` is the stem's channel count and the
    first stage's inner width (64 in ResNet-50); stages double it."""

    def __init__(self, num_outputs: int = 1001, blocks=(3, 4, 6, 3), width: int = 64,
                 tf_same_pool: bool = True, truncated_normal_init: bool = True):
        super().__init__()
        self.tf_same_pool = tf_same_pool
        self.conv1, self.bn1 = conv(3, width, 7, stride=2), batch_norm(width)
        layers, in_channels = [], width
        for stage, num_blocks in enumerate(blocks):
            stage_width = width * 2 ** stage
            for index in range(num_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(Bottleneck(in_channels, stage_width, stride))
                in_channels = stage_width * Bottleneck.expansion
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(in_channels, num_outputs)
        self.reset_parameters(truncated_normal_init)

    def reset_parameters(self, truncated_normal: bool = True) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                if truncated_normal:
                    std = math.sqrt(1.0 / fan_in) / TRUNCATED_NORMAL_STD
                    nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                else:  # v0.7 lets "truncated norm initialization" be turned off: plain normal
                    nn.init.normal_(module.weight, std=math.sqrt(1.0 / fan_in))
            elif isinstance(module, nn.BatchNorm2d):  # gamma 1, beta 0: no zero-gamma trick
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = tf_same_max_pool(x) if self.tf_same_pool else F.max_pool2d(x, 3, 2, padding=1)
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def parameter_kinds(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The model's parameters by kind, for the optimizers: ``weights`` (conv and FC
    kernels), ``biases`` (the FC bias) and ``batch_norm`` (gammas and betas). REF's L2 term
    covers weights and biases; LARS applies its trust ratio to weights only."""
    kinds: dict[str, list[nn.Parameter]] = {"weights": [], "biases": [], "batch_norm": []}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                kinds["batch_norm"].append(param)
            else:
                kinds["weights" if name == "weight" else "biases"].append(param)
    return kinds
