"""Exact rescaling of a pretrained ResNet's residual stream (small presets' backbones).

A classifier fixes its features only up to scale (its linear head absorbs it), but a
detector's freshly initialised heads do not: SSD's Xavier heads collapsed on a trunk map at
rms ~2.5, Mask R-CNN's ROI box head diverged on FPN inputs at rms ~1.8 (the README of each).
So ``generate_small`` of both rescales the pretrained stream before saving it, by changing
only BatchNorm parameters, which leaves the network's function the same up to the factor.
"""
from __future__ import annotations

import torch
from torch import nn

STAGES = ("layer1", "layer2", "layer3", "layer4")


def _scale_affine(bn: nn.BatchNorm2d, factor: float) -> None:
    bn.weight.mul_(factor)
    bn.bias.mul_(factor)


def _scale_input_statistics(bn: nn.BatchNorm2d, factor: float) -> None:
    bn.running_mean.mul_(factor)
    bn.running_var.mul_(factor ** 2)


def _output_bn(block: nn.Module) -> nn.BatchNorm2d:
    """The BN whose output is added to the stream: ``bn3`` of a Bottleneck, ``bn2`` of a BasicBlock."""
    return block.bn3 if hasattr(block, "bn3") else block.bn2


@torch.no_grad()
def scale_residual_stream(net: nn.Module, factor: float, stages: int = 3) -> None:
    """Multiply the residual stream of a torchvision-style ``ResNet`` (``BasicBlock`` or
    ``Bottleneck``), from the stem through ``layer<stages>`` (1-4), by ``factor`` > 0, in
    place: the affine parameters of every BN that writes into it (stem ``bn1``, each block's
    last BN, downsample BNs) scale by ``factor``; the running statistics of every BN that
    reads it (each block's ``bn1``, every downsample BN) by ``factor`` and ``factor²``.
    ReLU and max-pooling commute with a positive factor, so the outputs of layer1 ..
    layer<stages> are ``factor`` times the old ones (train and eval mode; the activations
    inside the blocks are unchanged in eval mode, up to BN's eps). With ``stages`` < 4 the
    next stage's first block reads the scaled stream and writes an unscaled one, so the
    classifier is unchanged (eval mode); with 4 its logits scale by ``factor`` plus the
    same bias.

    Raises ValueError for ``factor`` <= 0 or ``stages`` outside 1-4.
    """
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    if not 1 <= stages <= len(STAGES):
        raise ValueError(f"stages must be 1-{len(STAGES)}, got {stages}")
    _scale_affine(net.bn1, factor)
    for name in STAGES[:stages]:
        for block in getattr(net, name):
            _scale_input_statistics(block.bn1, factor)
            _scale_affine(_output_bn(block), factor)
            if block.downsample is not None:
                _scale_input_statistics(block.downsample[1], factor)
                _scale_affine(block.downsample[1], factor)
    if stages < len(STAGES):
        first = getattr(net, STAGES[stages])[0]   # reads the scaled stream, writes an unscaled one
        _scale_input_statistics(first.bn1, factor)
        if first.downsample is not None:
            _scale_input_statistics(first.downsample[1], factor)
