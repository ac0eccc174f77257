"""SSD small preset: can the loader keep the model fed? Pipeline alone vs training step.

    python perf/ssd_throughput.py [--hparams hparams/ssd/small.yaml] [--images 160] [--pairs 3]

In one process, on the preset's generated data (made once, untimed, in the cache), each
pair times (a) the timed input pipeline alone (``TrainImages``: decode, IoU crop, flip,
resize, jitter, normalise, encode against 8,732 boxes) on ``--images`` images, and (b)
``train_step`` on batches of those pipeline outputs (forward, loss, backward, SGD step),
alternating which goes first. Prints images/s of each (medians) and
``pipeline_over_training=<median of per-pair ratios>``: above 1 with one loader worker per
training process means the loader keeps the model fed on a 2-core machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

os.environ.setdefault("MLPERF_TRAIN_DROP_CACHES", "0")

from mlperf_train.benchmark import Artifacts, Dataset  # noqa: E402
from mlperf_train.distributed import RunEnv  # noqa: E402
from mlperf_train.series import SeriesConfig, load_series_preset, resolve_data  # noqa: E402
from references.ssd.data import TrainImages  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hparams", type=Path, default=Path("hparams/ssd/small.yaml"))
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    bench, preset = load_series_preset(SeriesConfig(benchmark="ssd", hparams=args.hparams))
    env = RunEnv()
    data = resolve_data(bench, preset, SeriesConfig(benchmark="ssd", hparams=args.hparams), env)
    env.seed_everything(0)
    state = bench.init(preset, env, Artifacts(data / "artifacts"))
    dataset = Dataset(data)
    dataset._open_for_run()
    bench.open_data(state, dataset)
    items = TrainImages(state.train_index, preset.settings.image_size, state.max_samples, state.dboxes)
    batch_size = int(preset.hparams["global_batch_size"])
    count = min(args.images, len(items))

    def pipeline():
        start = time.perf_counter()
        samples = [items[i] for i in range(count)]
        return count / (time.perf_counter() - start), samples

    def training(samples):
        batches = [tuple(torch.stack(parts) for parts in zip(*samples[i:i + batch_size]))
                   for i in range(0, len(samples) - batch_size + 1, batch_size)]
        start = time.perf_counter()
        for batch in batches:
            bench.train_step(state, batch)
        return sum(len(b[0]) for b in batches) / (time.perf_counter() - start)

    _, samples = pipeline()  # warm-up (file cache, allocator)
    training(samples[:batch_size])
    pipe, train, ratios = [], [], []
    for pair in range(args.pairs):
        if pair % 2 == 0:
            p, samples = pipeline()
            t = training(samples)
        else:
            t = training(samples)
            p, samples = pipeline()
        pipe.append(p)
        train.append(t)
        ratios.append(p / t)
    bench.close(state)
    print(f"threads={torch.get_num_threads()} images={count} batch={batch_size}")
    print(f"pipeline_images_per_s={statistics.median(pipe):.1f} training_images_per_s={statistics.median(train):.1f}")
    print(f"pipeline_over_training={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
