"""Mask R-CNN small-preset throughput: the input pipeline alone, training steps, evaluation.

    python perf/maskrcnn_throughput.py DATA_DIR [--hparams hparams/maskrcnn/small.yaml] [--batches 20]

DATA_DIR: a folder ``generate_small`` made (the harness caches it under
``$MLPERF_TRAIN_CACHE/data/maskrcnn-*``). Prints images/s of (1) the train loader with no
model, (2) training steps with the real pipeline, (3) evaluation (forward, paste, RLE) and
the share of the evaluation's time spent in each part. Measure on an idle machine; say so
when it is not.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mlperf_train.benchmark import Artifacts, Dataset
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import HPARAMS_DIR, load_preset
from references.maskrcnn.benchmark import BENCHMARK
from references.maskrcnn.metric import detections_of


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--hparams", type=Path, default=HPARAMS_DIR / "maskrcnn" / "small.yaml")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    preset = load_preset(args.hparams, None, "closed", BENCHMARK.Settings, expected_benchmark="maskrcnn")
    env = RunEnv()
    env.seed_everything(0)
    state = BENCHMARK.init(preset, env, Artifacts(args.data / "artifacts"))
    dataset = Dataset(args.data)
    dataset._open_for_run()
    BENCHMARK.open_data(state, dataset)
    state.sampler.set_epoch(1)

    start, images = time.perf_counter(), 0
    for i, batch in enumerate(state.train_loader):
        images += len(batch[1])
        if i + 1 == args.batches:
            break
    print(f"pipeline: {images / (time.perf_counter() - start):.1f} images/s ({images} images)")

    start, images = time.perf_counter(), 0
    for i, batch in enumerate(state.train_loader):
        BENCHMARK.train_step(state, batch)
        images += len(batch[1])
        if i + 1 == args.batches:
            break
    print(f"training: {images / (time.perf_counter() - start):.2f} images/s ({images} images)")

    state.model.eval()
    forward = post = 0.0
    images = 0
    with torch.no_grad():
        for i, (batch, sizes, infos) in enumerate(state.eval_loader):
            t0 = time.perf_counter()
            outputs = state.model(batch, sizes)
            t1 = time.perf_counter()
            detections_of(outputs, sizes, infos, state.val_index.category_of)
            forward, post = forward + t1 - t0, post + time.perf_counter() - t1
            images += len(infos)
            if i + 1 == args.batches:
                break
    print(f"evaluation: {images / (forward + post):.2f} images/s ({images} images); forward {forward:.1f} s, "
          f"paste+RLE {post:.1f} s")
    BENCHMARK.close(state)


if __name__ == "__main__":
    main()
