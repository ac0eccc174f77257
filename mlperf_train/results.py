"""Reads MLPerf result logs of every published format into run records.

Formats: v0.5 ``:::MLPv0.5.0 <bench> <unix s> (file:line) key[: value]``, v0.6
``:::MLL <unix s> key: json`` and v0.7+ ``:::MLLOG {json}`` (``time_ms``). Lines may carry
prefixes (rank tags, timestamps), so markers are searched anywhere in a line. A file that is
not a usable log gives a record with a ``reason``, never an exception.

Speed: a result folder is read on every ``score``, so the reader streams each file once in
large binary blocks and JSON-parses only the lines that name one of the few keys a score
needs (``_WANTED``); ``parse_line`` is the general, slower parser for every key.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Iterator

# Published logs and folders name benchmarks differently from us: the one place they map.
BENCHMARK_ALIASES = {
    "mask": "maskrcnn", "mask_rcnn": "maskrcnn", "maskrcnn": "maskrcnn",
    "object_detection": "maskrcnn", "image_classification": "resnet", "resnet50": "resnet",
    "single_stage_detector": "ssd", "rnn_translator": "gnmt", "translation": "transformer",
    "recommendation": "ncf", "reinforcement": "minigo",
}
FORMAT_RULESET = {"mlp": "0.5.0", "mll": "0.6.0", "mllog": "0.7.0"}
MS_PER_UNIT = {"mlp": 1000.0, "mll": 1000.0, "mllog": 1.0}   # v0.5/v0.6 stamp seconds, v0.7 ms
PRESET_KEY = "mlperf_train_preset"                            # our logs: which hparams preset

_MARKERS = ((b":::MLLOG ", "mllog"), (b":::MLL ", "mll"), (b":::MLPv0.5.0 ", "mlp"))
_MLL = re.compile(rb":::MLL ([-+0-9.eE]+) (\w+):? ?(.*)")
_MLP = re.compile(rb":::MLPv0\.5\.0 (\S+) ([-+0-9.eE]+) \([^)]*\) (\w+)(?::\s*(.*))?")
# The keys a score needs. A line naming none of them is never JSON-parsed.
_WANTED = (b"run_start", b"run_stop", b"eval_accuracy", b"eval_target", b"eval_result",
           b"submission_benchmark", b"submission_division", PRESET_KEY.encode())
_BLOCK_BYTES = 1 << 22
_MAX_LINE_BYTES = 1 << 20      # longer lines (binary junk) keep only their last MiB


def canonical_benchmark(name: Any) -> str | None:
    if name is None:
        return None
    key = str(name).strip().lower()
    return BENCHMARK_ALIASES.get(key, key)


@dataclasses.dataclass
class Event:
    time_ms: float
    key: str
    value: Any
    metadata: dict


@dataclasses.dataclass
class RunRecord:
    path: str
    log_format: str | None = None          # mlp, mll, mllog
    benchmark: str | None = None
    ruleset: str | None = None             # from the log format, or our logs' preset metadata
    preset: str | None = None              # our logs: the hparams preset (small, reference)
    division: str | None = None            # submission_division
    start_ms: float | None = None          # the first run_start
    stop_ms: float | None = None           # the first run_stop (v0.6 MiniGo: the passing model)
    status: str | None = None              # run_stop's status; None when the log has none
    last_accuracy: float | None = None     # v0.5 logs without a success flag are judged on
    eval_target: float | None = None       # these two (or on the ruleset's target)
    problem: str = ""                      # unreadable, not a log, or MiniGo v0.6 never passed
    converged: bool = False
    reason: str = ""                       # why the run does not count; "" when converged

    @property
    def minutes(self) -> float | None:
        if self.start_ms is None or self.stop_ms is None:
            return None
        return (self.stop_ms - self.start_ms) / 60000.0

    @property
    def usable(self) -> bool:
        """Whether the file is an MLPerf log at all (it may still not have converged)."""
        return self.log_format is not None

    def judge(self, target: float | None = None) -> "RunRecord":
        """Sets ``converged`` and ``reason``. ``target`` (in logged units) decides v0.5 runs
        whose log has neither a success flag nor ``eval_target``."""
        status = self.status
        if status is None and self.log_format == "mlp":
            goal = self.eval_target if self.eval_target is not None else target
            if self.last_accuracy is not None and goal is not None:
                status = "success" if self.last_accuracy >= goal else "aborted"
        self.converged, self.reason = False, ""
        if self.problem:
            self.reason = self.problem
        elif self.start_ms is None:
            self.reason = "no run_start"
        elif self.stop_ms is None:
            self.reason = "no run_stop (truncated or unfinished log)"
        elif self.stop_ms < self.start_ms:
            self.reason = "run_stop before run_start"
        elif status != "success":
            self.reason = f"run_stop status {status or 'missing'}"
        else:
            self.converged = True
        return self


def _json(text: bytes | str | None) -> Any:
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def parse_line(line: str | bytes) -> tuple[str, str | None, Event] | None:
    """(format, v0.5 benchmark or None, event) for one MLPerf line, or None."""
    if isinstance(line, str):
        line = line.encode("utf-8", "replace")
    for marker, fmt in _MARKERS:
        pos = line.find(marker)
        if pos >= 0:
            break
    else:
        return None
    try:
        if fmt == "mllog":
            obj = json.loads(line[pos + len(marker):])
            metadata = obj.get("metadata")
            return fmt, None, Event(float(obj["time_ms"]), str(obj["key"]), obj.get("value"),
                                    metadata if isinstance(metadata, dict) else {})
        if fmt == "mll":
            match = _MLL.match(line, pos)
            if not match:
                return None
            obj = _json(match.group(3))
            value, metadata = (obj.get("value"), obj.get("metadata")) if isinstance(obj, dict) else (obj, {})
            return fmt, None, Event(float(match.group(1)) * 1000.0, match.group(2).decode(),
                                    value, metadata if isinstance(metadata, dict) else {})
        match = _MLP.match(line, pos)
        if not match:
            return None
        return fmt, match.group(1).decode("utf-8", "replace"), Event(
            float(match.group(2)) * 1000.0, match.group(3).decode(), _json(match.group(4)), {})
    except (ValueError, KeyError, TypeError, AttributeError):
        return None   # truncated or malformed line: the log reads on without it


def _blocks(handle) -> Iterator[bytes]:
    """Whole lines of a binary file, a few MiB at a time (memory stays bounded)."""
    tail = b""
    while True:
        block = handle.read(_BLOCK_BYTES)
        if not block:
            break
        block = tail + block
        cut = block.rfind(b"\n") + 1
        block, tail = block[:cut], block[cut:]
        if len(tail) > _MAX_LINE_BYTES:
            tail = tail[-_MAX_LINE_BYTES:]
        if block:
            yield block
    if tail:
        yield tail


def iter_lines(handle) -> Iterator[bytes]:
    """The lines of a binary file; memory stays bounded on huge or binary files."""
    for block in _blocks(handle):
        yield from block.splitlines()


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
    """'success', 'aborted', ... or None from a run_stop value and metadata."""
    status = metadata.get("status")
    if status is None and isinstance(value, dict):
        if "success" in value:
            return "success" if value["success"] else "aborted"
        status = value.get("status")
    return str(status).lower() if status is not None else None


def read_run(path: str | Path, target: float | None = None) -> RunRecord:
    """One result file as a judged run record (see ``RunRecord.judge`` for ``target``)."""
    record = RunRecord(path=str(path))
    try:
        with open(path, "rb") as handle:
            _scan(handle, record)
    except OSError as error:
        record.problem = f"cannot read: {error.strerror or error}"
        return record.judge()
    if record.log_format is None:
        record.problem = "not an MLPerf log (no :::MLLOG, :::MLL or :::MLPv0.5.0 lines)"
        return record.judge()
    record.ruleset = record.ruleset or FORMAT_RULESET[record.log_format]
    return record.judge(target)


def _wanted_lines(handle, record: RunRecord) -> Iterator[bytes]:
    """The lines that name a key in ``_WANTED``, in file order; sets ``record.log_format``
    from the first marker seen. ``bytes.find`` over whole blocks is several times faster
    than a regex or a test per line: most lines of a log name no wanted key."""
    for block in _blocks(handle):
        at = block.find(b":::ML") if record.log_format is None else -1
        while at >= 0 and record.log_format is None:
            record.log_format = next((f for m, f in _MARKERS if block.startswith(m, at)), None)
            at = block.find(b":::ML", at + 1)
        starts = set()
        for needle in _WANTED:
            at = block.find(needle)
            while at >= 0:
                starts.add(block.rfind(b"\n", 0, at) + 1)
                end = block.find(b"\n", at)
                if end < 0:
                    break
                at = block.find(needle, end)
        for start in sorted(starts):
            end = block.find(b"\n", start)
            yield block[start:] if end < 0 else block[start:end]


def _scan(handle, record: RunRecord) -> None:
    minigo_seconds = None
    for line in _wanted_lines(handle, record):
        parsed = parse_line(line)
        if parsed is None:
            continue
        fmt, bench, event = parsed
        if bench and not record.benchmark:
            record.benchmark = canonical_benchmark(bench)
        key, value = event.key, event.value
        if key == "run_start":
            if record.start_ms is None:
                record.start_ms = event.time_ms
        elif key == "run_stop":
            if record.stop_ms is None:   # the first one, as the official summarizer does
                record.stop_ms = event.time_ms
                record.status = _status(value, event.metadata)
        elif key == "eval_accuracy":
            record.last_accuracy = _number(value)
        elif key == "eval_target":
            record.eval_target = _number(value)
        elif key == "submission_benchmark" and not record.benchmark:
            record.benchmark = canonical_benchmark(value)
        elif key == "submission_division" and record.division is None:
            record.division = str(value)
        elif key == PRESET_KEY:
            record.preset = str(value)
            record.ruleset = event.metadata.get("ruleset") or record.ruleset
        elif key == "eval_result" and fmt == "mll":
            # v0.6 MiniGo scores its timestamped models after the run: metadata.timestamp is
            # the passing model's time in seconds after run_start (0: no model passed). From
            # v0.7 on, run_stop is logged at that time and is what counts.
            stamp = event.metadata.get("timestamp")
            if stamp is None and isinstance(value, dict):
                stamp = value.get("timestamp")
            minigo_seconds = _number(stamp)
    if minigo_seconds is not None and record.start_ms is not None:
        if minigo_seconds > 0:
            record.stop_ms = record.start_ms + minigo_seconds * 1000.0
            record.status = "success"
        else:
            record.problem = "eval_result: no model reached the target"
