"""Calibrate a ResNet small preset: top-1 after every epoch for several seeds.

    python perf/resnet_calibrate.py [--hparams FILE] [--seeds 0-4] [--epochs N]

Runs the preset through the engine (target set out of reach, an evaluation every epoch)
for each seed and prints one line per seed: the top-1 curve and the seconds on the clock
at each evaluation. Pick the target a few points below the median where the curves level
off (spec §9), then check the time to target with ``mlperf-train run resnet --runs 5``.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import yaml

os.environ.setdefault("MLPERF_TRAIN_DROP_CACHES", "0")

from mlperf_train.cli import main as cli  # noqa: E402
from mlperf_train.hparams import HPARAMS_DIR  # noqa: E402


def seeds_of(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams", type=Path, default=HPARAMS_DIR / "resnet" / "small.yaml")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--epochs", type=int, default=0, help="default: the preset's max_epochs")
    args = parser.parse_args()
    doc = yaml.safe_load(args.hparams.read_text())
    doc.update(target=0.999, eval={"every_epochs": 1})
    doc["max_epochs"] = args.epochs or doc["max_epochs"]
    with tempfile.TemporaryDirectory() as scratch:
        preset = Path(scratch) / "calibrate.yaml"
        preset.write_text(yaml.safe_dump(doc))
        for seed in seeds_of(args.seeds):
            out = Path(scratch) / f"seed{seed}"
            cli(["run", "resnet", "--hparams", str(preset), "--runs", "1", "--seed", str(seed),
                 "--output", str(out), "--system", "calibrate"])
            events = [json.loads(line.split(":::MLLOG ", 1)[1])
                      for line in (out / "calibrate" / "resnet" / "result_0.txt").read_text().splitlines()]
            start = next(e["time_ms"] for e in events if e["key"] == "run_start")
            curve = [(e["metadata"]["epoch_num"], e["value"], (e["time_ms"] - start) / 1000)
                     for e in events if e["key"] == "eval_accuracy"]
            print(f"seed {seed}: " + "  ".join(f"e{ep} {acc:.3f} @{t:.0f}s" for ep, acc, t in curve), flush=True)


if __name__ == "__main__":
    main()
