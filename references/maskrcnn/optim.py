"""SGD and the learning-rate schedule of the reference (spec §3), from the whitelisted
hyperparameters.

- SGD, momentum 0.9; weights: weight decay 1e-4; biases: LR ×2, no weight decay; frozen
  parameters are not optimised.
- ``linear`` warmup (the reference's): lr = base·(f·(1 − i/W) + i/W) for i < W, f the
  warmup factor (1/3). ``mlperf_linear`` (NVIDIA's option): lr = base − (W − i)·f.
- ×``decay_factor`` at each of the decay steps (iterations).
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import Any, Mapping

import torch

MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
BIAS_LR_FACTOR = 2.0
BIAS_WEIGHT_DECAY = 0.0
WARMUP_METHODS = ("linear", "mlperf_linear")


@dataclasses.dataclass(frozen=True)
class Recipe:
    base_lr: float
    warmup_steps: int
    warmup_factor: float
    decay_steps: tuple
    decay_factor: float
    warmup_method: str = "linear"

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any], warmup_method: str = "linear") -> "Recipe":
        return cls(base_lr=float(hparams["opt_base_learning_rate"]),
                   warmup_steps=int(hparams["opt_learning_rate_warmup_steps"]),
                   warmup_factor=float(hparams["opt_learning_rate_warmup_factor"]),
                   decay_steps=tuple(int(s) for s in hparams["opt_learning_rate_decay_steps"]),
                   decay_factor=float(hparams["opt_learning_rate_decay_factor"]),
                   warmup_method=warmup_method)

    def lr(self, step: int) -> float:
        """The base learning rate at 0-based iteration ``step`` (biases get ×2 of it)."""
        decay = self.decay_factor ** bisect.bisect_right(self.decay_steps, step)
        if step >= self.warmup_steps:
            return self.base_lr * decay
        if self.warmup_method == "mlperf_linear":
            return (self.base_lr - (self.warmup_steps - step) * self.warmup_factor) * decay
        alpha = step / self.warmup_steps
        return self.base_lr * (self.warmup_factor * (1 - alpha) + alpha) * decay

    def build_optimizer(self, model: torch.nn.Module) -> torch.optim.SGD:
        """Two groups: weights (decay 1e-4) and biases (LR ×2, no decay); ``lr_factor`` in each
        group scales the schedule's value."""
        weights, biases = [], []
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                (biases if name.endswith("bias") else weights).append(parameter)
        return torch.optim.SGD([
            {"params": weights, "weight_decay": WEIGHT_DECAY, "lr_factor": 1.0},
            {"params": biases, "weight_decay": BIAS_WEIGHT_DECAY, "lr_factor": BIAS_LR_FACTOR},
        ], lr=self.base_lr, momentum=MOMENTUM)

    def set_lr(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_factor"]
        return lr
