"""Transformer (big) on WMT17 en-de: the harness plug-in (spec shared/spec/transformer.md)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlperf_train.benchmark import Benchmark, EvalResult, ExampleBatch, Logged, TrainStats
from mlperf_train.settings import setting
from references.seq2seq.batching import pad_batch, pad_rows, token_batches
from references.seq2seq.beam_search import beam_search
from references.seq2seq.subword import EOS_ID, Subtokenizer
from references.transformer import data, metric, synthetic
from references.transformer.model import Transformer

def _closed(default, **constraints):
    return setting(default, closed=True, **constraints)


def _positive(default):
    return setting(default, allowed={"min": 1})


@dataclasses.dataclass(frozen=True)
class TransformerSettings:
    # model: REF --params=big (spec §2)
    d_model: int = _closed(1024, allowed={"min": 1})
    num_heads: int = _closed(16, allowed={"min": 1})
    ffn_inner: int = _closed(4096, allowed={"min": 1})
    num_layers: int = _closed(6, allowed={"min": 1})
    dropout: float = _closed(0.1, allowed={"min": 0.0, "max": 1.0})   # layer postprocess and input dropout
    attention_dropout: float = _closed(0.1, allowed={"min": 0.0, "max": 1.0})
    relu_dropout: float = _closed(0.1, allowed={"min": 0.0, "max": 1.0})
    label_smoothing: float = _closed(0.1, allowed={"min": 0.0, "max": 1.0})
    vocab_size: int = _closed(33708, allowed={"min": 4})   # embedding rows; the prepared vocabulary must fit
    # vocabulary (prepare, untimed)
    vocab_min_count: int = _closed(6, allowed={"min": 1})
    vocab_file_byte_limit: int = _closed(1_000_000, allowed={"min": 1})
    num_train_shards: int = _positive(100)
    # input pipeline; the rules allow either method for max_sequence_length (spec §1)
    max_sequence_method: str = setting("discard", allowed={"one_of": ["discard", "truncate"]})
    bucket_min_boundary: int = _positive(8)
    bucket_boundary_scale: float = setting(1.1, allowed={"greater_than": 1.0})
    shard_cycle_length: int = _positive(4)
    # evaluation (spec §2 "Eval decode")
    beam_size: int = _closed(4, allowed={"min": 1})
    length_penalty_alpha: float = _closed(0.6, allowed={"min": 0.0})
    extra_decode_length: int = _closed(50, allowed={"min": 0})
    eval_batch_size: int = _positive(32)
    # generated small data (generate_small only)
    synth_train_pairs: int = _positive(30000)
    synth_dev_pairs: int = _positive(1000)
    synth_test_pairs: int = _positive(1000)
    synth_max_words: int = _positive(25)


@dataclasses.dataclass
class TransformerState:
    preset: Any
    env: Any
    settings: TransformerSettings
    hp: Any                                     # preset.hparams
    model: torch.nn.Module                      # what training calls (DDP on several ranks)
    raw_model: Transformer                      # evaluation and decoding
    optimizer: torch.optim.Optimizer
    step: int = 0                               # global optimizer steps (the schedule's clock)
    tokenizer: Subtokenizer | None = None
    train: data.TrainingSet | None = None
    test_ids: list | None = None
    test_refs: list | None = None
    dev_src: Any = None
    dev_tgt: Any = None
    my_dev: list | None = None                  # this rank's dev (newstest2013) pairs
    my_test: list | None = None                 # this rank's test (newstest2014) sentences


def learning_rate(step: int, multiplier: float, d_model: int, warmup_steps: int) -> float:
    """L * d^-1/2 * min(1, s/W) * max(s, W)^-1/2 at global step s (0 for the first update)."""
    warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
    return multiplier * d_model ** -0.5 * warmup * max(step, warmup_steps, 1) ** -0.5


class TransformerBenchmark(Benchmark):
    name = "transformer"
    metric = "BLEU"
    Settings = TransformerSettings
    State = TransformerState

    def prepare(self, source, data_dir, settings):
        data.prepare(Path(source), Path(data_dir), settings)

    def generate_small(self, data_dir, settings, seed=0):
        raw = Path(data_dir) / "raw"
        synthetic.write_raw_corpus(raw, settings.synth_train_pairs, settings.synth_dev_pairs,
                                   settings.synth_test_pairs, seed, settings.synth_max_words)
        self.prepare(raw, data_dir, settings)

    def init(self, preset, env, artifacts):
        s, hp = preset.settings, preset.hparams
        model = Transformer(s.vocab_size, s.d_model, s.num_heads, s.ffn_inner, s.num_layers,
                            s.dropout, s.attention_dropout, s.relu_dropout).to(env.device)
        # Lazy Adam updates only the rows of a sparse gradient; here the embedding is also the
        # output projection, so every row has a gradient at every step and Lazy Adam is Adam.
        optimizer = torch.optim.Adam(model.parameters(), lr=0.0, eps=hp["opt_adam_epsilon"],
                                     betas=(hp["opt_adam_beta_1"], hp["opt_adam_beta_2"]))
        return TransformerState(preset=preset, env=env, settings=s, hp=hp, model=env.wrap_model(model),
                                raw_model=model, optimizer=optimizer)

    def open_data(self, state, dataset):
        s, root = state.settings, Path(dataset.root)
        state.tokenizer = Subtokenizer.load(root / data.VOCAB_FILE)
        if len(state.tokenizer) > s.vocab_size:
            raise ValueError(f"{root}: vocabulary of {len(state.tokenizer)} > settings.vocab_size {s.vocab_size}")
        state.train = data.TrainingSet(root, state.hp["max_sequence_length"], s.max_sequence_method)
        state.test_ids, state.test_refs = data.load_test_set(root, state.tokenizer)
        state.dev_src, state.dev_tgt, dev_ids = data.load_dev_set(root, state.hp["max_sequence_length"])
        state.my_dev = dev_ids[state.env.rank::state.env.world_size]
        # The reference decodes sentences sorted by word count, longest first; the ranks
        # take turns down that list, so each gets long and short ones.
        raw_sources = data.read_lines(root / data.TEST_FILES[0])
        order = sorted(range(len(state.test_ids)), key=lambda i: -len(raw_sources[i].split()))
        state.my_test = order[state.env.rank::state.env.world_size]

    def logged_data_keys(self, state):
        return {"train_samples": state.train.num_pairs, "eval_samples": len(state.test_ids)}

    def logged_hparams(self, preset, env):
        return {"max_sequence_length": Logged(preset.hparams["max_sequence_length"],
                                              {"method": preset.settings.max_sequence_method})}

    def rank_batches(self, state, epoch) -> list:
        """This rank's batches of the epoch. Every rank builds the same list of batches of
        at most ``global_batch_size / world_size`` padded tokens; step j gives rank r batch
        j * world_size + r (the last incomplete step is dropped)."""
        s, hp, env = state.settings, state.hp, state.env
        batches = state.train.epoch_batches(env.seed, epoch, hp["global_batch_size"] // env.world_size,
                                            s.shard_cycle_length, s.bucket_min_boundary, s.bucket_boundary_scale)
        usable = len(batches) - len(batches) % env.world_size
        return batches[env.rank:usable:env.world_size]

    def train_step(self, state, batch) -> torch.Tensor:
        """One optimizer step on ``batch`` = (source ids, target ids), each (b, length) int64
        padded with 0; returns the summed label-smoothed loss as a device tensor (the target
        token count is ``(target != 0).sum()``; reading either would synchronise)."""
        s, hp, device = state.settings, state.hp, state.env.device
        src, tgt = (part.to(device) for part in batch)
        lr = learning_rate(state.step, hp["opt_base_learning_rate"], s.d_model, hp["opt_learning_rate_warmup_steps"])
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        state.optimizer.zero_grad(set_to_none=True)
        total, count = metric.label_smoothed_loss(state.model(src, tgt), tgt, s.label_smoothing)
        (total / count.clamp(min=1)).backward()
        state.optimizer.step()
        state.step += 1
        return total.detach()

    def batch_of(self, state, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """The padded (source, target) of the training pairs ``indices``."""
        truncate = state.train.max_length if state.settings.max_sequence_method == "truncate" else None
        return pad_batch(state.train.src, indices, truncate), pad_batch(state.train.tgt, indices, truncate)

    def train_epoch(self, state, epoch, progress):
        state.model.train()
        sums = torch.zeros(2, dtype=torch.float64, device=state.env.device)  # loss, target tokens
        num_samples = 0
        batches = self.rank_batches(state, epoch)
        total = sum(len(indices) for indices in batches)
        for indices in batches:
            src, tgt = self.batch_of(state, indices)
            loss = self.train_step(state, (src, tgt))
            sums += torch.stack([loss.double(), (tgt != 0).sum().double().to(loss.device)])
            num_samples += len(indices)
            progress(num_samples, total, loss)
        loss_sum, token_count = sums.tolist()
        return TrainStats(num_samples=num_samples, loss=loss_sum / max(token_count, 1))

    def example_batch(self, state, split="train"):
        """Random token ids of the reference's shapes: a training batch of sentences of
        ``max_sequence_length`` tokens filling this rank's share of the token budget, or an
        evaluation batch of ``eval_batch_size`` source sentences of 32 tokens."""
        s, hp, env = state.settings, state.hp, state.env
        generator = torch.Generator().manual_seed(0)
        if split == "eval":
            src = torch.randint(3, s.vocab_size, (s.eval_batch_size, 32), generator=generator)
            src[:, -1] = EOS_ID
            return ExampleBatch(src, s.eval_batch_size)
        length = int(hp["max_sequence_length"])
        rows = max(1, int(hp["global_batch_size"]) // env.world_size // length)
        src = torch.randint(3, s.vocab_size, (rows, length), generator=generator)
        tgt = torch.randint(3, s.vocab_size, (rows, length), generator=generator)
        src[:, -1] = tgt[:, -1] = EOS_ID
        return ExampleBatch((src, tgt), rows)

    @torch.no_grad()
    def eval_step(self, state, batch):
        """Beam-search output ids of a batch of source ids, shape (b, decoded length)."""
        state.raw_model.eval()
        return self.decode(state, batch.to(state.env.device))

    @torch.no_grad()
    def evaluate(self, state, epoch):
        s, env, model = state.settings, state.env, state.raw_model
        model.eval()
        hypotheses, references = [], []
        for start in range(0, len(state.my_test), s.eval_batch_size):
            chunk = state.my_test[start:start + s.eval_batch_size]
            hypotheses += self.translate(state, [state.test_ids[i] for i in chunk])
            references += [state.test_refs[i] for i in chunk]
        stats = torch.from_numpy(metric.bleu_statistics(hypotheses, references))
        bleu = metric.bleu_points(env.all_reduce_sum(stats.to(env.device)).cpu().numpy())
        dev_loss = self.dev_loss(state)
        return EvalResult({"bleu_uncased": bleu}, extras={"eval_loss": dev_loss} if np.isfinite(dev_loss) else {})

    def dev_loss(self, state) -> float:
        """The reference also reports the loss on newstest2013 after each epoch (not part of
        the metric, but on the clock): label-smoothed, per target token, no dropout."""
        s, env, model = state.settings, state.env, state.raw_model
        lengths = np.maximum(state.dev_src.lengths, state.dev_tgt.lengths)
        sums = torch.zeros(2, dtype=torch.float64)
        for indices in token_batches(state.my_dev, lengths, state.hp["global_batch_size"] // env.world_size,
                                     state.hp["max_sequence_length"], s.bucket_min_boundary, s.bucket_boundary_scale):
            src = pad_batch(state.dev_src, indices).to(env.device)
            tgt = pad_batch(state.dev_tgt, indices).to(env.device)
            total, count = metric.label_smoothed_loss(model(src, tgt), tgt, s.label_smoothing)
            sums += torch.stack([total.double(), count.double()]).cpu()
        sums = env.all_reduce_sum(sums.to(env.device)).cpu()
        return float(sums[0] / sums[1]) if sums[1] > 0 else float("nan")

    def decode(self, state, src: torch.Tensor) -> torch.Tensor:
        """Beam search from padded source ids (b, length); returns ids (b, decoded length)."""
        s, model = state.settings, state.raw_model
        static = model.start_cache(*model.encode(src))
        static = {name: value.repeat_interleave(s.beam_size, 0) for name, value in static.items()}

        def step_fn(last_ids, step, cache):
            return model.decode_step(last_ids, step, cache, static)

        ids, _ = beam_search(step_fn, {}, src.shape[0], s.beam_size, src.shape[1] + s.extra_decode_length,
                             s.length_penalty_alpha, EOS_ID, device=src.device)
        return ids

    def translate(self, state, sources: list[list[int]]) -> list[str]:
        """Beam search, output cut at the first EOS, subtokenizer decode."""
        ids = self.decode(state, pad_rows(sources).to(state.env.device))
        texts = []
        for row in ids.tolist():
            texts.append(state.tokenizer.decode(row[:row.index(EOS_ID)] if EOS_ID in row else row))
        return texts


BENCHMARK = TransformerBenchmark()
