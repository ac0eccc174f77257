"""Reads MLPerf result logs of every published format into run records.

A record says what one file holds: its format, benchmark, ruleset and preset, the first
``run_start`` and ``run_stop``, every evaluation (epoch and value as logged), the logged
hyperparameters, an off-clock ``eval_result`` and whether a second attempt was appended to
the file. It does not judge the run: ``verdict.judge`` does, for ``score`` and ``check``
alike. A file that is not a usable log gives a record with a ``problem``, never an
exception. The lines themselves are read by ``logread.scan``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mlperf_train.logread import Event, Scan, iter_lines, parse_line, scan  # noqa: F401 (re-exported)

# Published logs and folders name benchmarks differently from us: the one place they map.
BENCHMARK_ALIASES = {
    "mask": "maskrcnn", "mask_rcnn": "maskrcnn", "maskrcnn": "maskrcnn",
    "object_detection": "maskrcnn", "image_classification": "resnet", "resnet50": "resnet",
    "single_stage_detector": "ssd", "rnn_translator": "gnmt", "translation": "transformer",
    "recommendation": "ncf", "reinforcement": "minigo",
}
FORMAT_RULESET = {"mlp": "0.5.0", "mll": "0.6.0", "mllog": "0.7.0"}
PRESET_KEY = "mlperf_train_preset"                            # our logs: which hparams preset
# After the first run_start, one of these and then another run_start is a relaunch.
_REINIT = ("init_start", "init_stop", "run_stop")


def canonical_benchmark(name: Any) -> str | None:
    if name is None:
        return None
    key = str(name).strip().lower()
    return BENCHMARK_ALIASES.get(key, key)


@dataclasses.dataclass
class EvalPoint:
    epoch: float | None      # as logged (epoch_num; v0.5: the value's "epoch")
    value: Any               # as logged: a number, a numeric string, a mapping or a list
    time_ms: float


@dataclasses.dataclass
class RunRecord:
    path: str
    log_format: str | None = None          # mlp, mll, mllog
    benchmark: str | None = None
    ruleset: str | None = None             # from the log format, or our logs' preset metadata
    preset: str | None = None              # our logs: the hparams preset (small, reference)
    preset_target: Any = None              # our logs: the preset's target, in suite units
    preset_eval: dict | None = None        # our logs: the preset's evaluation cadence
    division: str | None = None            # submission_division
    start_ms: float | None = None          # the first run_start
    stop_ms: float | None = None           # the first run_stop, as the official summarizer takes it
    status: str | None = None              # run_stop's status; None when the log has none
    evals: list[EvalPoint] = dataclasses.field(default_factory=list)
    eval_target: Any = None                # v0.5 logs state their target
    eval_result_seconds: float | None = None   # off-clock MiniGo: the passing model's time
    eval_result_iteration: Any = None
    saved_models: dict = dataclasses.field(default_factory=dict)   # off-clock: iteration -> save time_ms
    second_attempt: str = ""               # a relaunch appended to the file, described
    hparams: dict = dataclasses.field(default_factory=dict)   # key -> first logged value
    problem: str = ""                      # unreadable, or not an MLPerf log
    scan: Scan | None = dataclasses.field(default=None, repr=False)

    @property
    def minutes(self) -> float | None:
        """run_start to run_stop (the on-clock time); ``verdict`` applies off-clock rules."""
        if self.start_ms is None or self.stop_ms is None:
            return None
        return (self.stop_ms - self.start_ms) / 60000.0

    @property
    def usable(self) -> bool:
        """Whether the file is an MLPerf log at all (it may still not be a valid run)."""
        return self.log_format is not None

    @property
    def small_preset(self) -> bool:
        return self.preset not in (None, "reference")


def _status(value: Any, metadata: dict) -> str | None:
    """'success', 'aborted', ... or None from a run_stop value and metadata."""
    status = metadata.get("status")
    if status is None and isinstance(value, dict):
        if "success" in value:
            return "success" if value["success"] else "aborted"
        status = value.get("status")
    return str(status).lower() if status is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _eval_point(event: Event) -> EvalPoint:
    value, epoch = event.value, event.metadata.get("epoch_num")
    if isinstance(value, dict) and "value" in value and ("epoch" in value or len(value) == 1):
        epoch = value.get("epoch", epoch)      # v0.5: {"epoch": e, "value": x}
        value = value["value"]
    return EvalPoint(_number(epoch), value, event.time_ms)


def _attempts(record: RunRecord, event: Event, state: dict) -> None:
    """Notes a second attempt: a run_start after the first one that follows a new init or
    a run_stop. Ranks that each print run_start print nothing of these in between; each
    rank's own init_start comes before the first run_start; late submission_* lines are
    neither."""
    if event.key == "run_start":
        if record.start_ms is None:
            record.start_ms = event.time_ms
        elif state.get("reinit") and not record.second_attempt:
            seconds = (event.time_ms - record.start_ms) / 1000.0
            record.second_attempt = (f"holds two attempts: a second run_start {seconds:.1f} s after the first, "
                                     f"after a new {state['reinit']} (a relaunch appended to the same file)")
    elif event.key in _REINIT and record.start_ms is not None:
        state.setdefault("reinit", event.key)


def _add(record: RunRecord, event: Event, state: dict) -> None:
    key, value = event.key, event.value
    if event.benchmark and not record.benchmark:
        record.benchmark = canonical_benchmark(event.benchmark)
    if value is not None:
        record.hparams.setdefault(key, value)
    _attempts(record, event, state)
    if key == "run_stop":
        if record.stop_ms is None:   # the first one, as the official summarizer does
            record.stop_ms = event.time_ms
            record.status = _status(value, event.metadata)
    elif key == "eval_accuracy":
        record.evals.append(_eval_point(event))
    elif key == "eval_target" and record.eval_target is None:
        record.eval_target = value
    elif key == "submission_benchmark" and not record.benchmark:
        record.benchmark = canonical_benchmark(value)
    elif key == "submission_division" and record.division is None:
        record.division = str(value)
    elif key == PRESET_KEY:
        record.preset = str(value)
        record.ruleset = event.metadata.get("ruleset") or record.ruleset
        record.preset_target = event.metadata.get("target")
        cadence = event.metadata.get("eval")
        record.preset_eval = dict(cadence) if isinstance(cadence, dict) else None
    elif key == "save_model" and isinstance(value, dict) and "iteration" in value:
        record.saved_models.setdefault(_number(value["iteration"]), event.time_ms)
    elif key == "eval_result" and record.eval_result_seconds is None:
        # Off-clock MiniGo (ruleset 0.6.0): timestamp = the passing model's time in seconds
        # after run_start, without the evaluation time (0: no model passed).
        stamp = event.metadata.get("timestamp")
        iteration = event.metadata.get("iteration")
        if isinstance(value, dict):
            stamp = value.get("timestamp", stamp)
            iteration = value.get("iteration", iteration)
        record.eval_result_seconds = _number(stamp)
        record.eval_result_iteration = iteration


def read_run(path: str | Path) -> RunRecord:
    """One result file as a record (nothing judged; see ``verdict.judge``)."""
    record = RunRecord(path=str(path))
    try:
        with open(path, "rb") as handle:
            record.scan = scan(handle)
    except OSError as error:
        record.problem = f"cannot read: {error.strerror or error}"
        return record
    record.log_format = record.scan.log_format
    if record.log_format is None:
        record.problem = "not an MLPerf log (no :::MLLOG, :::MLL or :::MLPv0.5.0 lines)"
        return record
    state: dict = {}
    for event in record.scan.events:
        _add(record, event, state)
    record.ruleset = record.ruleset or FORMAT_RULESET[record.log_format]
    return record
