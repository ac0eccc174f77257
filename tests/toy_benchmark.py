"""A tiny benchmark that drives the engine through every way a run can end.

Its quality after epoch e is ``e / 10``; knobs make it slow to init, touch data too
early, crash, or receive a signal in a chosen epoch.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import time
import types
from pathlib import Path

import torch

from mlperf_train import quality
from mlperf_train.benchmark import Benchmark, EvalResult, ExampleBatch, TrainStats
from mlperf_train.hparams import Preset
from mlperf_train.rules import BenchmarkRules, EvalCadence


@dataclasses.dataclass(frozen=True)
class ToySettings:
    init_seconds: float = 0.0
    touch_data_in_init: bool = False
    crash_in_epoch: int = 0
    signal_in_epoch: int = 0
    exit_in_epoch: int = 0      # the process dies at once (os._exit), as on a hardware fault
    fault_rank: int = -1        # the rank that crashes, gets the signal or dies; -1: every rank
    epoch_seconds: float = 0.0
    nan_loss_in_epoch: int = 0  # the training loss is NaN from this epoch on (a divergence)


@dataclasses.dataclass
class ToyState:
    model: torch.nn.Module
    settings: ToySettings
    rank: int
    data: str | None = None
    closed: bool = False


class ToyBenchmark(Benchmark):
    name = "toy"
    metric = "accuracy"
    Settings = ToySettings
    State = ToyState

    def __init__(self):
        self.calls: list[str] = []

    def prepare(self, source, data_dir, settings) -> None:
        (Path(data_dir) / "data.txt").write_text(Path(source).read_text())

    def generate_small(self, data_dir: Path, settings, seed: int) -> None:
        (Path(data_dir) / "data.txt").write_text("toy data\n")

    def init(self, preset, env, artifacts):
        self.calls.append("init")
        settings = preset.settings
        if settings.touch_data_in_init:
            env.dataset.root  # noqa: B018 - must raise: data is not available before run_start
        time.sleep(settings.init_seconds)
        model = env.wrap_model(torch.nn.Linear(2, 1))
        return ToyState(model=model, settings=settings, rank=env.rank)

    def train_step(self, state, batch):
        return state.model(batch).sum()

    def example_batch(self, state, split="train"):
        return ExampleBatch(torch.zeros(4, 2), 4)

    def eval_step(self, state, batch):
        return state.model(batch)

    def close(self, state):
        self.calls.append("close")
        state.closed = True

    def open_data(self, state, dataset):
        self.calls.append("open_data")
        state.data = (dataset.root / "data.txt").read_text()

    def train_epoch(self, state, epoch, progress):
        self.calls.append(f"train {epoch}")
        faulty = state.settings.fault_rank in (-1, state.rank)
        if epoch == state.settings.crash_in_epoch and faulty:
            raise RuntimeError("the toy crashed")
        if epoch == state.settings.exit_in_epoch and faulty:
            os._exit(3)
        if epoch == state.settings.signal_in_epoch and faulty:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives during this sleep
        time.sleep(state.settings.epoch_seconds)
        progress(100, 100)
        diverged = 0 < state.settings.nan_loss_in_epoch <= epoch
        return TrainStats(num_samples=100, loss=float("nan") if diverged else 1.0 / epoch)

    def evaluate(self, state, epoch):
        self.calls.append(f"eval {epoch}")
        return EvalResult({"accuracy": epoch / 10})

    def logged_hparams(self, preset, env):
        return {"train_samples": 100, "eval_samples": 10}


def toy_preset(target=0.3, max_epochs=5, **settings) -> Preset:
    return Preset(path="toy.yaml", benchmark="toy", name="small", ruleset="0.7.0", division="closed",
                  target=quality.as_target(target, "accuracy"), max_epochs=max_epochs, eval=types.MappingProxyType({}),
                  hparams=types.MappingProxyType({"global_batch_size": 8, "opt_name": "sgd"}),
                  settings=ToySettings(**settings))


def toy_rules(every_epochs=1) -> BenchmarkRules:
    return BenchmarkRules(ruleset="0.7.0", benchmark="toy", metric="accuracy", direction="higher",
                          target={"accuracy": 0.3}, runs=3, aggregation={"method": "olympic", "max_non_converged": 1},
                          eval=EvalCadence(every_epochs=every_epochs), reference_minutes=None)
