"""Declarative hyperparameter whitelists: ``rules/<ruleset>/whitelist/<bench>.yaml``.

A whitelist maps each key a hparams file may set to a list of constraints, each a name
from :data:`CONSTRAINTS` and its argument (the vocabulary is in ``rules/README.md``). The
YAML is read with ``yaml.safe_load`` and interpreted by the small functions below; nothing
in it is ever evaluated as code. A whitelist that uses an unknown constraint is itself an
error, reported when it is loaded.

Allowed values may depend on other keys: ``required_when`` / ``only_when`` / ``when: [{if:
condition, <constraints>}]``, where a condition maps a key to a value or to value
constraints (``{global_batch_size: {less_than: 32768}}``). What a whitelist cannot say is
listed in its ``not_expressed``.

``check`` validates a hparams file's ``hparams:`` mapping as YAML typed it (unknown and
missing keys are violations); ``check_logged`` validates values read back from a result
log, each judged by what it means (``logvalues.py``: ``32.0`` is the integer 32), where
other keys (the log's own bookkeeping, another implementation's extras) are expected and
ignored.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from mlperf_train import logvalues
from mlperf_train.errors import UsageError
from mlperf_train.rules import RULES_DIR


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING = _Missing()


@dataclasses.dataclass(frozen=True)
class KeyViolation:
    key: str
    value: Any
    rule: str


# --- types --------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


TYPES: dict[str, Callable[[Any], bool]] = {
    "int": _is_int,
    "float": _is_number,      # an int is a valid float (YAML writes 2 for 2.0)
    "number": _is_number,
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, (list, tuple)),
}


def same_type(value: Any, default: Any) -> bool:
    """Whether a settings value has the type of its default (ints count as floats)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return _is_number(value)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _near_integer(x: float, tol: float = 1e-6) -> bool:
    return math.isfinite(x) and abs(x - round(x)) <= tol * max(1.0, abs(x))


