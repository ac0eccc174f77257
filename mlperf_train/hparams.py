"""Loads a hparams file (``hparams/<bench>/*.yaml``) into a validated, frozen ``Preset``.

The file format is described in ``rules/README.md``. Every problem in a file is collected
and reported at once as ``Violation`` lines (``file: key = value: rule``); nothing in the
file is ever evaluated as code.
"""
from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Mapping

import yaml

from mlperf_train import quality, settings as settings_mod, whitelist
from mlperf_train.errors import UsageError
from mlperf_train.rules import RULESETS, benchmark_rules

HPARAMS_DIR = Path(__file__).resolve().parents[1] / "hparams"
TOP_LEVEL_KEYS = {"benchmark", "ruleset", "preset", "target", "max_epochs", "eval", "hparams", "settings"}
REFERENCE_PRESET = "reference"
FILE_KEY = "(file)"


@dataclasses.dataclass(frozen=True)
class Violation:
    source: str
    key: str
    value: Any
    rule: str

    def __str__(self) -> str:
        if self.key == FILE_KEY:  # the file as a whole: unreadable, malformed, not a mapping
            return f"{self.source}: {self.rule}"
        shown = "(missing)" if self.value is whitelist.MISSING else repr(self.value)
        return f"{self.source}: {self.key} = {shown}: {self.rule}"


class HparamsInvalid(UsageError):
    def __init__(self, violations: list[Violation]):
        self.violations = violations
        super().__init__("\n".join(str(v) for v in violations))


@dataclasses.dataclass(frozen=True)
class Preset:
    """A validated hparams file."""

    path: str
    benchmark: str
    name: str                           # "reference" or the small preset's name
    ruleset: str
    division: str
    target: Mapping[str, float]         # the ruleset's target, or the small preset's own (quality.py)
    max_epochs: int
    eval: Mapping[str, Any]             # cadence override (small presets only), else empty
    hparams: Mapping[str, Any]          # whitelisted keys, logged as they are
    settings: Any                       # the benchmark's Settings dataclass instance

    @property
    def is_small(self) -> bool:
        return self.name != REFERENCE_PRESET


def default_preset_path(benchmark: str) -> Path:
    """The embedded default a new user runs first: the small preset."""
    return HPARAMS_DIR / benchmark / "small.yaml"


def read_yaml(path: Path) -> tuple[Any, list[Violation]]:
    source = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f), []
    except OSError as error:
        return None, [Violation(source, FILE_KEY, whitelist.MISSING, f"cannot read: {error.strerror}")]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "malformed YAML"
        return None, [Violation(source, FILE_KEY, whitelist.MISSING, f"malformed YAML{where}: {problem}")]


def check_file(path: Path, ruleset: str | None, division: str,
               benchmark_settings: type | None = None, expected_benchmark: str | None = None
               ) -> tuple[dict | None, list[Violation]]:
    """Validate one hparams file; return (raw document, violations). ``ruleset`` (the
    command line's) must agree with the file's own ``ruleset:`` where both are given."""
    source = str(path)
    doc, violations = read_yaml(path)
    if violations:
        return None, violations
    if not isinstance(doc, dict):
        return None, [Violation(source, FILE_KEY, doc, "must be a YAML mapping with `benchmark`, `max_epochs` and `hparams`")]
    for key in sorted(set(doc) - TOP_LEVEL_KEYS):
        violations.append(Violation(source, key, doc[key], f"unknown top-level key; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}"))
    benchmark = doc.get("benchmark")
    if not isinstance(benchmark, str):
        violations.append(Violation(source, "benchmark", doc.get("benchmark", whitelist.MISSING), "required: the benchmark name"))
        return doc, violations
    if expected_benchmark and benchmark != expected_benchmark:
        violations.append(Violation(source, "benchmark", benchmark, f"this run is for {expected_benchmark!r}"))
    ruleset, problem = file_ruleset(doc, ruleset)
    if problem:
        violations.append(Violation(source, "ruleset", doc.get("ruleset"), problem))
        return doc, violations
    preset = doc.get("preset", REFERENCE_PRESET)
    if not isinstance(preset, str):
        violations.append(Violation(source, "preset", preset, "must be a string"))
        preset = REFERENCE_PRESET
    is_small = preset != REFERENCE_PRESET
    max_epochs = doc.get("max_epochs", whitelist.MISSING)
    if not (isinstance(max_epochs, int) and not isinstance(max_epochs, bool) and max_epochs >= 1):
        violations.append(Violation(source, "max_epochs", max_epochs, "required: integer >= 1"))
    try:
        rules = benchmark_rules(benchmark, ruleset)
    except UsageError as error:
        violations.append(Violation(source, "benchmark", benchmark, str(error)))
        return doc, violations
    violations += _check_target(source, doc, rules, is_small)
    violations += _check_eval(source, doc.get("eval"), rules, is_small)
    hparams = doc.get("hparams") or {}
    if not isinstance(hparams, dict):
        violations.append(Violation(source, "hparams", hparams, "must be a mapping"))
        hparams = {}
    violations += [Violation(source, f"hparams.{v.key}", v.value, v.rule)
                   for v in whitelist.check(hparams, benchmark, rules.ruleset, division, is_small)]
    if benchmark_settings is not None:
        raw_settings = doc.get("settings") or {}
        found = settings_mod.check(raw_settings, benchmark_settings, rules.ruleset, division,
                                   reference_preset=not is_small)
        violations += [Violation(source, key, value, rule) for key, value, rule in found]
        if not found:
            try:  # a Settings class may still refuse a combination in __post_init__
                settings_mod.build(benchmark_settings, raw_settings)
            except (TypeError, ValueError) as error:
                violations.append(Violation(source, "settings", raw_settings, str(error)))
    return doc, violations


