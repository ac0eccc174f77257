"""What a value read from a result log means, whatever its spelling.

``check`` judges the hyperparameters a log holds by the whitelist. Logs are written by many
frameworks, and published, accepted results spell one value several ways that the official
checker accepts: an integer as ``32.0`` (20 accepted v0.7 SSD logs write the warmup factor
so), a boolean as the string ``"True"`` (Google's v0.7 GNMT), a list as a comma-separated
string (``"128, 10000, 20000"``, Google's v0.7 MiniGo) or as a JSON string (``"[256, 256,
128, 64]"``, Intel's v0.5 NCF). :func:`read_as` turns such a spelling into the value it
clearly means, for the type the whitelist declares; anything else is left as logged, so the
whitelist reports it. Only spellings whose meaning is unambiguous are read:

- ``int``: an integral float (``32.0``) or a numeric string of an integer (``"32"``);
  never a bool, never ``32.5``;
- ``float`` / ``number``: a numeric string (``"0.9"``, ``"1e-9"``); never a bool;
- ``bool``: ``"true"`` / ``"false"`` in any case; never a number (a log that writes 1 for a
  flag more likely logged the wrong key);
- ``list``: a tuple, a JSON list in a string, or a comma-separated string; numeric strings
  inside a list become numbers.

A whitelist can add spellings of its own for one key (``log_spellings``: Google logged the
alternative GNMT warmup as ``"t2t"``). Hparams files keep their strict YAML types:
``validate`` never calls this module.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def number_from_text(text: str) -> int | float | None:
    """The number a string spells (an int when written without a point or exponent)."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    if not math.isfinite(value):
        return None
    return int(text) if re.fullmatch(r"[-+]?\d+", text) else value


def _integral(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = number_from_text(value)
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    return value if isinstance(value, int) else None


def _number(value: Any) -> Any:
    if isinstance(value, str):
        number = number_from_text(value)
        return value if number is None else number
    return value


def _list(value: Any) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = [part for part in text[1:-1].split(",")] if text[1:-1].strip() else []
            value = parsed if isinstance(parsed, list) else value
        elif "," in text:
            value = text.split(",")
    if isinstance(value, list):
        return [_number(item.strip()) if isinstance(item, str) else item for item in value]
    return value


def _bool(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def read_as(value: Any, type_name: str | None, spellings: Mapping[str, Any] | None = None) -> Any:
    """``value`` as the ``type_name`` value it clearly means, or unchanged (see the module
    docstring). ``spellings`` maps a key's own logged strings to what they mean."""
    if spellings and isinstance(value, str):
        wanted = value.strip().lower()
        for spelling, meaning in spellings.items():
            if str(spelling).strip().lower() == wanted:
                return meaning
    if type_name == "int":
        integral = _integral(value)
        return value if integral is None else integral
    if type_name in ("float", "number"):
        return _number(value)
    if type_name == "bool":
        return _bool(value)
    if type_name == "list":
        return _list(value)
    return value
