"""Quality values: the one place that names, checks, compares and formats them.

A quality is a mapping ``{name: float}``. The names are the suite's (``rules/<ruleset>/
suite.yaml``): the ruleset's ``metric`` for a single-metric benchmark (``top1_accuracy``,
``hr_at_10``, ``mAP``, ``bleu_uncased``, ``win_rate`` ...), the target's own keys where
the target names several values that must all be met at one evaluation (Mask R-CNN's
``BBOX`` and ``SEGM``, upper case as the official checker reads them).

A target is the same kind of mapping. A file may write a single-metric target as a bare
number; :func:`as_target` turns it into the mapping. A quality with one key is logged as a
scalar (:func:`logged_value`), so single-metric logs read as MLPerf's always have.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

Quality = Mapping[str, float]


class QualityKeysMismatch(ValueError):
    """An evaluation (or a preset's target) names other values than the target does."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def as_target(value: Any, metric: str) -> dict[str, float]:
    """``value`` (a bare number or a mapping of numbers) as a target mapping; a bare number
    is named ``metric``. Raises ``ValueError`` naming what is wrong."""
    if isinstance(value, Mapping):
        if not value:
            raise ValueError("an empty mapping names no quality value")
        target = {}
        for name, item in value.items():
            number = _number(item)
            if not isinstance(name, str) or number is None or not math.isfinite(number):
                raise ValueError(f"{name!r}: {item!r} is not a number")
            target[name] = number
        return target
    number = _number(value)
    if number is None or not math.isfinite(number):
        raise ValueError(f"{value!r} is neither a number nor a mapping of named numbers")
    return {metric: number}


def key_mismatch(names: Any, expected: Mapping[str, float]) -> str | None:
    """Why the names of ``names`` (a mapping or an iterable of names) differ from the
    target's, or None when they are the same. A difference of case only gets a hint:
    ``bbox`` is what ``mllog.constants.BBOX`` holds, the checker wants ``BBOX``."""
    got, want = sorted(names), sorted(expected)
    if got == want:
        return None
    message = f"names {got} where the target names {want}"
    if sorted(n.lower() for n in got) == sorted(n.lower() for n in want):
        message += " (the names differ in case only; they must match exactly)"
    return message


def check(quality: Any, target: Mapping[str, float]) -> dict[str, float]:
    """``quality`` as a plain dict after checking that it is a mapping of finite numbers
    named exactly as ``target``. Raises :class:`QualityKeysMismatch` or ``TypeError``."""
    if not isinstance(quality, Mapping):
        raise TypeError(f"a quality is a mapping {{name: number}}, got {quality!r}")
    mismatch = key_mismatch(quality, target)
    if mismatch:
        raise QualityKeysMismatch(f"the evaluation {mismatch}")
    values = {}
    for name, value in quality.items():
        number = _number(value)
        if number is None or math.isnan(number):
            raise TypeError(f"quality {name!r} must be a number, got {value!r}")
        values[name] = number
    return values


def reached(quality: Quality, target: Quality, direction: str = "higher") -> bool:
    """Whether every named target is met by the same evaluation. Keys must match
    (:func:`check`); a missing value is never a pass."""
    if key_mismatch(quality, target):
        return False
    if direction == "lower":
        return all(quality[name] <= goal for name, goal in target.items())
    return all(quality[name] >= goal for name, goal in target.items())


def scaled(quality: Quality, scale: float) -> dict[str, float]:
    return {name: value * scale for name, value in quality.items()}


def logged_value(quality: Quality, scale: float = 1.0) -> float | dict[str, float]:
    """What ``eval_accuracy`` (or a target in metadata) holds: a scalar for one value, the
    mapping for several (Mask R-CNN's ``{"BBOX": b, "SEGM": s}``)."""
    values = scaled(quality, scale)
    if len(values) == 1:
        return next(iter(values.values()))
    return values


def ratio(quality: Quality, target: Quality) -> float:
    """Achieved over target quality; the smallest ratio where several values count (the
    weakest value decides whether a run passes)."""
    return min(quality[name] / goal for name, goal in target.items())


def format(quality: Quality | None, digits: int = 4) -> str:  # noqa: A001 - the module's verb
    """``0.7532`` for one value, ``BBOX 0.3770, SEGM 0.3390`` for several, ``-`` for none."""
    if not quality:
        return "-"
    if len(quality) == 1:
        return f"{next(iter(quality.values())):.{digits}f}"
    return ", ".join(f"{name} {value:.{digits}f}" for name, value in quality.items())
