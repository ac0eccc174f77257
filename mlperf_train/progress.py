"""Progress lines for a person watching a run: units, throughput, evaluations."""
from __future__ import annotations

import sys

from mlperf_train import quality
from mlperf_train.benchmark import TrainStats
from mlperf_train.engine import Progress


class ConsoleProgress(Progress):
    def __init__(self, metric: str, unit: str, enabled: bool, label: str, stream=None):
        self.metric = metric
        self.unit = unit
        self.enabled = enabled
        self.label = label
        self.stream = stream or sys.stderr

    def on_epoch(self, epoch: int, max_epochs: int, stats: TrainStats, seconds: float) -> None:
        if not self.enabled:
            return
        rate = stats.num_samples / seconds if seconds > 0 else float("inf")
        print(f"  {self.label} {self.unit} {epoch}/{max_epochs}: {seconds:.1f} s, {rate:,.0f} samples/s/rank, "
              f"loss {stats.loss:.4f}", file=self.stream, flush=True)

    def on_eval(self, epoch: int, quality_value, target, scored_seconds: float | None = None) -> None:
        if not self.enabled:
            return
        where = f" (off the clock; checkpoint saved at {scored_seconds:.1f} s)" if scored_seconds is not None else ""
        print(f"  {self.label} eval after {self.unit} {epoch}: {self.metric} {quality.format(quality_value)} "
              f"(target {quality.format(target, 3)}){where}", file=self.stream, flush=True)
