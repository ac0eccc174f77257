"""The aggregator: turns a folder of ``result_*.txt`` into one score by the ruleset's rules.

Each file is judged by ``verdict.judge``, the judgement ``check`` prints: a file counts as a
converged run exactly when ``check`` finds nothing in it, and every file that does not count
is named with its first finding. Rules come from ``rules/<ruleset>/suite.yaml`` (``runs``,
``aggregation``, ``reference_minutes``); nothing here hard-codes a run count. Exit status of
``main``: 0 when every folder is a valid result, 1 when one is not, 2 when one cannot be
scored at all (not a folder, no ``result_*.txt``, no MLPerf log in it, a benchmark the
ruleset does not have).
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import re
import sys
from pathlib import Path
from typing import Iterable

from mlperf_train import rules as rules_mod
from mlperf_train.errors import UsageError
from mlperf_train.results import canonical_benchmark
from mlperf_train.verdict import Verdict, judge

EXIT_VALID, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2
_RUN_INDEX = re.compile(r"result_(\d+)\.txt$")


@dataclasses.dataclass
class FolderScore:
    folder: str                      # as given
    benchmark: str | None
    round: str | None                # the ruleset that scored it
    runs: int
    converged: int
    minutes: float | None            # None when the result is invalid
    valid: bool
    reason: str                      # why invalid (or, when valid, a rule that applied)
    normalized: float | None = None  # reference_minutes / minutes, when the ruleset has one
    preset: str | None = None        # our logs: the hparams preset; small ones are no result
    usable: bool = True              # False: nothing here could be scored (exit status 2)
    not_counted: list[str] = dataclasses.field(default_factory=list)   # "result_i.txt: why"

    @property
    def small_preset(self) -> bool:
        return self.preset not in (None, "reference")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _run_order(path: str) -> tuple[int, str]:
    match = _RUN_INDEX.search(os.path.basename(path))
    return (int(match.group(1)) if match else 1 << 30, path)


def result_files(folder: str | Path) -> list[str]:
    """The folder's ``result_*.txt`` in run order (by index, not by name)."""
    paths = glob.glob(os.path.join(glob.escape(os.fspath(folder)), "result_*.txt"))
    return sorted((p for p in paths if os.path.isfile(p)), key=_run_order)


def result_folders(paths) -> list[str]:
    """Each given folder that holds ``result_*.txt`` itself; in place of any other folder, every
    folder below it that does (``<output>/<system>/<benchmark>/``, a submitter's ``results/``
    tree), in path order. A folder with none anywhere below is kept, so that it is reported as
    unusable. Non-folders are returned as given (the caller says what they are)."""
    found = []
    for path in map(os.fspath, paths):
        if not os.path.isdir(path) or result_files(path):
            found.append(path)
            continue
        inner = sorted(root for root, dirs, _ in os.walk(path) if result_files(root))
        found += inner or [path]
    return found


def olympic_mean(minutes: list[float], drop_slowest: int = 1) -> float | None:
    """Mean after dropping the fastest run and ``drop_slowest`` slowest runs."""
    kept = sorted(minutes)[1:len(minutes) - drop_slowest]
    return sum(kept) / len(kept) if kept else None


def _selected(records: list[Verdict], bench_rules) -> tuple[list | None, int, str]:
    """(the runs whose olympic mean is the score, how many slowest it drops, reason): the
    runs are None when the result is invalid, and the reason says why; for a valid result
    the reason may note which rule applied."""
    aggregation = bench_rules.aggregation
    required = bench_rules.runs
    if aggregation.get("method") == "first_converged_olympic":
        # v0.5 NCF: the first num_converged converged runs of the first `runs` runs, in run
        # order (not the fastest ones), then the olympic mean of those.
        wanted = int(aggregation["num_converged"])
        considered = records[:required]
        converged = [r for r in considered if r.converged]
        if len(converged) < wanted:
            done = f"{len(considered)} of {required} runs" if len(considered) < required else f"{required} runs"
            return None, 1, f"{len(converged)} of {wanted} required converged runs in {done}"
        return converged[:wanted], 1, f"the first {wanted} of {len(converged)} converged runs, in run order"
    if len(records) < required:
        return None, 1, f"{len(records)} of {required} required runs"
    converged = [r for r in records if r.converged]
    num_failed = len(records) - len(converged)
    allowed = int(aggregation.get("max_non_converged", 0))
    if num_failed > allowed:
        return None, 1, f"{num_failed} non-converged runs, at most {allowed} allowed"
    # v0.7: a non-converged run counts as the dropped slowest one.
    return converged, 1 - num_failed, f"{num_failed} non-converged run counted as the slowest" if num_failed else ""


def aggregate(records: list[Verdict], bench_rules) -> tuple[float | None, str]:
    """(minutes, reason) for judged runs in run order (anything with ``converged`` and
    ``minutes``). minutes is None when invalid and the reason says why; for a valid result
    the reason may note which rule applied."""
    runs, drop_slowest, reason = _selected(records, bench_rules)
    if runs is None:
        return None, reason
    minutes = olympic_mean([r.minutes for r in runs], drop_slowest=drop_slowest)
    if minutes is None and bench_rules.aggregation.get("method") != "first_converged_olympic":
        return None, "too few converged runs for the olympic mean"
    return minutes, reason


