"""What the harness costs: the same training inside the engine and bare, side by side.

    python perf/harness_overhead.py [--benchmark ncf] [--epochs 3] [--pairs 21]

Each pair runs the benchmark's small preset for ``--epochs`` epochs (evaluating at the
preset's cadence) once through ``engine.run_once`` (logging, clock, target checks) and once
as a bare loop calling the same Benchmark methods, alternating which goes first. Prints the
median times and ``overhead_ratio=<engine/bare>``; 1.01 means the harness costs 1 %.

On a small CPU preset the runs' own noise (a few %) is larger than the harness's cost, so
the script also times the harness's own work directly, every log call of the engine, and
prints ``harness_own_fraction=<logging seconds / run seconds>``: a bound on the cost that
noise does not blur.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("MLPERF_TRAIN_DROP_CACHES", "0")

from mlperf_train import engine  # noqa: E402
from mlperf_train.benchmark import Artifacts, Dataset, no_progress  # noqa: E402
from mlperf_train.distributed import RunEnv  # noqa: E402
from mlperf_train.mllog import ResultLog  # noqa: E402
from mlperf_train.rules import benchmark_rules  # noqa: E402
from mlperf_train.series import SeriesConfig, load_series_preset, resolve_data  # noqa: E402


class TimedLog(ResultLog):
    """A result log that adds up the time its calls take: the harness's own work."""

    seconds = 0.0

    def _timed(self, method, *args, **kwargs):
        started = time.perf_counter()
        method(self, *args, **kwargs)
        self.seconds += time.perf_counter() - started

    def event(self, *args, **kwargs):
        self._timed(ResultLog.event, *args, **kwargs)

    def start(self, *args, **kwargs):
        self._timed(ResultLog.start, *args, **kwargs)

    def end(self, *args, **kwargs):
        self._timed(ResultLog.end, *args, **kwargs)


def harness_run(bench, preset, rules, env, data, seed, folder: Path) -> tuple[float, float]:
    """(run seconds, seconds spent in the log calls)."""
    log = TimedLog(folder / f"result_{seed}.txt")
    started = time.perf_counter()
    engine.run_once(bench, preset, rules, env, log, seed, data,
                    engine.Submission("perf", "perf", "closed"), cache_cleared=False)
    elapsed = time.perf_counter() - started
    log.close(finished=True)
    return elapsed, log.seconds


def bare_run(bench, preset, rules, env, data, seed) -> float:
    cadence = engine.cadence_for(preset, rules)
    started = time.perf_counter()
    env.seed_everything(seed)
    state = bench.init(preset, env, Artifacts(Path(data) / "artifacts"))
    dataset = Dataset(data)
    dataset._open_for_run()
    bench.open_data(state, dataset)
    for epoch in range(1, preset.max_epochs + 1):
        bench.train_epoch(state, epoch, no_progress)
        if cadence.is_eval_epoch(epoch) or epoch == preset.max_epochs:
            bench.evaluate(state, epoch)
    bench.close(state)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="ncf")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=21)
    args = parser.parse_args()

    env = RunEnv()
    bench, preset = load_series_preset(SeriesConfig(benchmark=args.benchmark))
    # An unreachable target: both sides do exactly the same epochs and evaluations.
    unreachable = {name: float("inf") for name in preset.target}
    preset = dataclasses.replace(preset, target=unreachable, max_epochs=args.epochs)
    rules = benchmark_rules(args.benchmark, preset.ruleset)
    data = resolve_data(bench, preset, SeriesConfig(benchmark=args.benchmark), env)
    print(f"{args.benchmark} small preset, {args.epochs} epochs per run, {args.pairs} pairs, "
          f"torch threads {torch.get_num_threads()}")
    harness, bare, own = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        bare_run(bench, preset, rules, env, data, 0)  # warm-up: page cache, allocator, lazy imports
        for pair in range(args.pairs):
            seed = 1000 + pair
            order = ("harness", "bare") if pair % 2 == 0 else ("bare", "harness")
            for side in order:
                if side == "harness":
                    seconds, logging_seconds = harness_run(bench, preset, rules, env, data, seed, Path(folder))
                    harness.append(seconds)
                    own.append(logging_seconds)
                else:
                    bare.append(bare_run(bench, preset, rules, env, data, seed))
            print(f"pair {pair}: harness {harness[-1]:.3f} s (log calls {own[-1] * 1000:.1f} ms), "
                  f"bare {bare[-1]:.3f} s")
    # Per-pair ratios cancel slow drifts of a shared machine; the median drops outliers.
    ratio = statistics.median(h / b for h, b in zip(harness, bare))
    print(f"median harness {statistics.median(harness):.3f} s, median bare {statistics.median(bare):.3f} s")
    print(f"overhead_ratio={ratio:.4f}")
    print(f"harness_own_fraction={statistics.median(o / h for o, h in zip(own, harness)):.5f}")


if __name__ == "__main__":
    main()
