"""Loads the rulesets under ``rules/<ruleset>/`` into typed, frozen records.

The YAML is data only (``yaml.safe_load``); see ``rules/README.md`` for the fields. The
loader refuses what the engine cannot honour (an unknown cadence key, evaluation points
inside an epoch for a runnable entry); it never ignores a field. An entry the engine
cannot run says why in ``not_runnable``, and ``mlperf-train list`` shows that reason.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Mapping

import yaml

from mlperf_train import quality
from mlperf_train.errors import UsageError

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
RULESETS = ("0.5.0", "0.6.0", "0.7.0")


@dataclasses.dataclass(frozen=True)
class EvalCadence:
    """When the rules put an evaluation: every N epochs with the first one after at most
    ``first_epoch_max`` epochs, or at an explicit list of epochs.

    ``first_eval_epoch`` is the offset a submitter picked within the rules (ResNet v0.7:
    first evaluation after 1 to 4 epochs); by default the latest the rules allow.
    ``on_clock: false`` (MiniGo from 0.6.0): the engine saves a timestamped checkpoint per
    unit and evaluates it off the clock (``engine.py``).
    """

    every_epochs: int | None = None
    first_epoch_max: int | None = None
    at_epochs: tuple[float, ...] = ()
    on_clock: bool = True
    first_eval_epoch: int | None = None

    def is_eval_epoch(self, epoch: int) -> bool:
        """Whether an evaluation follows training epoch ``epoch`` (1-based). Fractional
        ``at_epochs`` never match: the loader refuses them in a runnable entry."""
        if self.at_epochs:
            return epoch in self.at_epochs
        first = self.first_eval_epoch or self.first_epoch_max or self.every_epochs or 1
        return epoch >= first and (epoch - first) % (self.every_epochs or 1) == 0

    def epochs_until_next_eval(self, epoch: int, limit: int = 10_000) -> int:
        """Number of epochs from ``epoch`` (inclusive) to the next eval epoch (inclusive);
        the ``epoch_count`` of a ``block_start`` logged before ``epoch``."""
        for count in range(1, limit + 1):
            if self.is_eval_epoch(epoch + count - 1):
                return count
        return limit


@dataclasses.dataclass(frozen=True)
class BenchmarkRules:
    ruleset: str
    benchmark: str
    metric: str
    direction: str
    target: Mapping[str, float]       # quality.as_target: {metric: value} or Mask R-CNN's two
    runs: int
    aggregation: Mapping[str, Any]
    eval: EvalCadence
    reference_minutes: float | None
    logged_scale: float = 1.0
    not_runnable: str | None = None     # why our engine or reference cannot run this entry

    @property
    def runnable(self) -> bool:
        return self.not_runnable is None

    @property
    def quality_keys(self) -> tuple[str, ...]:
        """The names an evaluation of this benchmark returns (``quality.py``)."""
        return tuple(self.target)


@dataclasses.dataclass(frozen=True)
class Suite:
    ruleset: str
    log_format: str
    benchmarks: Mapping[str, BenchmarkRules]


def _rules_error(path: Path, message: str) -> UsageError:
    return UsageError(f"{path}: {message}")


@functools.lru_cache(maxsize=None)
def load_suite(ruleset: str) -> Suite:
    if ruleset not in RULESETS:
        raise UsageError(f"unknown ruleset {ruleset!r}; allowed: {', '.join(RULESETS)}")
    path = RULES_DIR / ruleset / "suite.yaml"
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    benchmarks = {}
    for name, entry in raw["benchmarks"].items():
        try:
            benchmarks[name] = _benchmark_rules(ruleset, name, entry)
        except (KeyError, TypeError, ValueError) as error:
            raise _rules_error(path, f"benchmark {name}: bad entry ({error})") from None
    return Suite(ruleset=ruleset, log_format=raw["log_format"], benchmarks=benchmarks)


_ENTRY_KEYS = {"metric", "direction", "target", "runs", "aggregation", "eval", "reference_minutes",
               "logged_scale", "not_runnable"}
_EVAL_KEYS = {field.name for field in dataclasses.fields(EvalCadence)}


def _benchmark_rules(ruleset: str, name: str, entry: Mapping[str, Any]) -> BenchmarkRules:
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_ENTRY_KEYS))}")
    cadence = dict(entry.get("eval") or {})
    unknown = sorted(set(cadence) - _EVAL_KEYS)
    if unknown:
        raise ValueError(f"eval: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_EVAL_KEYS))}")
    cadence["at_epochs"] = tuple(cadence.get("at_epochs", ()))
    if not isinstance(cadence.get("on_clock", True), bool):
        raise ValueError(f"eval.on_clock must be true or false, got {cadence['on_clock']!r}")
    not_runnable = entry.get("not_runnable")
    if not_runnable is not None and not (isinstance(not_runnable, str) and not_runnable.strip()):
        raise ValueError("not_runnable must say why, in words")
    fractional = [e for e in cadence["at_epochs"] if float(e) != int(e)]
    if fractional and not_runnable is None:
        # The engine evaluates between whole units only; rounding would move the rules'
        # evaluation points without a word.
        raise ValueError(f"eval.at_epochs {fractional} fall inside an epoch, which the engine cannot "
                         f"evaluate at; mark the entry not_runnable with the reason")
    cadence["at_epochs"] = tuple(int(e) if float(e) == int(e) else float(e) for e in cadence["at_epochs"])
    direction = entry.get("direction", "higher")
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be higher or lower, got {direction!r}")
    return BenchmarkRules(
        ruleset=ruleset,
        benchmark=name,
        metric=entry["metric"],
        direction=direction,
        target=quality.as_target(entry["target"], entry["metric"]),
        runs=int(entry["runs"]),
        aggregation=dict(entry["aggregation"]),
        eval=EvalCadence(**cadence),
        reference_minutes=entry.get("reference_minutes"),
        logged_scale=float(entry.get("logged_scale", 1.0)),
        not_runnable=not_runnable,
    )


def benchmark_rules(benchmark: str, ruleset: str | None = None) -> BenchmarkRules:
    """The rules for ``benchmark`` in ``ruleset`` (default: the newest runnable one)."""
    ruleset = ruleset or default_ruleset(benchmark)
    suite = load_suite(ruleset)
    if benchmark not in suite.benchmarks:
        have = [r for r in RULESETS if benchmark in load_suite(r).benchmarks]
        raise UsageError(
            f"benchmark {benchmark!r} is not in ruleset {ruleset}; it is in: {', '.join(have) or 'none'}"
        )
    return suite.benchmarks[benchmark]


def default_ruleset(benchmark: str) -> str:
    """The newest ruleset in which ``benchmark`` is runnable by our reference."""
    for ruleset in reversed(RULESETS):
        entry = load_suite(ruleset).benchmarks.get(benchmark)
        if entry is not None and entry.runnable:
            return ruleset
    raise UsageError(f"unknown benchmark {benchmark!r}")


def target_reached(target: Mapping[str, float], quality_value: Mapping[str, float],
                   direction: str = "higher") -> bool:
    """Whether ``quality_value`` meets every named value of ``target`` (``quality.reached``)."""
    return quality.reached(quality_value, target, direction)
