"""Optimizers and learning-rate schedules of the ResNet rulesets (spec §3).

- SGD with momentum, ``torch.optim.SGD`` form (v ← m·v + g + wd·w; w ← w − lr·v), L2 on
  every tensor except batch norm (REF's L2 loss includes the FC bias).
- LARS as in the v0.7 reference ``MLPERF_LARSOptimizer`` (torch has none): trust ratio on
  weights, plain momentum on BN and bias tensors, the learning rate inside the momentum.
- v0.5 step schedule (warmup, then ×0.1 at boundary epochs) and the v0.7 polynomial
  schedule (warmup, then power-2 decay to the end learning rate).

The hparams keys of each ruleset's vocabulary are read into one :class:`Recipe`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
from torch import nn

from references.resnet.model import parameter_kinds

REF_BOUNDARY_EPOCHS = (30, 60, 80, 90)            # v0.5 REF
REF_STEP_FACTORS = (1.0, 0.1, 0.01, 0.001, 1e-4)  # ×1, ×0.1, ... after each boundary
LARS_ETA = 0.001                                  # trust coefficient; fixed, not logged


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling, the v0.7 reference's update (spec §3).

    For a parameter group with ``trust=True`` (conv and FC kernels)::

        trust = eta·‖w‖ / (‖g‖ + wd·‖w‖ + eps)      (1 where ‖w‖ or ‖g‖ is 0)
        v ← m·v + lr·trust·(g + wd·w);  w ← w − v

    and for ``trust=False`` (BN gammas/betas, biases): v ← m·v + lr·g; w ← w − v, with no
    decay. Unlike torch's SGD the learning rate sits inside the momentum, as in TF's
    MomentumOptimizer, which matters while the schedule changes the rate.
    """

    def __init__(self, params, lr: float = 0.0, momentum: float = 0.9, weight_decay: float = 1e-4,
                 eta: float = LARS_ETA, epsilon: float = 0.0, trust: bool = True):
        if lr < 0 or momentum < 0 or weight_decay < 0 or epsilon < 0:
            raise ValueError("LARS: lr, momentum, weight_decay and epsilon must be >= 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                                      epsilon=epsilon, trust=trust))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["trust"]:
                    w_norm, g_norm = torch.linalg.vector_norm(param), torch.linalg.vector_norm(grad)
                    ratio = group["eta"] * w_norm / (g_norm + wd * w_norm + group["epsilon"])
                    # torch.where keeps this on the device: no host sync per tensor on a GPU
                    trust = torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))
                    update = (grad + wd * param) * (lr * trust)
                else:
                    update = grad * lr
                buffer = self.state[param].get("momentum_buffer")
                if buffer is None:
                    buffer = self.state[param]["momentum_buffer"] = torch.zeros_like(param)
                buffer.mul_(momentum).add_(update)
                param.sub_(buffer)
        return loss


@dataclasses.dataclass(frozen=True)
class PolySchedule:
    """v0.7 (and REF LARS): ``lr = peak·step/W`` for step ≤ W, then
    ``(peak − end)·(1 − s/D)^power + end`` with ``s = max(1, step − W)`` and
    ``D = decay_end_step − W + 1``; ``end`` after the decay. ``step`` is the number of
    updates done before this one (TF's global_step), so the first update has lr 0."""

    peak_lr: float
    warmup_steps: int
    decay_end_step: int
    end_lr: float = 1e-4
    power: float = 2.0

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step <= self.warmup_steps:
            return self.peak_lr * step / self.warmup_steps
        decay_steps = max(self.decay_end_step - self.warmup_steps + 1, 1)
        s = min(max(1, step - self.warmup_steps), decay_steps)
        return (self.peak_lr - self.end_lr) * (1.0 - s / decay_steps) ** self.power + self.end_lr