# --- value constraints: (value, argument, all hparams) -> rule text when violated ----------
def _same(value: Any, expected: Any) -> bool:
    """Equality as the rules mean it: numbers to 1e-9 relative, lists element-wise, and a
    boolean never equal to 0 or 1."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected
    if _is_number(value) and _is_number(expected):
        return _close(float(value), float(expected))
    if isinstance(value, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(value) == len(expected) and all(map(_same, value, expected))
    return value == expected


same_value = _same


def _one_of(v, allowed, _):
    if not any(_same(v, a) for a in allowed):
        return f"must be one of {allowed}"


def _equals(v, expected, _):
    if not _same(v, expected):
        return f"fixed at {expected!r}"


def _bound(op: str):
    tests = {"min": (lambda v, x: v >= x, ">="), "max": (lambda v, x: v <= x, "<="),
             "greater_than": (lambda v, x: v > x, ">"), "less_than": (lambda v, x: v < x, "<")}
    test, sign = tests[op]

    def check(v, x, _):
        if not _is_number(v) or not test(v, x):
            return f"must be {sign} {x}"
    return check


def _multiple_of(v, step, _):
    if not _is_number(v) or not _near_integer(v / step):
        return f"must be an integer multiple of {step}"


def _power_of_two_times(v, base, _):
    if not _is_number(v) or v <= 0 or not _near_integer(math.log2(v / base)):
        return f"must be {base} * 2^N for an integer N"


def _scaled_lr(v, spec, hparams):
    """v0.5 SGD scaling: lr = r * base * B / per_batch for an integer r >= 1."""
    batch = hparams.get(spec.get("batch_key", "global_batch_size"))
    if not _is_number(batch) or batch <= 0:
        return f"needs {spec.get('batch_key', 'global_batch_size')} to check the learning-rate scaling"
    per_batch = spec.get("per_batch", 256)
    for base in spec["bases"]:
        r = v / (base * batch / per_batch) if _is_number(v) else float("nan")
        if _near_integer(r) and round(r) >= 1:
            return None
    return (f"must be r * base * {batch} / {per_batch} for an integer r >= 1 and base in "
            f"{spec['bases']} (the v0.5 learning-rate scaling rule)")


def _time_stretch(v, spec, hparams):
    """Boundaries stretched in time: v[i] = base[i] * (1 + k/10) for one integer k >= 0,
    optionally scaled by per_batch / B (Mask R-CNN's steps at other batch sizes)."""
    bases = spec if isinstance(spec, list) else spec["bases"]
    scale = 1.0
    if isinstance(spec, Mapping) and "batch_key" in spec:
        batch = hparams.get(spec["batch_key"])
        if not _is_number(batch) or batch <= 0:
            return f"needs {spec['batch_key']} to check the boundaries"
        scale = spec["per_batch"] / batch
    rule = f"must be {bases} * (1 + k/10){' * ' + str(spec['per_batch']) + '/B' if scale != 1.0 else ''} for one integer k >= 0"
    if not isinstance(v, (list, tuple)) or len(v) != len(bases) or not all(_is_number(x) for x in v):
        return rule
    ks = [10 * (x / (b * scale) - 1) for x, b in zip(v, bases)]
    # Boundaries are whole steps or epochs, so the stretched value may be rounded: allow
    # the rounding of each base (half a unit) in k.
    tolerances = [10 * 0.5 / (b * scale) + 1e-6 for b in bases]
    k = round(ks[0])
    if k < 0 or not all(abs(x - k) <= tol for x, tol in zip(ks, tolerances)):
        return rule


def _list_of(v, type_name, _):
    if not isinstance(v, (list, tuple)) or not all(TYPES[type_name](x) for x in v):
        return f"must be a list of {type_name}"


def _length(v, n, _):
    if not isinstance(v, (list, tuple)) or len(v) != n:
        return f"must be a list of {n} values"


VALUE_CONSTRAINTS: dict[str, Callable] = {
    "one_of": _one_of, "equals": _equals, "min": _bound("min"), "max": _bound("max"),
    "greater_than": _bound("greater_than"), "less_than": _bound("less_than"), "multiple_of": _multiple_of,
    "power_of_two_times": _power_of_two_times, "scaled_lr": _scaled_lr,
    "time_stretch": _time_stretch, "list_of": _list_of, "length": _length,
}
# Presence and bookkeeping constraints, applied around the value checks.
PRESENCE = {"type", "required", "required_when", "only_when", "when", "any", "note", "log_spellings",
            "free_in_small_presets"}
CONSTRAINTS = set(VALUE_CONSTRAINTS) | PRESENCE


# --- loading ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Whitelist:
    path: str
    benchmark: str
    keys: Mapping[str, Mapping[str, Any]]
    not_expressed: tuple[str, ...] = ()    # rules of the table this vocabulary cannot say


def whitelist_path(benchmark: str, ruleset: str) -> Path:
    return RULES_DIR / ruleset / "whitelist" / f"{benchmark}.yaml"


FILE_KEYS = {"benchmark", "keys", "not_expressed"}


def _check_condition(where: str, condition: Any) -> None:
    """A condition maps keys to a value (equality) or to value constraints."""
    if not isinstance(condition, dict) or not condition:
        raise UsageError(f"{where}: a condition is a mapping {{key: value}} or {{key: {{constraint: arg}}}}")
    for key, wanted in condition.items():
        if isinstance(wanted, dict):
            unknown = set(wanted) - set(VALUE_CONSTRAINTS)
            if unknown or not wanted:
                raise UsageError(f"{where}: {key}: unknown condition {sorted(unknown or {'(empty)'})[0]!r}; "
                                 f"allowed: {', '.join(sorted(VALUE_CONSTRAINTS))}")


def _check_constraints(path: Path, key: str, constraints: Any) -> None:
    if not isinstance(constraints, dict):
        raise UsageError(f"{path}: {key}: constraints must be a mapping")
    unknown = set(constraints) - CONSTRAINTS
    if unknown:
        raise UsageError(f"{path}: {key}: unknown constraint {sorted(unknown)[0]!r}; "
                         f"allowed: {', '.join(sorted(CONSTRAINTS))}")
    if "type" in constraints and constraints["type"] not in TYPES:
        raise UsageError(f"{path}: {key}: unknown type {constraints['type']!r}; allowed: {', '.join(TYPES)}")
    for name in ("required_when", "only_when"):
        if name in constraints:
            _check_condition(f"{path}: {key}: {name}", constraints[name])
    if "log_spellings" in constraints and not isinstance(constraints["log_spellings"], dict):
        raise UsageError(f"{path}: {key}: log_spellings must map a logged spelling to its value")
    branches = constraints.get("when", [])
    if not isinstance(branches, list) or not all(isinstance(b, dict) and "if" in b for b in branches):
        raise UsageError(f"{path}: {key}: when must be a list of {{if: condition, <constraint>: arg, ...}}")
    for branch in branches:
        _check_condition(f"{path}: {key}: when.if", branch["if"])
        unknown = set(branch) - {"if"} - set(VALUE_CONSTRAINTS)
        if unknown:
            raise UsageError(f"{path}: {key}: when: unknown constraint {sorted(unknown)[0]!r}; "
                             f"allowed: {', '.join(sorted(VALUE_CONSTRAINTS))}")


@functools.lru_cache(maxsize=None)
def load(benchmark: str, ruleset: str) -> Whitelist | None:
    """The whitelist of ``benchmark`` in ``ruleset``, or None when the ruleset has none.
    Raises ``UsageError`` for a whitelist file that breaks the vocabulary."""
    path = whitelist_path(benchmark, ruleset)
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("benchmark") != benchmark or not isinstance(keys, dict):
        raise UsageError(f"{path}: must hold `benchmark: {benchmark}` and a `keys:` mapping")
    unknown = sorted(set(doc) - FILE_KEYS)
    if unknown:
        raise UsageError(f"{path}: unknown top-level key {unknown[0]!r}; allowed: {', '.join(sorted(FILE_KEYS))}")
    not_expressed = doc.get("not_expressed", [])
    if not isinstance(not_expressed, list) or not all(isinstance(n, str) for n in not_expressed):
        raise UsageError(f"{path}: not_expressed must be a list of sentences")
    for key, constraints in keys.items():
        _check_constraints(path, key, constraints)
    return Whitelist(path=str(path), benchmark=benchmark, keys=keys, not_expressed=tuple(not_expressed))


# --- checking -----------------------------------------------------------------------------
_SIGNS = {"min": ">=", "max": "<=", "greater_than": ">", "less_than": "<", "equals": "="}


def describe_condition(condition: Mapping[str, Any]) -> str:
    """``global_batch_size < 32768``, ``opt_name = 'lars'``: a condition as the rules say it."""
    parts = []
    for key, wanted in condition.items():
        if not isinstance(wanted, dict):
            parts.append(f"{key} = {wanted!r}")
            continue
        for name, argument in wanted.items():
            sign = _SIGNS.get(name)
            parts.append(f"{key} {sign} {argument!r}" if sign else f"{key} {name.replace('_', ' ')} {argument!r}")
    return ", ".join(parts)


def _condition_holds(condition: Mapping[str, Any], hparams: Mapping[str, Any]) -> bool:
    """Whether every listed key is present with that value, or passes those constraints."""
    for key, wanted in condition.items():
        value = hparams.get(key, MISSING)
        if value is MISSING:
            return False
        if isinstance(wanted, dict):
            if any(VALUE_CONSTRAINTS[name](value, argument, hparams) for name, argument in wanted.items()):
                return False
        elif not _same(value, wanted):
            return False
    return True


def _value_rules(key: str, value: Any, constraints: Mapping[str, Any], hparams: Mapping[str, Any],
                 suffix: str = "") -> list[KeyViolation]:
    found = []
    for name, argument in constraints.items():
        check = VALUE_CONSTRAINTS.get(name)
        rule = check(value, argument, hparams) if check else None
        if rule:
            found.append(KeyViolation(key, value, rule + suffix))
    return found


def _check_value(key: str, value: Any, constraints: Mapping[str, Any], hparams: Mapping[str, Any],
                 division: str, shown: Any, small_preset: bool = False) -> list[KeyViolation]:
    type_name = constraints.get("type")
    if type_name and not TYPES[type_name](value):
        return [KeyViolation(key, shown, f"must be of type {type_name}")]
    if division != "closed" or constraints.get("any"):
        return []
    if small_preset and constraints.get("free_in_small_presets"):
        return []  # a size the small preset shrinks (image sizes, schedule length); it says its own target
    if "only_when" in constraints and not _condition_holds(constraints["only_when"], hparams):
        return [KeyViolation(key, shown, f"allowed only when {describe_condition(constraints['only_when'])}")]
    found = _value_rules(key, value, constraints, hparams)
    for branch in constraints.get("when", []):
        if _condition_holds(branch["if"], hparams):
            found += _value_rules(key, value, branch, hparams, f" when {describe_condition(branch['if'])}")
    return [dataclasses.replace(v, value=shown) for v in found]


def read_logged(hparams: Mapping[str, Any], benchmark: str, ruleset: str) -> dict:
    """The whitelisted keys of values read from a log, each as the value it means
    (``logvalues.read_as``: ``32.0`` for an int is 32, ``"True"`` for a bool is True)."""
    allowed = load(benchmark, ruleset)
    if allowed is None:
        return dict(hparams)
    meant = dict(hparams)
    for key, constraints in allowed.keys.items():
        if key in meant:
            meant[key] = logvalues.read_as(meant[key], constraints.get("type"), constraints.get("log_spellings"))
    return meant


def _check(hparams: Mapping[str, Any], benchmark: str, ruleset: str, division: str,
           logged: bool, small_preset: bool = False) -> list[KeyViolation]:
    allowed = load(benchmark, ruleset)
    if allowed is None:
        return []
    shown = hparams
    if logged:
        hparams = read_logged(hparams, benchmark, ruleset)
    found: list[KeyViolation] = []
    for key, value in hparams.items():
        constraints = allowed.keys.get(key)
        if constraints is None:
            if not logged:
                close = difflib.get_close_matches(key, allowed.keys, n=1)
                hint = f"did you mean {close[0]}?" if close else f"allowed: {', '.join(allowed.keys)}"
                found.append(KeyViolation(key, value, f"not a hyperparameter of {benchmark} in ruleset "
                                          f"{ruleset}; {hint}"))
            continue
        found += _check_value(key, value, constraints, hparams, division, shown[key], small_preset)
    if not logged:
        for key, constraints in allowed.keys.items():
            if key in hparams:
                continue
            when = constraints.get("required_when")
            if constraints.get("required") or (when and _condition_holds(when, hparams)):
                because = "" if constraints.get("required") else f" when {describe_condition(when)}"
                found.append(KeyViolation(key, MISSING, f"required{because}"))
    return found


def check(hparams: Mapping[str, Any], benchmark: str, ruleset: str, division: str,
          small_preset: bool = False) -> list[KeyViolation]:
    """Violations of a hparams file's ``hparams:`` mapping: unknown keys, wrong types and,
    in the closed division, missing required keys and values the rules do not allow. The
    file's YAML types are taken as they are. In a small preset (``small_preset``), keys
    marked ``free_in_small_presets`` are checked for type only."""
    return _check(hparams, benchmark, ruleset, division, logged=False, small_preset=small_preset)


def check_logged(hparams: Mapping[str, Any], benchmark: str, ruleset: str,
                 division: str, small_preset: bool = False) -> list[KeyViolation]:
    """Violations among hyperparameters read back from a log, each value judged by what it
    means (``read_logged``). Keys the whitelist does not know are ignored (a log holds more
    than hyperparameters); missing keys are the compliance checker's business, not the
    whitelist's. A violation shows the value as logged."""
    return _check(hparams, benchmark, ruleset, division, logged=True, small_preset=small_preset)
