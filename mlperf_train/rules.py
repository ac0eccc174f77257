"""Loads the rulesets under ``rules/<ruleset>/`` into typed, frozen records.

The YAML is data only (``yaml.safe_load``); see ``rules/README.md`` for the fields.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Mapping

import yaml

from mlperf_train.errors import UsageError

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
RULESETS = ("0.5.0", "0.6.0", "0.7.0")


@dataclasses.dataclass(frozen=True)
class EvalCadence:
    """When the rules put an evaluation: every N epochs with the first one after at most
    ``first_epoch_max`` epochs, or at an explicit list of epochs.

    ``first_eval_epoch`` is the offset a submitter picked within the rules (ResNet v0.7:
    first evaluation after 1 to 4 epochs); by default the latest the rules allow.
    """

    every_epochs: int | None = None
    first_epoch_max: int | None = None
    at_epochs: tuple[float, ...] = ()
    on_clock: bool = True
    first_eval_epoch: int | None = None

    def is_eval_epoch(self, epoch: int) -> bool:
        """Whether an evaluation follows training epoch ``epoch`` (1-based)."""
        if self.at_epochs:
            return any(int(round(e)) == epoch for e in self.at_epochs)
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
    target: float | Mapping[str, float]
    runs: int
    aggregation: Mapping[str, Any]
    eval: EvalCadence
    reference_minutes: float | None
    logged_scale: float = 1.0
    runnable: bool = True


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
        cadence = dict(entry.get("eval") or {})
        cadence["at_epochs"] = tuple(cadence.get("at_epochs", ()))
        try:
            benchmarks[name] = BenchmarkRules(
                ruleset=ruleset,
                benchmark=name,
                metric=entry["metric"],
                direction=entry.get("direction", "higher"),
                target=entry["target"],
                runs=int(entry["runs"]),
                aggregation=dict(entry["aggregation"]),
                eval=EvalCadence(**cadence),
                reference_minutes=entry.get("reference_minutes"),
                logged_scale=float(entry.get("logged_scale", 1.0)),
                runnable=bool(entry.get("runnable", True)),
            )
        except (KeyError, TypeError) as error:
            raise _rules_error(path, f"benchmark {name}: bad entry ({error})") from None
    return Suite(ruleset=ruleset, log_format=raw["log_format"], benchmarks=benchmarks)


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


def target_reached(target: float | Mapping[str, float], quality: float | Mapping[str, float],
                   direction: str = "higher") -> bool:
    """Whether ``quality`` meets ``target``; for mappings every named target must be met."""
    if isinstance(target, Mapping):
        if not isinstance(quality, Mapping):
            return False
        return all(name in quality and target_reached(value, quality[name], direction)
                   for name, value in target.items())
    if isinstance(quality, Mapping):
        return False
    if direction == "lower":
        return quality <= target
    return quality >= target