@dataclasses.dataclass(frozen=True)
class StepSchedule:
    """v0.5 REF: ``lr = base·step/W`` while step < W, then ``base·factor[i]`` where i is
    the number of boundaries already passed (TF piecewise_constant: a step equal to a
    boundary still takes the earlier value)."""

    base_lr: float
    warmup_steps: int
    boundary_steps: tuple
    factors: tuple = REF_STEP_FACTORS

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * step / self.warmup_steps
        passed = sum(step > boundary for boundary in self.boundary_steps)
        return self.base_lr * self.factors[min(passed, len(self.factors) - 1)]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One optimizer + schedule, whatever ruleset vocabulary the hparams file used.
    Epoch counts are converted to steps with ``batches_per_epoch = N / B`` (REF)."""

    optimizer: str                 # "sgd" or "lars"
    schedule: str                  # "poly" or "step"
    base_lr: float
    warmup_epochs: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    end_lr: float = 1e-4           # poly
    poly_power: float = 2.0        # poly
    decay_epochs: float = 90.0     # poly: the epoch (from the start) where lr reaches end_lr
    boundary_epochs: tuple = REF_BOUNDARY_EPOCHS  # step
    lars_epsilon: float = 0.0

    def schedule_for(self, num_train_samples: int, global_batch_size: int):
        batches_per_epoch = num_train_samples / global_batch_size
        warmup_steps = int(self.warmup_epochs * batches_per_epoch)
        if self.schedule == "step":
            return StepSchedule(self.base_lr, warmup_steps,
                                tuple(int(e * batches_per_epoch) for e in self.boundary_epochs))
        return PolySchedule(self.base_lr, warmup_steps, int(self.decay_epochs * batches_per_epoch),
                            self.end_lr, self.poly_power)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        kinds = parameter_kinds(model)
        if self.optimizer == "lars":
            return LARS([{"params": kinds["weights"], "trust": True, "weight_decay": self.weight_decay},
                         {"params": kinds["biases"] + kinds["batch_norm"], "trust": False, "weight_decay": 0.0}],
                        momentum=self.momentum, epsilon=self.lars_epsilon)
        return torch.optim.SGD([{"params": kinds["weights"] + kinds["biases"], "weight_decay": self.weight_decay},
                                {"params": kinds["batch_norm"], "weight_decay": 0.0}],
                               lr=0.0, momentum=self.momentum)


def _need(hparams: Mapping[str, Any], key: str):
    if key not in hparams:
        raise ValueError(f"hparams: {key} is required for opt_name {hparams.get('opt_name')!r}")
    return hparams[key]


def recipe_from_hparams(hparams: Mapping[str, Any]) -> Recipe:
    """Read the v0.7 keys (``sgd_opt_*``, ``lars_opt_*``: polynomial schedules) or the
    v0.5/v0.6 keys (``opt_base_learning_rate``...: SGD with steps, LARS polynomial)."""
    name = hparams.get("opt_name", "sgd")
    if name not in ("sgd", "lars"):
        raise ValueError(f"hparams: opt_name = {name!r}: must be sgd or lars")
    get = hparams.get
    if "sgd_opt_base_learning_rate" in hparams or "lars_opt_base_learning_rate" in hparams:  # v0.7
        if name == "sgd":
            return Recipe("sgd", "poly", _need(hparams, "sgd_opt_base_learning_rate"),
                          get("opt_learning_rate_warmup_epochs", 0), get("sgd_opt_momentum", 0.9),
                          get("sgd_opt_weight_decay", 1e-4), get("sgd_opt_end_learning_rate", 1e-4),
                          get("sgd_opt_learning_rate_decay_poly_power", 2),
                          _need(hparams, "sgd_opt_learning_rate_decay_steps"))
        return Recipe("lars", "poly", _need(hparams, "lars_opt_base_learning_rate"),
                      get("lars_opt_learning_rate_warmup_epochs", 0), get("lars_opt_momentum", 0.9),
                      get("lars_opt_weight_decay", 1e-4), get("lars_opt_end_learning_rate", 1e-4),
                      get("lars_opt_learning_rate_decay_poly_power", 2),
                      _need(hparams, "lars_opt_learning_rate_decay_steps"), lars_epsilon=get("lars_epsilon", 0.0))
    base, warmup = _need(hparams, "opt_base_learning_rate"), get("opt_learning_rate_warmup_epochs", 0)
    if name == "sgd":  # v0.5 REF / v0.6 sgd: piecewise-constant steps
        return Recipe("sgd", "step", base, warmup, get("opt_momentum", 0.9), get("opt_weight_decay", 1e-4),
                      boundary_epochs=tuple(get("opt_learning_rate_decay_boundary_epochs", REF_BOUNDARY_EPOCHS)))
    return Recipe("lars", "poly", base, warmup, get("lars_opt_momentum", 0.9), get("lars_opt_weight_decay", 1e-4),
                  1e-4, get("lars_opt_learning_rate_decay_poly_power", 2),
                  get("lars_opt_learning_rate_decay_steps", 90), lars_epsilon=get("lars_epsilon", 0.0))
