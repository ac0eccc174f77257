"""This device's measured fp32 peak for the MFU of ``perf/`` scripts: issue 17's roofline.

MFU (issue 17's definition) = counted training FLOP/s ÷ the measured peak of the op class
that dominates the model: convolution for CNNs, GEMM for the others. The peak is the one
``mlperf-train roofline`` writes (``mlperf_train/roofline.py``, one definition): the best
rate over the GEMM or convolution shapes that dominate the references, fp32, at torch's
current settings (``/work/bin/heavy`` gives one thread), measured in the calling process so
that it sees the same load as the step it divides.
"""
from __future__ import annotations

import torch

from mlperf_train import roofline


def peak_flops_per_second(op_class: str, device: torch.device | None = None) -> float:
    """The measured fp32 peak of ``op_class`` ("gemm" or "conv") in FLOP/s on ``device``
    (default: CUDA when available, else the CPU). Raises ValueError for another class."""
    if op_class not in roofline.SHAPES:
        raise ValueError(f"op class {op_class!r}: expected one of {sorted(roofline.SHAPES)}")
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result = roofline.measure(device, precisions=("fp32",), classes=(op_class,))
    return result["peak_flops"][op_class]["fp32"]
