"""The aggregator: turns a folder of ``result_*.txt`` into one score by the ruleset's rules.

Rules come from ``rules/<ruleset>/suite.yaml`` (``runs``, ``aggregation``,
``reference_minutes``); nothing here hard-codes a run count.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import re
import sys
from typing import Iterable

from mlperf_train import rules as rules_mod
from mlperf_train.errors import UsageError
from mlperf_train.results import RunRecord, canonical_benchmark, read_run

_RUN_INDEX = re.compile(r"result_(\d+)\.txt$")


@dataclasses.dataclass
class FolderScore:
    folder: str
    benchmark: str | None
    round: str | None
    runs: int
    converged: int
    minutes: float | None          # None when the result is invalid
    valid: bool
    reason: str
    normalized: float | None = None  # reference_minutes / minutes, when the ruleset has one
    preset: str | None = None        # our own logs: the hparams preset (small runs are not results)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _run_order(path: str) -> tuple[int, str]:
    match = _RUN_INDEX.search(os.path.basename(path))
    return (int(match.group(1)) if match else 1 << 30, path)


def _olympic_mean(minutes: list[float], drop_slowest: int = 1) -> float | None:
    """Mean after dropping the fastest run and ``drop_slowest`` slowest runs."""
    kept = sorted(minutes)[1:len(minutes) - drop_slowest]
    return sum(kept) / len(kept) if kept else None


def _folder_benchmark(folder: str, records: list[RunRecord]) -> str | None:
    for record in records:
        if record.benchmark:
            return record.benchmark
    return canonical_benchmark(os.path.basename(os.path.normpath(folder)))


def _target(bench_rules) -> float | None:
    target = bench_rules.target
    return float(target) * bench_rules.logged_scale if isinstance(target, (int, float)) else None


def aggregate(records: list[RunRecord], bench_rules) -> tuple[float | None, str]:
    """(minutes, reason) for records in run order; minutes is None when invalid."""
    aggregation = bench_rules.aggregation
    required = bench_rules.runs
    converged = [r for r in records if r.converged]
    if aggregation.get("method") == "first_converged_olympic":
        wanted = int(aggregation["num_converged"])
        if len(converged) < wanted:
            if len(records) < required:
                return None, f"{len(records)} of {required} required runs, {len(converged)} of {wanted} converged"
            return None, f"{len(converged)} of {wanted} required converged runs in {len(records)} runs"
        return _olympic_mean([r.minutes for r in converged[:wanted]]), ""
    if len(records) < required:
        return None, f"{len(records)} of {required} required runs"
    num_failed = len(records) - len(converged)
    allowed = int(aggregation.get("max_non_converged", 0))
    if num_failed > allowed:
        return None, f"{num_failed} non-converged runs, at most {allowed} allowed"
    # A non-converged run counts as the dropped slowest one (v0.7 rule).
    minutes = _olympic_mean([r.minutes for r in converged], drop_slowest=1 - num_failed)
    if minutes is None:
        return None, "too few converged runs for the olympic mean"
    return minutes, ""


def score_folder(folder: str, ruleset: str | None = None) -> FolderScore:
    """Scores one benchmark folder; an incomplete series gives valid=False with a reason."""
    paths = sorted(glob.glob(os.path.join(glob.escape(folder), "result_*.txt")), key=_run_order)
    records = [read_run(path) for path in paths]
    benchmark = _folder_benchmark(folder, records)
    usable = [r for r in records if r.log_format]
    round_ = ruleset or next((r.ruleset for r in usable if r.ruleset), None)
    preset = next((r.preset for r in usable if r.preset), None)
    result = FolderScore(folder=folder, benchmark=benchmark, round=round_, runs=len(records),
                         converged=sum(r.converged for r in records), minutes=None,
                         valid=False, reason="", preset=preset)
    if not records:
        result.reason = "no result_*.txt files"
        return result
    if round_ is None:
        result.reason = records[0].reason or "no MLPerf log lines"
        return result
    try:
        bench_rules = rules_mod.benchmark_rules(benchmark, round_)
    except UsageError as error:
        result.reason = str(error)
        return result
    if any(r.log_format == "mlp" and not r.converged and "missing" in r.reason for r in records):
        # v0.5 logs without a success flag: compare with the ruleset target instead.
        records = [read_run(r.path, target=_target(bench_rules)) for r in records]
        result.converged = sum(r.converged for r in records)
    minutes, reason = aggregate(records, bench_rules)
    result.minutes, result.valid, result.reason = minutes, minutes is not None, reason
    if minutes and bench_rules.reference_minutes:
        result.normalized = bench_rules.reference_minutes / minutes
    return result


_COLUMNS = ("folder", "benchmark", "round", "runs", "converged", "minutes", "valid",
            "normalized", "reason")


def _format_table(scores: Iterable[FolderScore]) -> str:
    rows = [[str(s.as_dict()[c]) if not isinstance(s.as_dict()[c], float)
             else f"{s.as_dict()[c]:.3f}" for c in _COLUMNS] for s in scores]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def main(args) -> int:
    """``mlperf-train score``: 0 when every folder is valid, 1 otherwise."""
    for folder in args.folders:
        if not os.path.isdir(folder):
            raise UsageError(f"{folder}: not a folder (give folders holding result_*.txt)")
    scores = [score_folder(folder, args.ruleset) for folder in args.folders]
    if getattr(args, "json", False):
        print(json.dumps([s.as_dict() for s in scores], indent=2))
    elif getattr(args, "csv", False):
        writer = csv.DictWriter(sys.stdout, fieldnames=list(FolderScore.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(s.as_dict() for s in scores)
    else:
        print(_format_table(scores))
    return 0 if all(s.valid for s in scores) else 1
