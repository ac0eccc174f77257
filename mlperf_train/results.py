"""Reads MLPerf result logs of every published format into run records.

Formats: v0.5 ``:::MLPv0.5.0 <bench> <unix s> (file:line) key[: value]``, v0.6
``:::MLL <unix s> key: json`` and v0.7+ ``:::MLLOG {json}`` (``time_ms``). Lines may carry
prefixes (rank tags, timestamps), so markers are searched anywhere in a line. A file that is
not a usable log gives a record with a ``reason``, never an exception.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

# Published logs and folders name benchmarks differently from us: the one place they map.
BENCHMARK_ALIASES = {
    "mask": "maskrcnn", "mask_rcnn": "maskrcnn", "maskrcnn": "maskrcnn",
    "object_detection": "maskrcnn", "image_classification": "resnet", "resnet50": "resnet",
    "single_stage_detector": "ssd", "rnn_translator": "gnmt", "translation": "transformer",
    "recommendation": "ncf", "reinforcement": "minigo",
}
FORMAT_RULESET = {"mlp": "0.5.0", "mll": "0.6.0", "mllog": "0.7.0"}

_MLP = re.compile(r":::MLPv0\.5\.0 (\S+) ([0-9.]+) \([^)]*\) (\w+)(?:: (.*))?$")
_MLL = re.compile(r":::MLL ([0-9.]+) (\w+): (.*)$")
_MLLOG_MARK = ":::MLLOG "


def canonical_benchmark(name: str | None) -> str | None:
    if name is None:
        return None
    key = str(name).strip().lower()
    return BENCHMARK_ALIASES.get(key, key)


@dataclasses.dataclass
class RunRecord:
    path: str
    log_format: str | None = None          # mlp, mll, mllog
    benchmark: str | None = None
    ruleset: str | None = None             # from the log format, or our logs' metadata
    preset: str | None = None              # our logs: mlperf_train_preset
    start_s: float | None = None
    stop_s: float | None = None
    converged: bool = False
    reason: str = ""                       # why the run does not count; "" when converged

    @property
    def minutes(self) -> float | None:
        if self.start_s is None or self.stop_s is None:
            return None
        return (self.stop_s - self.start_s) / 60.0


@dataclasses.dataclass
class _Event:
    time_s: float
    key: str
    value: Any
    metadata: dict


def _json_or_text(text: str | None) -> Any:
    if text is None:
        return None
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_line(line: str) -> tuple[str, str | None, _Event] | None:
    """(format, benchmark, event) for one MLPerf line, or None."""
    pos = line.find(_MLLOG_MARK)
    if pos >= 0:
        try:
            obj = json.loads(line[pos + len(_MLLOG_MARK):])
            event = _Event(float(obj["time_ms"]) / 1000.0, str(obj["key"]), obj.get("value"),
                           obj.get("metadata") or {})
        except (ValueError, KeyError, TypeError):
            return None
        return "mllog", None, event
    pos = line.find(":::MLL ")
    if pos >= 0:
        match = _MLL.match(line, pos)
        if not match:
            return None
        obj = _json_or_text(match.group(3))
        value, metadata = (obj.get("value"), obj.get("metadata") or {}) if isinstance(obj, dict) else (obj, {})
        return "mll", None, _Event(float(match.group(1)), match.group(2), value, metadata)
    pos = line.find(":::MLPv0.5.0 ")
    if pos >= 0:
        match = _MLP.match(line, pos)
        if not match:
            return None
        return "mlp", match.group(1), _Event(float(match.group(2)), match.group(3),
                                             _json_or_text(match.group(4)), {})
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("value", value.get("accuracy"))
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _status(value: Any, metadata: dict) -> str | None:
    """'success', 'aborted' or None from a run_stop / run_final value."""
    status = metadata.get("status")
    if status is None and isinstance(value, dict):
        if "success" in value:
            return "success" if value["success"] else "aborted"
        status = value.get("status")
    return str(status).lower() if status is not None else None


def read_run(path: str | Path, target: float | None = None, max_bytes: int = 1 << 31) -> RunRecord:
    """One result file as a run record. ``target`` is the ruleset's target for v0.5 logs
    that carry neither a success flag nor ``eval_target``."""
    record = RunRecord(path=str(path))
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except OSError as error:
        record.reason = f"cannot read: {error.strerror}"
        return record
    status = None
    last_accuracy = eval_target = minigo_seconds = None
    read = 0
    with handle:
        for line in handle:
            read += len(line)
            if read > max_bytes:
                break
            if ":::" not in line:
                continue
            parsed = parse_line(line.rstrip("\n"))
            if parsed is None:
                continue
            fmt, bench, event = parsed
            record.log_format = record.log_format or fmt
            if bench and not record.benchmark:
                record.benchmark = canonical_benchmark(bench)
            key = event.key
            if key in ("submission_benchmark", "benchmark") and not record.benchmark:
                record.benchmark = canonical_benchmark(event.value)
            elif key == "mlperf_train_preset":
                record.preset = str(event.value)
                record.ruleset = event.metadata.get("ruleset", record.ruleset)
            elif key == "run_start" and record.start_s is None:
                record.start_s = event.time_s
            elif key in ("run_stop", "run_final"):
                if key == "run_stop" or record.stop_s is None:
                    record.stop_s = event.time_s
                status = _status(event.value, event.metadata) or status
            elif key == "eval_accuracy":
                last_accuracy = _number(event.value)
            elif key == "eval_target":
                eval_target = _number(event.value)
            elif key == "eval_result" and fmt == "mll":
                # v0.6 MiniGo scores models after the run: metadata.timestamp is the passing
                # model's time in seconds after run_start (0 means no model passed). From
                # v0.7 on, run_stop is logged at that time and is what counts.
                stamp = event.metadata.get("timestamp")
                if stamp is None and isinstance(event.value, dict):
                    stamp = event.value.get("timestamp")
                minigo_seconds = _number(stamp)
    if record.log_format is None:
        record.reason = "not an MLPerf log (no :::MLLOG, :::MLL or :::MLPv0.5.0 lines)"
        return record
    record.ruleset = record.ruleset or FORMAT_RULESET[record.log_format]
    if record.start_s is None:
        record.reason = "no run_start"
        return record
    if minigo_seconds is not None:
        if minigo_seconds <= 0:
            record.reason = "eval_result: no model reached the target"
            return record
        record.stop_s = record.start_s + minigo_seconds
        status = "success"
    if record.stop_s is None:
        record.reason = "no run_stop (truncated or unfinished log)"
        return record
    if status is None and record.log_format == "mlp":
        goal = eval_target if eval_target is not None else target
        if last_accuracy is not None and goal is not None:
            status = "success" if last_accuracy >= goal else "aborted"
    record.converged = status == "success"
    if not record.converged:
        record.reason = f"run_stop status {status or 'missing'}"
    return record