def olympic_roles(records: list[Verdict], bench_rules) -> list[str]:
    """Per run, in order, what the score did with it: "kept" (in the olympic mean),
    "dropped fastest", "dropped slowest", "not converged", or "not counted" (a converged run
    the aggregation does not use, or every run of an invalid result)."""
    runs, drop_slowest, _ = _selected(records, bench_rules)
    roles = ["not converged" if not r.converged else "not counted" for r in records]
    if not runs:
        return roles
    index = {id(r): i for i, r in enumerate(records)}
    ordered = sorted(runs, key=lambda r: r.minutes)      # olympic_mean's order
    for position, run in enumerate(ordered):
        if position == 0:
            role = "dropped fastest"
        elif position >= len(ordered) - drop_slowest:
            role = "dropped slowest"
        else:
            role = "kept"
        roles[index[id(run)]] = role
    return roles


def _only(values: Iterable, what: str) -> tuple[str | None, str]:
    """The one value all runs agree on, or (first, reason) when they differ."""
    seen = list(dict.fromkeys(v for v in values if v))
    if len(seen) > 1:
        return seen[0], f"runs of different {what}: {', '.join(map(str, seen))}"
    return (seen[0] if seen else None), ""


def score_folder(folder: str | Path, ruleset: str | None = None) -> FolderScore:
    """Scores one benchmark folder; an incomplete series gives valid=False with a reason."""
    return judged_folder(folder, ruleset)[0]


def judged_folder(folder: str | Path, ruleset: str | None = None) -> tuple[FolderScore, list[Verdict]]:
    """The folder's score and the verdict of each of its files, in run order."""
    verdicts = [judge(path, ruleset) for path in result_files(folder)]
    return _score(folder, ruleset, verdicts), verdicts


def _score(folder: str | Path, ruleset: str | None, verdicts: list[Verdict]) -> FolderScore:
    records = [v.record for v in verdicts]
    usable = [r for r in records if r.usable]
    benchmark, mixed = _only((r.benchmark for r in usable), "benchmarks")
    benchmark = benchmark or canonical_benchmark(os.path.basename(os.path.normpath(folder)))
    round_, mixed_round = _only((r.ruleset for r in usable), "rulesets")
    round_ = ruleset or round_
    preset, mixed_preset = _only((r.preset for r in usable), "presets")
    result = FolderScore(folder=os.fspath(folder), benchmark=benchmark, round=round_,
                         runs=len(records), converged=0, minutes=None, valid=False, reason="",
                         preset=preset)
    if not records:
        result.reason, result.usable = "no result_*.txt files", False
        return result
    if not usable:
        result.reason, result.usable = verdicts[0].reason, False
        return result
    try:
        bench_rules = rules_mod.benchmark_rules(benchmark, round_)
    except UsageError as error:
        result.reason, result.usable = str(error), False
        return result
    result.converged = sum(v.converged for v in verdicts)
    result.not_counted = [f"{os.path.basename(v.path)}: {v.reason}" for v in verdicts if not v.converged]
    inconsistent = mixed or (mixed_round if not ruleset else "") or mixed_preset
    if inconsistent:
        result.reason = inconsistent
        return result
    minutes, reason = aggregate(verdicts, bench_rules)
    unfinished = glob.glob(os.path.join(glob.escape(result.folder), "result_*.txt.partial"))
    if minutes is None and unfinished:   # a killed run of `mlperf-train run` (see series.py)
        reason += f"; {len(unfinished)} unfinished run(s) (.partial) not counted"
    result.minutes, result.valid, result.reason = minutes, minutes is not None, reason
    if minutes and bench_rules.reference_minutes:
        result.normalized = bench_rules.reference_minutes / minutes
    return result


_COLUMNS = ("folder", "benchmark", "round", "runs", "converged", "minutes", "valid",
            "normalized", "preset", "reason")   # then one line per run that does not count


def _cell(score: FolderScore, column: str) -> str:
    value = getattr(score, column)
    if column == "preset":
        return f"{value} (not a result)" if score.small_preset else (value or "-")
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_table(scores: Iterable[FolderScore]) -> str:
    """The score table, then ``<folder>/<file>: <why it does not count>`` for each such run."""
    scores = list(scores)
    rows = [[_cell(s, c) for c in _COLUMNS] for s in scores]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    for score in scores:
        lines += [os.path.join(score.folder, line) for line in score.not_counted]
    return "\n".join(lines)


def main(args) -> int:
    """``mlperf-train score``: 0 when every folder is valid, 1 otherwise, 2 when one is unusable."""
    for folder in args.folders:
        if not os.path.isdir(folder):
            raise UsageError(f"{folder}: not a folder (give folders holding result_*.txt, or a folder above them)")
    scores = [score_folder(folder, args.ruleset) for folder in result_folders(args.folders)]
    if getattr(args, "json", False):
        print(json.dumps([s.as_dict() for s in scores], indent=2))
    elif getattr(args, "csv", False):
        writer = csv.DictWriter(sys.stdout, fieldnames=list(FolderScore.__dataclass_fields__))
        writer.writeheader()
        writer.writerows({**s.as_dict(), "not_counted": " | ".join(s.not_counted)} for s in scores)
    else:
        print(format_table(scores))
    for s in scores:
        if not s.usable:
            print(f"mlperf-train score: {s.folder}: {s.reason}", file=sys.stderr)
    if not all(s.usable for s in scores):
        return EXIT_UNUSABLE
    return EXIT_VALID if all(s.valid for s in scores) else EXIT_INVALID
