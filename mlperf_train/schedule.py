"""Whether a run converged at an evaluation the ruleset schedules (``check`` and ``score``).

The rules fix when a run is evaluated (``rules/<ruleset>/suite.yaml`` ``eval``): at fixed
epochs (SSD v0.7: 40, 50, 55, ... 80), every N epochs with the first one after 1..K epochs
(ResNet: every 4, first after 1 to 4), or every epoch. Extra evaluations are allowed (they
only cost time), but a run may only be judged converged at a scheduled one, and it may not
skip the scheduled ones before it. For every-N schedules the offset is one for the whole
run. So a run converged on schedule when, for one schedule S (one offset):

1. its first evaluation comes no later than the first epoch S allows (K; SSD: 40);
2. an evaluation at an epoch of S reached the target (the first such one is "c");
3. every epoch of S after the first evaluation and up to c was evaluated.

An every-epoch schedule schedules every evaluation, so it constrains nothing (published,
accepted MiniGo logs start evaluating at generation 45).

How logs number epochs differs between accepted submissions, one convention per run: the
number of epochs completed (the reference; NVIDIA), the 0-based index of the last epoch
trained (Google: 3.0 after 4 epochs) or the number of the epoch that follows (Fujitsu and
Inspur v0.7 SSD: 41 and 51 after 40 and 50 epochs). A run passes if it passes under one of
them. A schedule with fractional epochs (v0.6 SSD: 32.7, ... from iteration counts, which
submitters turned into epochs with 117,266 or 118,287 images) matches a logged epoch within
one epoch of each point.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

# completed epochs = logged epoch + shift: reference, 0-based last epoch, next epoch
_SHIFTS = (0.0, 1.0, -1.0)


def _exact(epoch: float, scheduled: float) -> bool:
    return abs(epoch - scheduled) < 1.0 - 1e-9


def _near(epoch: float, scheduled: float) -> bool:
    return abs(epoch - scheduled) <= 1.0 + 1e-9


def _fmt(epochs: Iterable[float]) -> str:
    return ", ".join(f"{e:g}" for e in epochs)


class Schedule:
    """The ruleset's evaluation epochs for one benchmark (see the module docstring)."""

    def __init__(self, every_epochs: int | None = None, first_epoch_max: int | None = None,
                 at_epochs: Sequence[float] = (), offset: int | None = None):
        """``offset``: the first evaluation's epoch when it is fixed (a preset's pick)."""
        self.at_epochs = tuple(sorted(float(e) for e in at_epochs))
        self.every = int(every_epochs or 1)
        self.offsets = (int(offset),) if offset else None
        first_epoch_max = offset or first_epoch_max
        fractional = any(e != int(e) for e in self.at_epochs)
        self._matches = _near if fractional else _exact
        self.first_max = float(self.at_epochs[0] if self.at_epochs else (first_epoch_max or self.every))

    @classmethod
    def from_cadence(cls, cadence) -> "Schedule":
        """From ``rules.EvalCadence`` or a mapping with the same keys (a small preset's)."""
        get = cadence.get if isinstance(cadence, dict) else lambda name: getattr(cadence, name, None)
        first = get("first_eval_epoch")   # a preset's own pick within the rules' range
        every = get("every_epochs")
        at_epochs = get("at_epochs") or ()
        if first and every and not at_epochs:
            return cls(every, offset=first)
        return cls(every, get("first_epoch_max"), at_epochs)

    @property
    def constrains(self) -> bool:
        return bool(self.at_epochs) or self.every > 1 or bool(self.offsets and self.offsets[0] > 1)

    def describe(self) -> str:
        if self.at_epochs:
            return f"epochs {_fmt(self.at_epochs)}"
        return f"every {self.every} epochs, the first after at most {self.first_max:g}"

    def _candidates(self, up_to: float) -> list[tuple[str, list[float]]]:
        if self.at_epochs:
            return [("", list(self.at_epochs))]
        count = int(math.ceil(up_to / self.every)) + 2
        return [(f" with offset {offset}", [offset + i * self.every for i in range(count)])
                for offset in self.offsets or range(1, int(self.first_max) + 1)]

    def _judge(self, epochs: list[float], passed: list[bool]) -> tuple[bool, str]:
        """(ok, why not) for one epoch convention."""
        first = min(epochs)
        reasons = []
        for name, scheduled in self._candidates(max(epochs)):
            hit = next((e for e, ok in zip(epochs, passed) if ok and any(self._matches(e, s) for s in scheduled)), None)
            if hit is None:
                continue
            if first >= self.first_max + 1 - 1e-9:
                reasons.append(f"the target is reached at epoch {hit:g}, but the first evaluation is at "
                               f"epoch {first:g}; the schedule ({self.describe()}) has one by epoch {self.first_max:g}")
                continue
            due = [s for s in scheduled if first < s and (s < hit or self._matches(hit, s))
                   and not self._matches(first, s)]
            missing = [s for s in due if not any(self._matches(e, s) for e in epochs)]
            if not missing:
                return True, ""
            reasons.append(f"the target is reached at epoch {hit:g}, but the scheduled evaluation(s) "
                           f"at epoch(s) {_fmt(missing)} before it are missing (schedule: {self.describe()}{name})")
        if reasons:
            return False, reasons[0]
        reached = [e for e, ok in zip(epochs, passed) if ok]
        return False, (f"the target is reached only at epoch(s) {_fmt(reached)}, off the ruleset's evaluation "
                       f"schedule ({self.describe()}); a run may only stop at a scheduled evaluation")

    def finding(self, epochs: Sequence[float | None], passed: Sequence[bool]) -> str | None:
        """Why a run's success does not rest on a scheduled evaluation, or None when it does.
        ``epochs[i]`` is the logged epoch of evaluation i (None when not logged) and
        ``passed[i]`` whether it reached the target. None too when nothing passed: that is
        the convergence check's finding, not the schedule's."""
        if not any(passed) or not self.constrains:
            return None
        pairs = [(float(e), ok) for e, ok in zip(epochs, passed) if e is not None]
        if not any(ok for _, ok in pairs):
            return "the evaluations that reached the target log no epoch_num: they cannot be placed on the schedule"
        first_reason = None
        for shift in _SHIFTS:
            ok, reason = self._judge([e + shift for e, _ in pairs], [p for _, p in pairs])
            if ok:
                return None
            first_reason = first_reason or reason
        return first_reason
