"""ResNet input pipeline and training throughput on this machine, in images per second.

    python perf/resnet_throughput.py [--config small|full] [--workers N] [--steps N] [--batch B]

``small``: the small preset (64 px crops, width 16) on its generated dataset.
``full``:  reference shapes (224 px crops of ImageNet-sized JPEGs, ResNet-50 at width 64) on a
           generated dataset of 200-500 px images (ImageNet's median is about 400×350).

Prints three numbers, one process (rank) on the CPU or the first GPU:
- ``pipeline``: train loader alone (read, decode, crop, flip, resize, mean) with N workers;
- ``model``:    forward/backward/update on one batch held in memory (the pipeline's bound);
- ``training``: the two together, as ``train_epoch`` runs them.
The pipeline keeps the model fed when ``pipeline`` > ``model`` and ``training`` ≈ ``model``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
import types
from pathlib import Path

import torch

from mlperf_train.benchmark import Artifacts, Dataset
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import HPARAMS_DIR, load_preset
from references.resnet.benchmark import BENCHMARK


def preset_for(config: str, workers: int, batch: int, cache: Path):
    small = load_preset(HPARAMS_DIR / "resnet" / "small.yaml", settings_class=BENCHMARK.Settings)
    settings = dataclasses.replace(small.settings, num_workers=workers)
    if config == "full":
        settings = dataclasses.replace(BENCHMARK.Settings(), num_workers=workers, num_outputs=11,
                                       synth_train_per_class=40, synth_val_per_class=2,
                                       synth_min_size=200, synth_max_size=500)
    data = cache / f"resnet-throughput-{config}"
    if not data.is_dir():
        print(f"generating {data} (once)", flush=True)
        BENCHMARK.generate_small(data, settings, seed=0)
    hparams = {**small.hparams, "global_batch_size": batch or small.hparams["global_batch_size"]}
    return types.SimpleNamespace(settings=settings, hparams=hparams), data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["small", "full"], default="small")
    parser.add_argument("--workers", type=int, default=1, help="loader processes")
    parser.add_argument("--steps", type=int, default=20, help="batches timed, after 2 warm-up batches")
    parser.add_argument("--batch", type=int, default=0, help="batch size (default: the small preset's)")
    args = parser.parse_args()
    cache = Path(os.environ.get("MLPERF_TRAIN_CACHE", tempfile.gettempdir()))
    preset, data = preset_for(args.config, args.workers, args.batch, cache)
    env = RunEnv.from_environment()
    env.seed_everything(0)
    state = BENCHMARK.init(preset, env, Artifacts(data / "artifacts"))
    dataset = Dataset(data)
    dataset._open_for_run()
    BENCHMARK.open_data(state, dataset)
    batch = preset.hparams["global_batch_size"]
    print(f"config {args.config}: batch {batch}, {args.workers} worker(s), {torch.get_num_threads()} thread(s), "
          f"device {env.device}, {len(state.train_index)} training images", flush=True)

    def timed_loader(steps: int):
        """Seconds for ``steps`` batches after 2 warm-up ones (epochs repeat as needed)."""
        count, epoch, started = 0, 0, None
        while True:
            epoch += 1
            state.sampler.set_epoch(epoch)
            for images, labels in state.train_loader:
                yield images, labels
                count += 1
                if count == 2:
                    started = time.perf_counter()
                if count == steps + 2:
                    yield time.perf_counter() - started
                    return

    def rate(seconds: float) -> float:
        return args.steps * batch / seconds

    items = list(timed_loader(args.steps))
    print(f"pipeline: {rate(items[-1]):8.1f} images/s", flush=True)

    state.ddp_model.train()

    def step(images, labels):  # the reference's own training step
        BENCHMARK.train_step(state, (images, labels))

    def synchronize():
        if env.device.type == "cuda":
            torch.cuda.synchronize()

    images, labels = items[0]
    for _ in range(2):
        step(images, labels)
    synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step(images, labels)
    synchronize()
    print(f"model:    {rate(time.perf_counter() - started):8.1f} images/s", flush=True)

    seconds = None
    for item in timed_loader(args.steps):
        if isinstance(item, float):
            synchronize()
            seconds = item
        else:
            step(*item)
    print(f"training: {rate(seconds):8.1f} images/s", flush=True)
    BENCHMARK.close(state)


if __name__ == "__main__":
    main()
