"""NCF throughput and where the time of an epoch goes.

    python perf/ncf_throughput.py [--hparams hparams/ncf/small.yaml] [--data DIR] [--epochs 2]
                                  [--max-steps N] [--eval-users N] [--profile]

Builds the benchmark state as a run does (init, open_data), then reports:
- training samples/s of ``train_epoch`` (the real method; skipped with ``--max-steps``);
- a phase breakdown of one epoch, timed around each phase of the same loop: the
  per-epoch negative sampling and shuffle, batch assembly, forward + loss, backward,
  optimizer step (``--max-steps`` limits it to the first N global batches, for full scale);
- evaluation users/s of ``evaluate`` (``--eval-users`` evaluates only the first N users);
- with ``--profile``, torch.profiler's top operators over one ``train_epoch``.
Without ``--data`` the preset's generated small dataset is used.
"""
from __future__ import annotations

import argparse
import os
import time
import types
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("MLPERF_TRAIN_DROP_CACHES", "0")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mlperf_train.benchmark import Artifacts, no_progress  # noqa: E402
from mlperf_train.distributed import RunEnv  # noqa: E402
from mlperf_train.series import SeriesConfig, load_series_preset, resolve_data  # noqa: E402


def phased_epoch(state, max_steps: int | None) -> tuple[dict, int]:
    """The loop of NcfBenchmark.train_epoch with a timer around each phase."""
    seconds = defaultdict(float)
    train, model = state.train, state.model

    def timed(phase, fn):
        started = time.perf_counter()
        out = fn()
        seconds[phase] += time.perf_counter() - started
        return out

    timed("negative sampling + shuffle", lambda: train.new_epoch(state.generator))
    batch, total, done = int(state.hparams["global_batch_size"]), train.samples_per_epoch, 0
    model.train()
    for step, start in enumerate(range(0, total, batch)):
        if max_steps is not None and step >= max_steps:
            break
        samples = train.order[start:start + batch]
        users, items, labels = timed("batch assembly", lambda: train.batch(samples))
        for optimizer in state.optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss = timed("forward + loss", lambda: F.binary_cross_entropy_with_logits(
            model(users, items), labels, reduction="sum") / len(samples))
        timed("backward", loss.backward)
        timed("optimizer step", lambda: [o.step() for o in state.optimizers])
        done += len(samples)
    return seconds, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--eval-users", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    env = RunEnv()
    config = SeriesConfig(benchmark="ncf", hparams=args.hparams, data=args.data)
    bench, preset = load_series_preset(config)
    root = resolve_data(bench, preset, config, env)
    env.seed_everything(0)
    state = bench.init(preset, env, Artifacts(root / "artifacts"))
    started = time.perf_counter()
    bench.open_data(state, types.SimpleNamespace(root=root))
    print(f"{preset.path}: {state.meta['num_users']:,} users, {state.meta['num_items']:,} items, "
          f"{state.train.samples_per_epoch:,} samples/epoch, batch {preset.hparams['global_batch_size']}, "
          f"{preset.hparams['opt_name']}, torch threads {torch.get_num_threads()}; "
          f"open_data {time.perf_counter() - started:.2f} s")

    if args.max_steps is None:
        for epoch in range(1, args.epochs + 1):
            started = time.perf_counter()
            stats = bench.train_epoch(state, epoch, no_progress)
            seconds = time.perf_counter() - started
            print(f"train_epoch {epoch}: {seconds:.2f} s, {stats.num_samples / seconds:,.0f} samples/s, "
                  f"loss {stats.loss:.4f}")

    seconds, done = phased_epoch(state, args.max_steps)
    total = sum(seconds.values())
    print(f"phases of one epoch ({done:,} samples, {total:.2f} s timed, {done / total:,.0f} samples/s):")
    for phase, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {phase:28s} {value:7.3f} s  {100 * value / total:5.1f} %")
    steps = total - seconds["negative sampling + shuffle"]
    print(f"  steps alone (without the once-per-epoch sampling): {done / steps:,.0f} samples/s")

    if args.eval_users is not None:
        for name in ("eval_users", "eval_test", "eval_negatives", "eval_distinct"):
            setattr(state, name, getattr(state, name)[:args.eval_users])
    users = len(state.eval_users)
    started = time.perf_counter()
    bench.evaluate(state, 1)
    seconds = time.perf_counter() - started
    print(f"evaluate: {users:,} users x {state.eval_negatives.shape[1] + 1} candidates in {seconds:.2f} s, "
          f"{users / seconds:,.0f} users/s")

    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            bench.train_epoch(state, args.epochs + 1, no_progress)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))


if __name__ == "__main__":
    main()
