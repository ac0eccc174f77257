"""Transformer throughput: training tokens/s and beam-search decoding sentences/s.

Runs the reference's own code (``BENCHMARK.init``, ``train_step``, ``translate``) on the
small preset's generated data. Training is timed over ``--steps`` steps after a warm-up;
decoding is timed on the generated newstest2014 once the model has trained
``--decode-after-steps`` steps in all (decoding speed depends on the model: an untrained one
rarely emits EOS and decodes to the length limit; the small preset is near its target after
about 600 steps).

    python perf/transformer_throughput.py [--hparams FILE] [--steps N] [--device cpu|cuda]

With ``--hparams hparams/transformer/reference.yaml`` the big model runs on the same toy
data (with its 33,708-row embedding, so the output layer costs what it costs on WMT;
sentences are shorter than WMT's, about 13 subtokens against about 30).
"""
from __future__ import annotations

import argparse
import dataclasses
import time
import types
from pathlib import Path

import torch

from mlperf_train import datacache
from mlperf_train.benchmark import Artifacts
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import HPARAMS_DIR, load_preset
from references.transformer.benchmark import BENCHMARK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams", type=Path, default=HPARAMS_DIR / "transformer" / "small.yaml")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--decode-after-steps", type=int, default=600)
    parser.add_argument("--decode-sentences", type=int, default=512)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    preset = load_preset(args.hparams, None, "open", BENCHMARK.Settings, expected_benchmark="transformer")
    small = load_preset(HPARAMS_DIR / "transformer" / "small.yaml", None, "open", BENCHMARK.Settings)
    env = RunEnv.from_environment(device=args.device)
    env.seed_everything(1)
    # The data of the small preset, whatever the model: the real WMT data may not be here.
    root = datacache.small_dataset(BENCHMARK, small, env)
    settings = dataclasses.replace(preset.settings, num_train_shards=small.settings.num_train_shards)
    preset = dataclasses.replace(preset, settings=settings)
    state = BENCHMARK.init(preset, env, Artifacts(root / "artifacts"))
    BENCHMARK.open_data(state, types.SimpleNamespace(root=root))
    needed = max(args.warmup_steps + args.steps, args.decode_after_steps)
    batches, epoch = [], 0
    while len(batches) < needed:  # successive epochs, as training would see them
        epoch += 1
        batches += BENCHMARK.rank_batches(state, epoch)
    batches = batches[:needed]
    sync = torch.cuda.synchronize if env.device.type == "cuda" else (lambda: None)

    state.model.train()
    for indices in batches[:args.warmup_steps]:
        BENCHMARK.train_step(state, BENCHMARK.batch_of(state, indices))
    sync()
    start, target_tokens, all_tokens = time.perf_counter(), 0, 0
    for indices in batches[args.warmup_steps:args.warmup_steps + args.steps]:
        src, tgt = BENCHMARK.batch_of(state, indices)
        float(BENCHMARK.train_step(state, (src, tgt)))  # waits for the step, so the timing is honest
        target_tokens += int((tgt != 0).sum())
        all_tokens += int((tgt != 0).sum()) + int((src != 0).sum())
    sync()
    train_seconds = time.perf_counter() - start
    for indices in batches[args.warmup_steps + args.steps:]:  # more training so the decoder stops at EOS
        BENCHMARK.train_step(state, BENCHMARK.batch_of(state, indices))

    state.raw_model.eval()
    chosen = state.my_test[:args.decode_sentences]
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, len(chosen), preset.settings.eval_batch_size):
            part = chosen[first:first + preset.settings.eval_batch_size]
            BENCHMARK.translate(state, [state.test_ids[i] for i in part])
    sync()
    decode_seconds = time.perf_counter() - start

    print(f"preset {preset.name} ({args.hparams}), device {env.device}, torch threads {torch.get_num_threads()}")
    print(f"train: {args.steps} steps of <= {preset.hparams['global_batch_size']} padded tokens in {train_seconds:.1f} s: "
          f"{target_tokens / train_seconds:,.0f} target tokens/s ({all_tokens / train_seconds:,.0f} source+target tokens/s)")
    print(f"decode after {state.step} training steps: {len(chosen)} sentences, beam {preset.settings.beam_size}, batches of "
          f"{preset.settings.eval_batch_size}, in {decode_seconds:.1f} s: {len(chosen) / decode_seconds:,.1f} sentences/s")


if __name__ == "__main__":
    main()
