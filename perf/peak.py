"""A small local measurement of this device's fp32 peak, for the MFU of ``perf/`` scripts.

MFU (issue 17's definition) = counted training FLOP/s ÷ the measured peak of the op class
that dominates the model: convolution for CNNs, GEMM for the others. Until the harness's
``mlperf-train roofline`` is merged, ``perf/sidebyside.py`` uses this: the best of a few
repetitions at the current thread count (``/work/bin/heavy`` gives one), fp32.

- ``gemm``: ``torch.mm`` of two 2048×2048 matrices (17.2 GFLOP).
- ``conv``: the forward 3×3 and 1×1 convolutions of ResNet-50's second stage at batch 32
  (128 channels at 28×28), in NCHW and in channels_last; the best of the two layouts.
FLOPs are counted as ``torch.utils.flop_counter`` counts them: 2 per multiply-add.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN primitive creation, first-touch pages
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


@torch.no_grad()
def gemm_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size ** 3 / _best_seconds(lambda: torch.mm(a, b), repeats)


@torch.no_grad()
def conv_flops_per_second(batch: int = 32, channels: int = 128, size: int = 28, repeats: int = 3) -> float:
    best = 0.0
    for kernel, c_in, c_out in ((3, channels, channels), (1, 4 * channels, channels)):
        flops = 2 * batch * size * size * c_in * c_out * kernel * kernel
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(batch, c_in, size, size).contiguous(memory_format=layout)
            w = torch.randn(c_out, c_in, kernel, kernel).contiguous(memory_format=layout)
            seconds = _best_seconds(lambda: F.conv2d(x, w, padding=kernel // 2), repeats)
            best = max(best, flops / seconds)
    return best


def peak_flops_per_second(op_class: str) -> float:
    """The measured fp32 peak of ``op_class`` ("gemm" or "conv") in FLOP/s."""
    if op_class == "gemm":
        return gemm_flops_per_second()
    if op_class == "conv":
        return conv_flops_per_second()
    raise ValueError(f"op class {op_class!r}: expected gemm or conv")
