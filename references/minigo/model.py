"""The dual network (spec section 2): a residual trunk with a policy head (82 logits:
81 points and pass) and a value head (tanh, from Black's view).

Reference size: 32 filters, 9 residual blocks, value fc 64 (about 0.19 M parameters).
[R06] convolutions have no bias, BN momentum 0.95 (TF's decay; PyTorch's momentum is
1 - decay), eps 1e-5; TF-default init: Glorot-uniform kernels, zero biases, BN gamma 1, beta 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from references.minigo.features import NUM_PLANES
from references.minigo.go import N, NUM_MOVES, NUM_POINTS


def _bn(channels: int, decay: float, affine: bool = True) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=1.0 - decay, affine=affine)


class ResidualBlock(nn.Module):
    def __init__(self, filters: int, decay: float, bias: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(filters, filters, 3, padding=1, bias=bias)
        self.bn1 = _bn(filters, decay)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1, bias=bias)
        self.bn2 = _bn(filters, decay)

    def forward(self, x):
        # in place where autograd allows (BN and conv keep their inputs, ReLU its output): no
        # fresh activation-sized buffer per op (README "Step speed")
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(y))
        out += x
        return F.relu(out, inplace=True)


class DualNet(nn.Module):
    """Input (B, 17, 9, 9) float32; returns (policy logits (B, 82), value (B,) in [-1, 1])."""

    def __init__(self, filters: int = 32, blocks: int = 9, value_fc: int = 64, bn_decay: float = 0.95,
                 conv_bias: bool = False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(NUM_PLANES, filters, 3, padding=1, bias=conv_bias),
                                  _bn(filters, bn_decay), nn.ReLU(inplace=True))
        self.trunk = nn.Sequential(*[ResidualBlock(filters, bn_decay, conv_bias) for _ in range(blocks)])
        # the heads' BN has neither scale nor centre (spec section 2)
        self.policy_conv = nn.Sequential(nn.Conv2d(filters, 2, 1, bias=conv_bias), _bn(2, bn_decay, affine=False),
                                         nn.ReLU(inplace=True))
        self.policy_fc = nn.Linear(2 * NUM_POINTS, NUM_MOVES)
        self.value_conv = nn.Sequential(nn.Conv2d(filters, 1, 1, bias=conv_bias), _bn(1, bn_decay, affine=False),
                                        nn.ReLU(inplace=True))
        self.value_fc1 = nn.Linear(NUM_POINTS, value_fc)
        self.value_fc2 = nn.Linear(value_fc, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TF defaults: Glorot-uniform kernels, zero biases (BN keeps gamma 1, beta 0)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor):
        h = self.trunk(self.stem(x))
        logits = self.policy_fc(self.policy_conv(h).flatten(1))
        v = F.relu(self.value_fc1(self.value_conv(h).flatten(1)), inplace=True)
        return logits, torch.tanh(self.value_fc2(v)).squeeze(1)

    def l2_parameters(self):
        """The weights the L2 term covers: kernels, not biases nor BN parameters ([R06])."""
        return [p for name, p in self.named_parameters() if name.endswith("weight") and p.dim() > 1]


def build(settings) -> DualNet:
    return DualNet(settings.filters, settings.blocks, settings.value_fc, settings.bn_decay, settings.conv_bias)


assert N == 9
