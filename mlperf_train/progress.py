"""What a person watching a run sees: a live bar per unit, one line per unit and evaluation.

Bars (``tqdm``) are drawn only for a person: on rank 0, when stdout and the bar's stream
are terminals. They go to stderr and change nothing else: no log line, no printed summary
line, no ``--json`` field. A unit's bar shows samples done out of the unit's total,
samples/s, the ETA and the loss; the loss (a device tensor) is read at most twice a second,
so the display makes the device wait no more than that.

:func:`track` and :func:`task` give ``prepare`` and small-dataset generation the same kind
of display (a reference wraps its long loops in ``track``).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Any, Iterable, Iterator

from mlperf_train import quality
from mlperf_train.benchmark import TrainStats
from mlperf_train.engine import Progress

LOSS_READ_SECONDS = 0.5
REDRAW_SECONDS = 0.1     # tqdm's mininterval


def bars_wanted(stream=None, is_main: bool | None = None) -> bool:
    """Whether to draw bars: rank 0 (``RANK`` of torchrun when ``is_main`` is None) and a
    terminal on stdout and on ``stream`` (stderr by default)."""
    if is_main is None:
        is_main = os.environ.get("RANK", "0") == "0"
    stream = stream or sys.stderr
    try:
        return bool(is_main and sys.stdout.isatty() and stream.isatty())
    except (AttributeError, ValueError):   # a closed or replaced stream
        return False


def _bar(**kwargs):
    from tqdm import tqdm

    return tqdm(dynamic_ncols=True, leave=False, mininterval=REDRAW_SECONDS, **kwargs)


def track(iterable: Iterable, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator:
    """``iterable``, with a bar on a terminal (rank 0 only); for ``prepare`` and
    ``generate_small`` loops."""
    if not bars_wanted():
        yield from iterable
        return
    with _bar(total=total, desc=desc, unit=unit, file=sys.stderr) as bar:
        for item in iterable:
            yield item
            bar.update(1)


@contextlib.contextmanager
def task(desc: str):
    """A bar with the elapsed time around work that reports no progress of its own (a
    reference's ``generate_small`` or ``prepare``), redrawn every second."""
    if not bars_wanted():
        yield
        return
    bar = _bar(total=None, desc=desc, bar_format="{desc}: {elapsed}", file=sys.stderr)
    done = threading.Event()

    def redraw():
        while not done.wait(1.0):
            bar.refresh()

    ticker = threading.Thread(target=redraw, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        bar.close()


class _UnitBar:
    """The ``progress(done, total, loss=None)`` callback of one unit."""

    def __init__(self, desc: str, stream):
        self.desc, self.stream = desc, stream
        self.bar = None
        self.loss_read_at = 0.0

    def __call__(self, done: int, total: int, loss: Any = None) -> None:
        if self.bar is None:
            self.bar = _bar(total=total, desc=self.desc, unit="sample", unit_scale=True, file=self.stream)
        if total != self.bar.total:
            self.bar.total = total
        if loss is not None and time.monotonic() - self.loss_read_at >= LOSS_READ_SECONDS:
            self.loss_read_at = time.monotonic()
            self.bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ConsoleProgress(Progress):
    def __init__(self, metric: str, unit: str, enabled: bool, label: str, stream=None):
        self.metric = metric
        self.unit = unit
        self.enabled = enabled
        self.label = label
        self.stream = stream or sys.stderr
        self.bars = enabled and bars_wanted(self.stream, is_main=True)
        self._unit_bar: _UnitBar | None = None

    def epoch_started(self, epoch: int, max_epochs: int):
        if not self.bars:
            return super().epoch_started(epoch, max_epochs)
        self._unit_bar = _UnitBar(f"  {self.label} {self.unit} {epoch}/{max_epochs}", self.stream)
        return self._unit_bar

    def on_epoch(self, epoch: int, max_epochs: int, stats: TrainStats, seconds: float) -> None:
        if self._unit_bar is not None:
            self._unit_bar.close()
            self._unit_bar = None
        if not self.enabled:
            return
        rate = stats.num_samples / seconds if seconds > 0 else float("inf")
        loss = "" if stats.loss is None else f", loss {stats.loss:.4f}"
        print(f"  {self.label} {self.unit} {epoch}/{max_epochs}: {seconds:.1f} s, {rate:,.0f} samples/s/rank{loss}",
              file=self.stream, flush=True)

    def on_eval(self, epoch: int, quality_value, target, scored_seconds: float | None = None) -> None:
        if not self.enabled:
            return
        where = f" (off the clock; checkpoint saved at {scored_seconds:.1f} s)" if scored_seconds is not None else ""
        print(f"  {self.label} eval after {self.unit} {epoch}: {self.metric} {quality.format(quality_value)} "
              f"(target {quality.format(target, 3)}){where}", file=self.stream, flush=True)
