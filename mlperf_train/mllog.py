"""Rank-0 ``:::MLLOG`` result files, written through ``mlperf_logging.mllog``.

A run writes ``result_<i>.txt.partial`` and the file is renamed to ``result_<i>.txt``
only when the run has ended by the rules (target reached or aborted at the epoch cap), so
a killed or interrupted run never looks like a finished one. Every other rank gets a
``ResultLog`` that writes nothing.
"""
from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Any

from mlperf_logging import mllog as official

PARTIAL_SUFFIX = ".partial"
# Key carrying which preset a run used, so a small run is never taken for a real result.
PRESET_KEY = "mlperf_train_preset"

_logger_ids = itertools.count()


def result_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"result_{index}.txt"


class ResultLog:
    """One result file. ``event``/``start``/``end`` take the time from the caller (the
    engine's clock); this class never reads a clock itself."""

    def __init__(self, final_path: Path | None):
        self.final_path = Path(final_path) if final_path else None
        self._handler: logging.Handler | None = None
        self._writer: official.mllog.MLLogger | None = None
        if self.final_path is None:
            return
        self.partial_path = self.final_path.with_name(self.final_path.name + PARTIAL_SUFFIX)
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        logger = logging.getLogger(f"mlperf_train.result.{next(_logger_ids)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        self._handler = logging.FileHandler(self.partial_path, mode="w", encoding="utf-8")
        logger.addHandler(self._handler)
        # stack offset 3 (event/start/end, then _write): each line records the engine's call site
        self._writer = official.mllog.MLLogger(logger=logger, default_stack_offset=3,
                                                root_dir=str(Path(__file__).resolve().parents[1]))

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    # ``time_ms`` is required: only the engine's clock stamps events. Left to itself,
    # mllog would read its own clock (time.time) for a missing one.
    def event(self, key: str, value: Any = None, metadata: dict | None = None, *, time_ms: int) -> None:
        self._write("event", key, value, metadata, time_ms)

    def start(self, key: str, value: Any = None, metadata: dict | None = None, *, time_ms: int) -> None:
        self._write("start", key, value, metadata, time_ms)

    def end(self, key: str, value: Any = None, metadata: dict | None = None, *, time_ms: int) -> None:
        self._write("end", key, value, metadata, time_ms)

    def _write(self, kind: str, key: str, value: Any, metadata: dict | None, time_ms: int) -> None:
        if not isinstance(time_ms, int) or isinstance(time_ms, bool):
            raise TypeError(f"{key}: time_ms must be the engine clock's int milliseconds, got {time_ms!r}")
        if self._writer:
            getattr(self._writer, kind)(key=key, value=value, metadata=metadata, time_ms=time_ms)

    def close(self, finished: bool) -> Path | None:
        """Flush and close; rename to the final name only if the run ``finished``."""
        if not self._handler:
            return None
        self._handler.flush()
        os.fsync(self._handler.stream.fileno())
        self._handler.close()
        self._writer.logger.removeHandler(self._handler)  # type: ignore[union-attr]
        self._handler = None
        self._writer = None
        if finished:
            os.replace(self.partial_path, self.final_path)
            return self.final_path
        return self.partial_path
