"""Declarative hyperparameter whitelist checks (rules/<ruleset>/whitelist/<bench>.yaml).

PLACEHOLDER: the constraint vocabulary of rules/README.md is being implemented.
"""
from __future__ import annotations

from typing import Any


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING = _Missing()


def same_type(value: Any, default: Any) -> bool:
    """Whether a settings value has the type of its default (ints count as floats)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check(hparams: dict, benchmark: str, ruleset: str, division: str) -> list:
    """Return a list of objects with ``key``, ``value``, ``rule`` for every violation."""
    return []
