"""Optimiser and learning-rate schedule of the SSD reference (spec §3).

- ``torch.optim.SGD``, momentum 0.9, weight decay on every parameter (coupled L2: BN and
  biases included), as the reference.
- Warmup (v0.6/v0.7): for optimizer step b < W, ``lr = r0 - (W - b)·r0 / (W·2^f)``. The
  reference sets the rate only while b < W, so from step W on it *stays* at the last
  warmup value ``r0·(1 - 1/(W·2^f))`` until the first decay (the quirk, kept).
- Decay (v0.7): ×0.1 at the start of the epoch after each boundary epoch ([40, 50]·(1+k/10)
  in the closed division): after 40 completed epochs the rate is 0.1·r0, after 50 0.01·r0.

The hparams keys are read once into a :class:`Recipe`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
from torch import nn

MOMENTUM = 0.9            # REF, fixed (not a logged key)
DECAY_FACTOR = 0.1


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The optimiser's hyperparameters as the hparams file gives them (MLPerf keys)."""

    base_lr: float                 # opt_base_learning_rate: r0, after warmup, before decay
    weight_decay: float            # opt_weight_decay
    warmup_steps: int              # opt_learning_rate_warmup_steps: W
    warmup_factor: int             # opt_learning_rate_warmup_factor: f (0: the ramp starts at 0)
    decay_epochs: tuple            # opt_learning_rate_decay_boundary_epochs

    def build_optimizer(self, model: nn.Module) -> torch.optim.SGD:
        return torch.optim.SGD(model.parameters(), lr=self.base_lr, momentum=MOMENTUM,
                               weight_decay=self.weight_decay)

    def learning_rate(self, step: int, epoch: int) -> float:
        """The rate of optimizer step ``step`` (0-based, counted over the run) in 1-based
        ``epoch``: the warmup ramp while ``step < W``; else r0 times 0.1 per boundary
        passed, except that the quirk keeps the last warmup value before the first decay."""
        num_decays = sum(epoch > boundary for boundary in self.decay_epochs)
        if num_decays:
            return self.base_lr * DECAY_FACTOR ** num_decays
        if self.warmup_steps <= 0:
            return self.base_lr
        ramp_step = self.base_lr / (self.warmup_steps * 2 ** self.warmup_factor)
        return self.base_lr - (self.warmup_steps - min(step, self.warmup_steps - 1)) * ramp_step


def recipe_from_hparams(hparams: Mapping[str, Any]) -> Recipe:
    """Read the whitelisted keys (validated before ``init``)."""
    return Recipe(
        base_lr=float(hparams["opt_base_learning_rate"]),
        weight_decay=float(hparams["opt_weight_decay"]),
        warmup_steps=int(hparams.get("opt_learning_rate_warmup_steps", 0)),
        warmup_factor=int(hparams.get("opt_learning_rate_warmup_factor", 0)),
        decay_epochs=tuple(hparams.get("opt_learning_rate_decay_boundary_epochs", ())),
    )
