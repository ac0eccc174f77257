"""HPC AI500 v2.0's Valid FLOPS: FLOPS that count only as far as the quality they bought.

``VFLOPS = FLOPS * (achieved quality / target quality) ** n``, with ``n`` per benchmark from
``rules/vflops.yaml`` (the paper's 5 for image classification and 10 for detection; a
documented choice of 5 for the others). The quality ratio is the smallest over the
target's values (Mask R-CNN: BBOX and SEGM), as ``quality.ratio`` computes it.
"""
from __future__ import annotations

import functools
from typing import Mapping

import yaml

from mlperf_train import quality
from mlperf_train.errors import UsageError
from mlperf_train.rules import RULES_DIR

VFLOPS_FILE = RULES_DIR / "vflops.yaml"


@functools.lru_cache(maxsize=1)
def exponents() -> dict[str, dict]:
    """{benchmark: {"exponent": n, "source": where n comes from}}."""
    try:
        data = yaml.safe_load(VFLOPS_FILE.read_text())["benchmarks"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise UsageError(f"{VFLOPS_FILE}: unreadable ({error})") from None
    for name, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("exponent"), (int, float)):
            raise UsageError(f"{VFLOPS_FILE}: benchmarks.{name}.exponent = {entry!r}: must be a number")
    return data


def exponent(benchmark: str) -> float | None:
    entry = exponents().get(benchmark)
    return None if entry is None else entry["exponent"]


def quality_ratio(achieved: Mapping[str, float], target: Mapping[str, float], direction: str = "higher") -> float:
    """Achieved over target (target over achieved where lower is better), the smallest over
    the target's values."""
    if direction == "lower":
        return min(target[name] / achieved[name] for name in target)
    return quality.ratio(achieved, target)


def valid_flops(flops: float, ratio: float, n: float) -> float:
    """HPC AI500 v2.0's VFLOPS from achieved FLOPS and the quality ratio."""
    return flops * ratio ** n
