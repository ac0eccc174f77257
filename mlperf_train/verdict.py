"""The one judgement of a result file, shared by ``score`` and ``check``.

A file is a converged run exactly when it has no finding. Findings come from:

- the official checker engine (``compliance.run_checker``), where a config exists for the
  log (v0.6 ``:::MLL`` and v0.7 ``:::MLLOG`` logs; our older-ruleset logs with project configs);
- the rules table, for what the official checker does not check or cannot see:
  - one run per file: a second ``run_start`` after a new ``init_start`` or a ``run_stop``
    is a relaunch appended to the file (ranks that each print the same events are not);
  - an evaluation reached the target: the ruleset's, or a small preset's own
    (``mlperf_train_preset``); the ``run_stop`` status flag does not decide;
  - at an evaluation the ruleset schedules (``schedule.py``);
  - off-clock MiniGo: ``eval_result`` names a passing model;
  - the logged hyperparameters pass the whitelist, each value judged by what it means;
  - where no engine config checks them: a ``run_start`` and a ``run_stop``, in order.

Every finding names its source. A rules-table finding also says whether the official gate
fails the log for the same key, so a user sees at once what the official checker would do.

The time of a converged run: ``run_start`` to the first ``run_stop`` (as the official
summarizer takes it) or, where the rules take evaluation off the clock (MiniGo 0.6.0), to
the passing model's ``eval_result`` timestamp.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

from mlperf_train import compliance, logvalues, quality, whitelist
from mlperf_train.compliance import Finding
from mlperf_train.errors import UsageError
from mlperf_train.results import RunRecord, read_run
from mlperf_train.rules import RULESETS, BenchmarkRules, load_suite
from mlperf_train.schedule import Schedule


@dataclasses.dataclass
class Verdict:
    record: RunRecord
    rules: BenchmarkRules | None
    findings: list[Finding] = dataclasses.field(default_factory=list)
    unusable: str = ""        # why the file cannot be judged at all (check exits 2)

    @property
    def path(self) -> str:
        return self.record.path

    @property
    def converged(self) -> bool:
        return not self.unusable and not self.findings

    @property
    def reason(self) -> str:
        """Why the run does not count ("" when it does): the first rules-table finding
        (written to explain), else the official checker's first; then how many more."""
        if self.unusable:
            return self.unusable
        if not self.findings:
            return ""
        first = next((f for f in self.findings if f.source.startswith("rules ")), self.findings[0])
        more = len(self.findings) - 1
        return str(first) + (f" (+{more} more: mlperf-train check lists them)" if more else "")

    @property
    def minutes(self) -> float | None:
        record = self.record
        if self.rules is not None and not self.rules.eval.on_clock and record.eval_result_seconds is not None:
            return record.eval_result_seconds / 60.0
        return record.minutes


