"""Progress lines for a person watching a run: epochs, throughput, evaluations."""
from __future__ import annotations

import sys

from mlperf_train.benchmark import TrainStats
from mlperf_train.engine import Progress


class ConsoleProgress(Progress):
    def __init__(self, metric: str, enabled: bool, label: str, stream=None):
        self.metric = metric
        self.enabled = enabled
        self.label = label
        self.stream = stream or sys.stderr

    def on_epoch(self, epoch: int, max_epochs: int, stats: TrainStats, seconds: float) -> None:
        if not self.enabled:
            return
        rate = stats.num_samples / seconds if seconds > 0 else float("inf")
        print(f"  {self.label} epoch {epoch}/{max_epochs}: {seconds:.1f} s, {rate:,.0f} samples/s/rank, "
              f"loss {stats.loss:.4f}", file=self.stream, flush=True)

    def on_eval(self, epoch: int, quality, target) -> None:
        if not self.enabled:
            return
        print(f"  {self.label} eval after epoch {epoch}: {self.metric} {_fmt(quality)} (target {_fmt(target)})",
              file=self.stream, flush=True)


def _fmt(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:.4f}" for k, v in value.items())
    return f"{value:.4f}"
