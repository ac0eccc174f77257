"""Calibrate the NCF small preset's target: HR@10 per epoch and time to each target, per seed.

    python perf/ncf_calibrate.py [--hparams hparams/ncf/small.yaml] [--seeds 0-9] [--targets 0.60,0.62]

Each seed runs through the engine (clock, logging, data opened on the clock) with an
unreachable target, for the preset's ``max_epochs``, so every evaluation happens. A run
with target T would have stopped at the first evaluation with HR >= T: its time to train
is that evaluation's ``eval_accuracy`` time minus ``run_start``, read from the log.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("MLPERF_TRAIN_DROP_CACHES", "0")

from mlperf_train import engine  # noqa: E402
from mlperf_train.distributed import RunEnv  # noqa: E402
from mlperf_train.mllog import ResultLog  # noqa: E402
from mlperf_train.rules import benchmark_rules  # noqa: E402
from mlperf_train.series import SeriesConfig, load_series_preset, resolve_data  # noqa: E402


def seed_list(text: str) -> list[int]:
    if "-" in text:
        first, last = map(int, text.split("-"))
        return list(range(first, last + 1))
    return [int(s) for s in text.split(",")]


def one_seed(bench, preset, rules, env, data, seed: int, folder: Path) -> dict:
    log = ResultLog(folder / f"result_{seed}.txt")
    engine.run_once(bench, preset, rules, env, log, seed, data,
                    engine.Submission("calibration", "calibration", "closed"), cache_cleared=False)
    path = log.close(finished=True)
    events = [json.loads(line.split(":::MLLOG ", 1)[1]) for line in path.read_text().splitlines()]
    start = next(e["time_ms"] for e in events if e["key"] == "run_start")
    evals = [e for e in events if e["key"] == "eval_accuracy"]
    return {"seed": seed, "hr": [e["value"] for e in evals],
            "seconds": [(e["time_ms"] - start) / 1000.0 for e in evals]}


def time_to(target: float, run: dict) -> float | None:
    return next((s for hr, s in zip(run["hr"], run["seconds"]) if hr >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams", type=Path, default=None)
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--targets", default="0.58,0.60,0.61,0.62,0.63")
    parser.add_argument("--json", type=Path, default=None, help="also write the per-seed runs here")
    args = parser.parse_args()

    env = RunEnv()
    config = SeriesConfig(benchmark="ncf", hparams=args.hparams)
    bench, preset = load_series_preset(config)
    rules = benchmark_rules("ncf", preset.ruleset)
    data = resolve_data(bench, preset, config, env)
    probe = dataclasses.replace(preset, target=float("inf"))
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in seed_list(args.seeds):
            runs.append(one_seed(bench, probe, rules, env, data, seed, Path(folder)))
            run = runs[-1]
            print(f"seed {seed}: HR@10 by epoch " + " ".join(f"{hr:.3f}" for hr in run["hr"])
                  + f"  (eval after epoch 1 at {run['seconds'][0]:.1f} s, last at {run['seconds'][-1]:.1f} s)",
                  flush=True)
    print(f"\n{preset.path}: preset target {preset.target}, max_epochs {preset.max_epochs}")
    for target in (float(t) for t in args.targets.split(",")):
        times = [time_to(target, run) for run in runs]
        reached = [t for t in times if t is not None]
        epochs = [next(i + 1 for i, hr in enumerate(run["hr"]) if hr >= target)
                  for run in runs if time_to(target, run) is not None]
        shown = " ".join("-" if t is None else f"{t:.1f}" for t in times)
        summary = (f"median {statistics.median(reached):.1f} s, max {max(reached):.1f} s, "
                   f"epochs {min(epochs)}-{max(epochs)}") if reached else "none"
        print(f"target {target:.3f}: {len(reached)}/{len(runs)} reached; {summary}; seconds per seed: {shown}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
