"""A reference's own settings (model size, data options): declared once, validated here.

Each field of a reference's frozen ``Settings`` dataclass is declared with :func:`setting`,
whose metadata says what the field may hold, in the whitelist's constraint vocabulary
(``rules/README.md``, ``whitelist.VALUE_CONSTRAINTS``):

- ``allowed``: what the implementation can do, in every division and preset
  (``{"one_of": ["discard", "truncate"]}``, ``{"min": 1}``);
- ``allowed_closed``: what the rules allow in the closed division, any preset
  (ResNet v0.7 ``label_smoothing``: ``{"one_of": [0.0, 0.1]}``);
- ``closed=True``: fixed at the reference's value in a closed-division run of the reference
  preset. The reference value is the default, or ``reference[ruleset]`` where the rounds'
  references differ (MiniGo's value weight: 1.0 in 0.5.0, 0.25 in 0.6.0).

``check`` is the only place that reads this metadata. ``validate`` and ``run`` both call it
(through ``hparams.check_file``), so they agree on every file, and ``init`` never has to
reject a setting.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from mlperf_train import whitelist

_MISSING = dataclasses.MISSING


def setting(default: Any = _MISSING, *, default_factory: Any = _MISSING, closed: bool = False,
            reference: Mapping[str, Any] | None = None, allowed: Mapping[str, Any] | None = None,
            allowed_closed: Mapping[str, Any] | None = None) -> Any:
    """A Settings field with its constraints (see the module docstring)."""
    for name, constraints in (("allowed", allowed), ("allowed_closed", allowed_closed)):
        unknown = set(constraints or {}) - set(whitelist.VALUE_CONSTRAINTS)
        if unknown:  # a programming error in a reference: fail at import, not in a run
            raise ValueError(f"setting(): {name} has unknown constraint {sorted(unknown)[0]!r}")
    if reference and not closed:
        raise ValueError("setting(): reference values per ruleset only mean something for closed fields")
    metadata = {"closed": closed, "reference": dict(reference or {}), "allowed": dict(allowed or {}),
                "allowed_closed": dict(allowed_closed or {})}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def default_of(field: dataclasses.Field) -> Any:
    if field.default is not _MISSING:
        return field.default
    return field.default_factory()  # type: ignore[misc]


def reference_value(field: dataclasses.Field, ruleset: str) -> Any:
    """The reference's value of a closed field in ``ruleset``."""
    return field.metadata.get("reference", {}).get(ruleset, default_of(field))


def check(raw: Any, settings_class: type, ruleset: str, division: str,
          reference_preset: bool) -> list[tuple[str, Any, str]]:
    """(key, value, rule) for every problem of a hparams file's ``settings:`` mapping."""
    if not isinstance(raw, Mapping):
        return [("settings", raw, "must be a mapping")]
    fields = {f.name: f for f in dataclasses.fields(settings_class)}
    found = []
    for key, value in raw.items():
        field = fields.get(key)
        if field is None:
            found.append((f"settings.{key}", value, f"unknown setting; allowed: {', '.join(fields)}"))
            continue
        default = default_of(field)
        if not whitelist.same_type(value, default):
            found.append((f"settings.{key}", value, f"must be {type(default).__name__} like the default {default!r}"))
            continue
        found += [(f"settings.{key}", value, rule) for rule in _rules(field, value, ruleset, division,
                                                                       reference_preset)]
    if division == "closed" and reference_preset:
        # A closed field left out of the file takes the default; where the reference's value
        # differs by ruleset, the file must say it.
        for name, field in fields.items():
            if field.metadata.get("closed") and name not in raw and \
                    not whitelist.same_value(default_of(field), reference_value(field, ruleset)):
                found.append((f"settings.{name}", whitelist.MISSING,
                              f"required in a closed reference preset of ruleset {ruleset}: the reference "
                              f"value is {reference_value(field, ruleset)!r}, not the default {default_of(field)!r}"))
    return found


def _rules(field: dataclasses.Field, value: Any, ruleset: str, division: str, reference_preset: bool) -> list[str]:
    rules = _apply(field.metadata.get("allowed", {}), value)
    if division == "closed":
        rules += [f"{rule} in the closed division" for rule in _apply(field.metadata.get("allowed_closed", {}), value)]
        if reference_preset and field.metadata.get("closed"):
            expected = reference_value(field, ruleset)
            if not whitelist.same_value(value, expected):
                where = f" (the {ruleset} reference)" if field.metadata.get("reference") else ""
                rules.append(f"fixed at {expected!r}{where} in a closed-division reference run")
    return rules


def _apply(constraints: Mapping[str, Any], value: Any) -> list[str]:
    found = []
    for name, argument in constraints.items():
        rule = whitelist.VALUE_CONSTRAINTS[name](value, argument, {})
        if rule:
            found.append(rule)
    return found


def build(settings_class: type, raw: Mapping[str, Any]) -> Any:
    """The Settings instance of a checked ``settings:`` mapping."""
    return settings_class(**dict(raw))
