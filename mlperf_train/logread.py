"""One pass over a result file: every MLPerf line as an :class:`Event`, and for ``:::MLL``
and ``:::MLLOG`` logs the official parser's own view of the same lines.

Formats: v0.5 ``:::MLPv0.5.0 <bench> <unix s> (file:line) key[: value]``, v0.6
``:::MLL <unix s> key: json`` and v0.7+ ``:::MLLOG {json}`` (``time_ms``). Lines may carry
prefixes (rank tags, timestamps), so markers are searched anywhere in a line. The first
marker in the file decides its format.

Why the official view: ``score`` and ``check`` share one judgement that includes the
official checker engine, which works on the official parser's lines
(``mlp_parser.ruleset_060``/``ruleset_070``). That parser reads the file as latin-1 text,
keeps the lines that hold its token, cuts each one before the token's last occurrence,
strips it and hands it to ``string_to_logline``: a ``ValueError`` there is a parse error
(which fails the check), anything else makes the official parser raise. :func:`scan` does
the same selection and calls the official ``string_to_logline`` on each selected line, so
lines, line numbers and errors are the official parser's (a test compares them with
``mlp_parser.parse_file`` on published logs), while the file is read once, in large binary
blocks, with bounded memory for huge or binary files.
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Iterator

_MARKERS = ((b":::MLLOG ", "mllog"), (b":::MLL ", "mll"), (b":::MLPv0.5.0 ", "mlp"))
# The official parsers' tokens: note that ':::MLL' also matches ':::MLLOG' lines.
OFFICIAL_TOKEN = {"mll": ":::MLL", "mllog": ":::MLLOG "}
OFFICIAL_PARSER_RULESET = {"mll": "0.6.0", "mllog": "0.7.0"}
MS_PER_STAMP = {"mlp": 1000.0, "mll": 1000.0, "mllog": 1.0}   # v0.5/v0.6 stamp seconds, v0.7 ms

_MLL = re.compile(rb":::MLL ([-+0-9.eE]+) (\w+):? ?(.*)")
_MLP = re.compile(rb":::MLPv0\.5\.0 (\S+) ([-+0-9.eE]+) \([^)]*\) (\w+)(?::\s*(.*))?")
_BLOCK_BYTES = 1 << 22
_MAX_LINE_BYTES = 1 << 20      # longer lines (binary junk) keep only their last MiB


@dataclasses.dataclass
class Event:
    time_ms: float
    key: str
    value: Any
    metadata: dict
    benchmark: str | None = None     # v0.5 lines name their benchmark


@dataclasses.dataclass
class Scan:
    """What one file holds. ``official`` is None for v0.5 logs (mlperf_logging has no
    parser for them)."""

    log_format: str | None = None
    events: list[Event] = dataclasses.field(default_factory=list)
    official: list | None = None               # mlp_parser LogLine tuples, file order
    parse_errors: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    parser_crash: str = ""                     # why the official parser would raise


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


def _event_from(fmt: str, time_ms: float, key: str, body: Any) -> Event:
    """An event from a parsed JSON body: v0.6/v0.7 ``{"value", "metadata"}``, else the value."""
    if isinstance(body, dict) and fmt != "mlp":
        value, metadata = body.get("value"), body.get("metadata")
    else:
        value, metadata = body, {}
    return Event(time_ms, key, value, metadata if isinstance(metadata, dict) else {})


def parse_line(line: str | bytes) -> tuple[str, str | None, Event] | None:
    """(format, v0.5 benchmark or None, event) for one MLPerf line, or None. Lenient: the
    first marker counts and missing fields are tolerated (the official parser is stricter)."""
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
            return fmt, None, _event_from(fmt, float(obj["time_ms"]), str(obj["key"]), obj)
        if fmt == "mll":
            match = _MLL.match(line, pos)
            if not match:
                return None
            return fmt, None, _event_from(fmt, float(match.group(1)) * 1000.0, match.group(2).decode(),
                                          _json(match.group(3)))
        match = _MLP.match(line, pos)
        if not match:
            return None
        bench = match.group(1).decode("utf-8", "replace")
        event = Event(float(match.group(2)) * 1000.0, match.group(3).decode(), _json(match.group(4)), {}, bench)
        return fmt, bench, event
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


def marker_lines(handle) -> Iterator[bytes]:
    """The lines holding ``:::ML`` (every marker and official token starts so), in file
    order. Lines end at ``\\n``, ``\\r\\n`` or ``\\r``, as in the official parser's text
    mode (``bytes.splitlines`` splits at exactly these). Splitting and filtering whole blocks
    in C is several times faster than a test per line: most lines of a published log are a
    framework's own output."""
    for block in _blocks(handle):
        if b":::ML" in block:
            yield from [line for line in block.splitlines() if b":::ML" in line]


def _format_of(line: bytes) -> str | None:
    at = line.find(b":::ML")
    while at >= 0:
        fmt = next((f for m, f in _MARKERS if line.startswith(m, at)), None)
        if fmt:
            return fmt
        at = line.find(b":::ML", at + 1)
    return None


def scan(handle) -> Scan:
    """Reads an open binary file once (see the module docstring)."""
    from mlperf_logging.compliance_checker.mlp_parser import ruleset_060, ruleset_070

    result = Scan()
    to_logline = None
    token = ""
    lineno = 0
    for line in marker_lines(handle):
        if result.log_format is None:
            result.log_format = _format_of(line)
            if result.log_format is None:
                continue
            if result.log_format != "mlp":
                result.official = []
                token = OFFICIAL_TOKEN[result.log_format]
                to_logline = (ruleset_060 if result.log_format == "mll" else ruleset_070).string_to_logline
        fmt = result.log_format
        event = None
        if to_logline is not None:
            text = line.decode("latin-1")
            if token in text:
                official_line = (token + text.rpartition(token)[2]).strip()
                try:
                    logline = to_logline(lineno, official_line)
                except ValueError as error:
                    result.parse_errors.append((official_line, str(error)))
                except Exception as error:  # the official parser raises here: the check fails
                    result.parser_crash = result.parser_crash or f"{type(error).__name__}: {error}"
                else:
                    result.official.append(logline)
                    event = _event_from(fmt, float(logline.timestamp) * MS_PER_STAMP[fmt], str(logline.key),
                                        logline.value)
                lineno += 1
        if event is None:
            parsed = parse_line(line)
            if parsed is None or parsed[0] != fmt:
                continue
            event = parsed[2]
        result.events.append(event)
    return result