# --- quality values as logged ------------------------------------------------------------
def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = logvalues.number_from_text(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def logged_quality(value: Any, target: Mapping[str, float]) -> dict[str, float] | None:
    """An ``eval_accuracy`` value as a quality named like ``target``: a number or numeric
    string (v0.6 NVIDIA logged BLEU as ``"25.33"``) for one value; a mapping whose names
    match the target's in any case, also inside a one-key wrapper (v0.6 NVIDIA Mask R-CNN:
    ``{"accuracy": {"BBOX": b, "SEGM": s}}``); a list in the target's order (v0.6 Google
    Mask R-CNN logged ``[bbox, segm]``). None when it is none of these."""
    names = list(target)
    while isinstance(value, Mapping) and len(value) == 1 and not any(
            str(k).lower() == n.lower() for k in value for n in names):
        value = next(iter(value.values()))     # v0.6 NVIDIA: {"accuracy": {"BBOX": b, "SEGM": s}}
    if isinstance(value, Mapping):
        lower = {str(k).lower(): v for k, v in value.items()}
        values = {name: _as_number(lower.get(name.lower())) for name in names}
    elif isinstance(value, (list, tuple)) and len(value) == len(names):
        values = {name: _as_number(v) for name, v in zip(names, value)}
    elif len(names) == 1:
        values = {names[0]: _as_number(value)}
    else:
        return None
    return None if any(v is None for v in values.values()) else values


def _target(record: RunRecord, rules: BenchmarkRules) -> tuple[dict[str, float] | None, str]:
    """(target in logged units, where it comes from)."""
    if record.small_preset:
        try:
            target = quality.as_target(record.preset_target, rules.metric)
        except ValueError:
            return None, f"preset {record.preset!r} (mlperf_train_preset states no usable target)"
        where = f"the target preset {record.preset!r} logs (mlperf_train_preset), not the ruleset's"
    else:
        target, where = dict(rules.target), ""
    return quality.scaled(target, rules.logged_scale), where


def _epoch(epoch: float | None) -> str:
    return "?" if epoch is None else f"{epoch:g}"


# --- the rules table -----------------------------------------------------------------------
class _Table:
    """Collects rules-table findings with their source."""

    def __init__(self, record: RunRecord, gate: str, official: list[Finding]):
        self.record, self.gate, self.findings = record, gate, []
        self.flagged = {key for f in official if f.official for key in f.keys}

    def add(self, text: str, keys: tuple[str, ...], source: str = "") -> None:
        table = f"rules {self.record.ruleset} table"
        if source:
            where = f"{table}: {source}"
        elif self.gate != "official":
            where = f"{table}; no official checker for this log"
        elif self.flagged & set(keys):
            where = f"{table}; the official checker fails it too"
        else:
            where = f"{table}, not checked by the official checker"
        self.findings.append(Finding(text, where, keys))


def _timing(table: _Table, record: RunRecord) -> None:
    if record.second_attempt:
        table.add(record.second_attempt, ("run_start", "init_start", "init_stop"))
    if table.gate != "none":   # the engine's common config checks these
        return
    if record.start_ms is None:
        table.add("no run_start", ("run_start",))
    elif record.stop_ms is None:
        table.add("no run_stop (truncated or unfinished log)", ("run_stop",))
    elif record.stop_ms < record.start_ms:
        table.add("run_stop before run_start", ("run_stop",))


def _convergence(table: _Table, record: RunRecord, rules: BenchmarkRules) -> None:
    target, where = _target(record, rules)
    if target is None:
        table.add("no target to judge the run by", ("eval_accuracy",), where)
        return
    values = [logged_quality(e.value, target) for e in record.evals]
    passed = [v is not None and quality.reached(v, target, rules.direction) for v in values]
    if not any(passed):
        scored = [(quality.ratio(v, target), v, e) for v, e in zip(values, record.evals) if v is not None]
        best = max(scored, key=lambda s: s[0], default=None)
        seen = f"best {quality.format(best[1])} at epoch {_epoch(best[2].epoch)}" if best else (
            f"{len(record.evals)} eval_accuracy values, none a quality" if record.evals else "no eval_accuracy")
        table.add(f"no evaluation reached the target {quality.format(target)} ({seen})", ("eval_accuracy",), where)
        return
    if record.small_preset:
        cadence = Schedule.from_cadence(record.preset_eval) if record.preset_eval else None
    else:
        cadence = Schedule.from_cadence(rules.eval)
    problem = cadence.finding([e.epoch for e in record.evals], passed) if cadence else None
    if problem:
        table.add(problem, ("eval_accuracy", "epoch_num"), where and f"the evaluation schedule; {where}")
    if not rules.eval.on_clock:
        _off_clock(table, record, [e.epoch for e, ok in zip(record.evals, passed) if ok])


def _off_clock(table: _Table, record: RunRecord, passing: list[float | None]) -> None:
    """Off-clock MiniGo: the time is the first passing model's, named by eval_result."""
    seconds, iteration = record.eval_result_seconds, _as_number(record.eval_result_iteration)
    if seconds is None:
        table.add("no eval_result: an off-clock run is timed by its passing model's eval_result", ("eval_result",))
        return
    if seconds <= 0:
        table.add("eval_result: no model reached the target (timestamp 0)", ("eval_result",))
        return
    first = next((e for e in passing if e is not None), None)
    if iteration is not None and first is not None and iteration != first:
        table.add(f"eval_result names model {iteration:g}, but the first model whose evaluation reached the "
                  f"target is {first:g}", ("eval_result",))
    saved_ms = record.saved_models.get(iteration)
    if saved_ms is not None and record.start_ms is not None and seconds > (saved_ms - record.start_ms) / 1000.0 + 1.5e-3:
        table.add(f"eval_result timestamp {seconds:g} s is later than model {iteration:g}'s save_model, "
                  f"{(saved_ms - record.start_ms) / 1000.0:g} s after run_start", ("eval_result", "save_model"))


def _hparams(table: _Table, record: RunRecord) -> None:
    division = record.division or "closed"
    if division not in ("closed", "open"):
        table.add(f"submission_division {division!r}: allowed: closed, open", ("submission_division",))
        return
    for v in whitelist.check_logged(record.hparams, record.benchmark, record.ruleset, division,
                                     record.small_preset):
        table.add(f"hparam {v.key} = {v.value!r}: {v.rule}", (v.key,))


# --- the judgement -------------------------------------------------------------------------
def _unusable(record: RunRecord, ruleset: str | None) -> str:
    if not record.usable:
        return record.problem
    if not record.benchmark:
        return "no submission_benchmark key"
    if ruleset:
        record.ruleset = ruleset
    if record.ruleset not in RULESETS or record.benchmark not in load_suite(record.ruleset).benchmarks:
        return f"{record.benchmark} is not a benchmark of ruleset {record.ruleset} (give --ruleset)"
    return ""


def judge(path: str | Path, ruleset: str | None = None) -> Verdict:
    """The verdict on one file. ``ruleset`` overrides the one the log implies (its format,
    or our logs' ``mlperf_train_preset``). Never raises for a bad file: an unusable one has
    ``unusable`` set (a broken rules file still raises ``UsageError``)."""
    record = read_run(path)
    verdict = Verdict(record, None)
    verdict.unusable = _unusable(record, ruleset)
    if verdict.unusable:
        return verdict
    verdict.rules = load_suite(record.ruleset).benchmarks[record.benchmark]
    official: list[Finding] = []
    gate = "none"
    if record.log_format != "mlp":
        try:
            compliance.first_configs(record)
        except UsageError as error:
            verdict.unusable = str(error)
            return verdict
        official = compliance.run_checker(record)
        gate = "official" if record.log_format == "mll" or record.ruleset == "0.7.0" else "project"
    table = _Table(record, gate, official)
    _timing(table, record)
    _convergence(table, record, verdict.rules)
    _hparams(table, record)
    verdict.findings = official + table.findings
    record.scan = None       # the lines are no longer needed; a folder of big logs stays small
    return verdict