def file_ruleset(doc: Mapping[str, Any], ruleset: str | None) -> tuple[str | None, str | None]:
    """(the ruleset a file is validated against, or a problem). A file may name its ruleset
    (``hparams/<bench>/<ruleset>/reference.yaml`` do); ``--ruleset`` must then agree."""
    named = doc.get("ruleset")
    if named is None:
        return ruleset, None
    if named not in RULESETS:
        return None, f"unknown ruleset; allowed: {', '.join(RULESETS)}"
    if ruleset is not None and ruleset != named:
        return None, f"this file is for ruleset {named}, not --ruleset {ruleset}"
    return named, None


def _check_target(source: str, doc: Mapping[str, Any], rules, is_small: bool) -> list[Violation]:
    """A small preset states its own target, named as the ruleset's (a bare number for a
    single metric); the reference preset uses the ruleset's."""
    if not is_small:
        if "target" in doc:
            return [Violation(source, "target", doc["target"], "only a small preset may set this; the reference preset uses the ruleset's")]
        return []
    if "target" not in doc:
        return [Violation(source, "target", whitelist.MISSING, "a small preset states its own target")]
    expected = ", ".join(rules.quality_keys)
    try:
        target = quality.as_target(doc["target"], rules.metric)
    except ValueError as error:
        return [Violation(source, "target", doc["target"], f"{error}; a target is a number or a mapping of {expected}")]
    mismatch = quality.key_mismatch(target, rules.target)
    if mismatch:
        return [Violation(source, "target", doc["target"], f"{mismatch} (ruleset {rules.ruleset})")]
    return []


EVAL_KEYS = {"every_epochs", "first_epoch_max", "at_epochs", "first_eval_epoch"}


def _check_eval(source: str, cadence: Any, rules, is_small: bool) -> list[Violation]:
    """A small preset may set any cadence; a reference preset may only pick the first
    evaluation's epoch within the ruleset's ``first_epoch_max`` (ResNet: 1 to 4)."""
    if cadence is None:
        return []
    if not isinstance(cadence, dict):
        return [Violation(source, "eval", cadence, f"must be a mapping with keys among {', '.join(sorted(EVAL_KEYS))}")]
    found = [Violation(source, f"eval.{key}", value, f"unknown key; allowed: {', '.join(sorted(EVAL_KEYS))}")
             for key, value in cadence.items() if key not in EVAL_KEYS]
    for key, value in cadence.items():
        if key in ("every_epochs", "first_epoch_max", "first_eval_epoch") and not (
                isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            found.append(Violation(source, f"eval.{key}", value, "must be an integer >= 1"))
        elif key == "at_epochs" and not (isinstance(value, list) and value and all(
                isinstance(e, (int, float)) and not isinstance(e, bool) and e > 0 for e in value)):
            found.append(Violation(source, "eval.at_epochs", value, "must be a non-empty list of epochs > 0"))
    if is_small or found:
        return found
    latest = rules.eval.first_epoch_max
    for key, value in cadence.items():
        if key != "first_eval_epoch":
            found.append(Violation(source, f"eval.{key}", value, "only a small preset may change the ruleset's "
                                   "cadence; a reference preset may set first_eval_epoch"))
        elif latest is None:
            found.append(Violation(source, "eval.first_eval_epoch", value,
                                   f"ruleset {rules.ruleset} gives {rules.benchmark} no choice of offset"))
        elif value > latest:
            found.append(Violation(source, "eval.first_eval_epoch", value,
                                   f"must be 1..{latest} (ruleset {rules.ruleset})"))
    return found


def load_preset(path: Path, ruleset: str | None = None, division: str = "closed",
                settings_class: type | None = None, expected_benchmark: str | None = None) -> Preset:
    """Load and validate; raise ``HparamsInvalid`` listing every violation."""
    doc, violations = check_file(path, ruleset, division, settings_class, expected_benchmark)
    if violations:
        raise HparamsInvalid(violations)
    rules = benchmark_rules(doc["benchmark"], file_ruleset(doc, ruleset)[0])
    is_small = doc.get("preset", REFERENCE_PRESET) != REFERENCE_PRESET
    raw_settings = doc.get("settings") or {}
    settings = settings_mod.build(settings_class, raw_settings) if settings_class else types.MappingProxyType(raw_settings)
    return Preset(
        path=str(path),
        benchmark=doc["benchmark"],
        name=doc.get("preset", REFERENCE_PRESET),
        ruleset=rules.ruleset,
        division=division,
        target=quality.as_target(doc["target"], rules.metric) if is_small else dict(rules.target),
        max_epochs=doc["max_epochs"],
        eval=types.MappingProxyType(dict(doc.get("eval") or {})),
        hparams=types.MappingProxyType(dict(doc.get("hparams") or {})),
        settings=settings,
    )
