"""The clock: the only place in the project that reads wall time for a result.

Timestamps that matter (``run_start``, ``run_stop``) are taken after every rank has
reached the same point, and the latest rank's time is used (an all-reduce MAX), so a
result never ends before the slowest rank has finished.
"""
from __future__ import annotations

import threading
import time

import torch

from mlperf_train.distributed import RunEnv

# Rules: model initialisation up to 20 minutes is untimed; past that the clock starts.
INIT_LIMIT_SECONDS = 20 * 60


def now_ms() -> int:
    return int(time.time() * 1000)


def synced_now_ms(env: RunEnv) -> int:
    """Wall time in ms once every rank is here: the maximum over ranks."""
    if not env.is_distributed:
        return now_ms()
    stamp = torch.tensor([now_ms()], dtype=torch.float64, device=env.device)
    env.all_reduce_max(stamp)
    return int(stamp.item())


class InitWatchdog:
    """Starts the clock if model initialisation runs past the rules' limit.

    ``on_limit`` is called from a timer thread at ``init_start + limit``; the engine logs
    ``init_stop`` and ``run_start`` there, so the overrun is on the clock. Logging only,
    no collectives, happens in that thread.
    """

    def __init__(self, limit_seconds: float, on_limit):
        self._timer = threading.Timer(limit_seconds, self._fire, args=(on_limit,))
        self._timer.daemon = True
        self._lock = threading.Lock()
        self._armed = True
        self.fired_at_ms: int | None = None

    @property
    def fired(self) -> bool:
        return self.fired_at_ms is not None

    def _fire(self, on_limit) -> None:
        with self._lock:
            if not self._armed:
                return
            self._armed = False
            self.fired_at_ms = now_ms()
            on_limit(self.fired_at_ms)

    def __enter__(self) -> "InitWatchdog":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        with self._lock:  # after this, the timer can no longer log anything
            self._armed = False
