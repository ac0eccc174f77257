"""GNMT on WMT16 en-de: the harness plug-in (spec shared/spec/gnmt.md)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlperf_train.benchmark import Benchmark, EvalResult, ExampleBatch, Logged, TrainStats
from mlperf_train.settings import setting
from references.gnmt import data, metric, prepare, synthetic
from references.gnmt.beam_search import beam_search
from references.gnmt.model import GNMT, REVISIONS
from references.seq2seq.batching import pad_rows


def _closed(default, **constraints):
    return setting(default, closed=True, **constraints)


def _positive(default):
    return setting(default, allowed={"min": 1})


@dataclasses.dataclass(frozen=True)
class GNMTSettings:
    # model (spec §2); "v0.5" is [R05]'s dropout placement and PyTorch's default init
    revision: str = _closed("v0.6", reference={"0.5.0": "v0.5"}, allowed={"one_of": list(REVISIONS)})
    hidden_size: int = _closed(1024, allowed={"min": 1})
    num_layers: int = _closed(4, allowed={"min": 2})
    dropout: float = _closed(0.2, allowed={"min": 0.0, "max": 1.0})
    init_weight: float = _closed(0.1, allowed={"min": 0.0})           # U(-w, w), revision v0.6
    vocab_size: int = _closed(32317, allowed={"min": 5})              # embedding rows; the vocabulary must fit
    # loss and optimizer (spec §3)
    label_smoothing: float = _closed(0.1, allowed={"min": 0.0, "max": 1.0})
    grad_clip_norm: float = _closed(5.0, allowed={"greater_than": 0.0})
    # data (spec §1, §3)
    bpe_merges: int = _closed(32000, allowed={"min": 1})
    min_length_train: int = _closed(0, allowed={"min": 0})
    max_length_val: int = _closed(125, allowed={"min": 1})
    num_buckets: int = _closed(5, allowed={"min": 1})
    # evaluation (spec §2 "Beam search", §5)
    beam_size: int = _closed(5, allowed={"min": 1})
    length_norm_factor: float = _closed(0.6, allowed={"min": 0.0})
    coverage_penalty_factor: float = _closed(0.1, allowed={"min": 0.0})
    max_length_test: int = _closed(150, allowed={"min": 2})
    eval_batch_size: int = _positive(128)                            # [R05] decoded 32 at a time
    # intra-op CPU threads (0: torch's default)
    cpu_threads: int = setting(0, allowed={"min": 0})
    # generated small data (generate_small only, spec §9)
    synth_train_pairs: int = _positive(30000)
    synth_dev_pairs: int = _positive(1000)
    synth_test_pairs: int = _positive(1000)
    synth_max_words: int = _positive(25)


@dataclasses.dataclass
class GNMTState:
    preset: Any
    env: Any
    settings: GNMTSettings
    hp: Any                                     # preset.hparams
    model: torch.nn.Module                      # what training calls (DDP on several ranks)
    raw_model: GNMT                             # evaluation and decoding
    optimizer: torch.optim.Optimizer
    step: int = 0                               # optimizer updates so far (the schedule's clock)
    vocab: data.Vocabulary | None = None
    train: data.ParallelSet | None = None
    buckets: np.ndarray | None = None
    epoch_seeds: list | None = None
    dev: data.ParallelSet | None = None
    test_ids: list | None = None
    test_refs: list | None = None
    my_test: list | None = None                 # this rank's test sentences, longest first
    my_dev: np.ndarray | None = None            # this rank's dev pairs
    threads_before: int = 0                     # intra-op threads to restore at close (0: unchanged)


def learning_rate(step: int, base: float, warmup_steps: int = 0, remain_steps: int | None = None,
                  decay_interval: int = 1, decay_steps: int = 4, decay_factor: float = 0.5) -> float:
    """[R06] ``WarmupMultiStepLR`` at update ``step`` (1-based: the scheduler steps before
    each optimizer step): base * 0.01 ** ((W - s) / W) for s <= W; from ``remain_steps``
    base * factor ** min((s - remain) // interval + 1, decay_steps); else base. Without
    ``remain_steps`` (v0.5) there is no decay."""
    if step <= warmup_steps:
        return base * 0.01 ** ((warmup_steps - step) / warmup_steps)
    if remain_steps is not None and step >= remain_steps:
        return base * decay_factor ** min((step - remain_steps) // decay_interval + 1, decay_steps)
    return base


def schedule_for(steps_per_epoch: int, epochs: int, remain_fraction: float = 0.666) -> dict[str, int]:
    """The [R06] defaults for a run of ``epochs`` x ``steps_per_epoch`` updates: remain =
    int(0.666 T), interval = (T - remain) // 4 (what a hparams file states as numbers)."""
    total = steps_per_epoch * epochs
    remain = int(remain_fraction * total)
    return {"opt_learning_rate_remain_steps": remain, "opt_learning_rate_decay_interval": max(1, (total - remain) // 4)}


class GNMTBenchmark(Benchmark):
    name = "gnmt"
    metric = "BLEU"
    Settings = GNMTSettings
    State = GNMTState

    def prepare(self, source, data_dir, settings):
        prepare.prepare(Path(source), Path(data_dir), settings.bpe_merges)

    def generate_small(self, data_dir, settings, seed=0):
        raw = Path(data_dir) / "raw"
        synthetic.write_raw_corpus(raw, settings.synth_train_pairs, settings.synth_dev_pairs,
                                   settings.synth_test_pairs, seed, settings.synth_max_words)
        self.prepare(raw, data_dir, settings)

    def world_size_problems(self, preset, world_size):
        batch = int(preset.hparams["global_batch_size"])
        if batch % world_size:
            return [("hparams.global_batch_size", batch, f"must split evenly over {world_size} processes")]
        return []

    def init(self, preset, env, artifacts):
        s, hp = preset.settings, preset.hparams
        threads_before = 0
        if s.cpu_threads and env.device.type == "cpu":
            threads_before = torch.get_num_threads()
            torch.set_num_threads(s.cpu_threads)
        model = GNMT(s.vocab_size, s.hidden_size, s.num_layers, s.dropout, s.revision, s.init_weight).to(env.device)
        # torch.optim.Adam's update equals the PyTorch < 1.3 one the rules name for these
        # settings (no weight decay, no amsgrad); the README states the argument.
        optimizer = torch.optim.Adam(model.parameters(), lr=hp["opt_base_learning_rate"], betas=(0.9, 0.999),
                                     eps=1e-8, weight_decay=0.0)
        return GNMTState(preset=preset, env=env, settings=s, hp=hp, model=env.wrap_model(model),
                         raw_model=model, optimizer=optimizer, threads_before=threads_before)

    def close(self, state):
        if state.threads_before:
            torch.set_num_threads(state.threads_before)

    def logged_hparams(self, preset, env):
        s = preset.settings
        return {"max_sequence_length": Logged(preset.hparams["max_sequence_length"], {"method": "discard"}),
                "opt_adam_beta_1": 0.9, "opt_adam_beta_2": 0.999, "opt_adam_epsilon": 1e-8,
                "opt_gradient_clip_norm": s.grad_clip_norm, "model_hp_loss_smoothing": s.label_smoothing,
                "eval_hp_beam_size": s.beam_size, "eval_hp_max_sequence_length": s.max_length_test,
                "eval_hp_length_normalization_factor": s.length_norm_factor,
                "eval_hp_coverage_penalty_factor": s.coverage_penalty_factor}

    def open_data(self, state, dataset):
        s, env, root = state.settings, state.env, Path(dataset.root)
        state.vocab = data.Vocabulary.load(root / prepare.vocab_file(s.bpe_merges))
        if len(state.vocab) > s.vocab_size:
            raise ValueError(f"{root}: vocabulary of {len(state.vocab)} > settings.vocab_size {s.vocab_size}")
        max_length = int(state.hp["max_sequence_length"])
        state.train = data.ParallelSet(root / prepare.train_file(s.bpe_merges, "en"),
                                       root / prepare.train_file(s.bpe_merges, "de"), state.vocab,
                                       s.min_length_train, max_length)
        state.buckets = data.bucket_ids(state.train.src.lengths, state.train.tgt.lengths, max_length, s.num_buckets)
        state.epoch_seeds = data.epoch_seeds(env.seed, max(int(state.preset.max_epochs), 1))
        state.dev = data.ParallelSet(root / prepare.dev_file(s.bpe_merges, "en"),
                                     root / prepare.dev_file(s.bpe_merges, "de"), state.vocab, 0, s.max_length_val)
        state.my_dev = np.arange(len(state.dev))[env.rank::env.world_size]
        state.test_ids, state.test_refs = data.load_test_set(root, s.bpe_merges, state.vocab)
        # The reference decodes the test set sorted by source length, longest first; the
        # ranks take turns down that list.
        order = sorted(range(len(state.test_ids)), key=lambda i: -len(state.test_ids[i]))
        state.my_test = order[env.rank::env.world_size]

    def logged_data_keys(self, state):
        return {"preproc_vocab_size": len(state.vocab), "train_samples": self.samples_per_epoch(state),
                "eval_samples": len(state.test_ids)}

    def samples_per_epoch(self, state) -> int:
        """Pairs trained per epoch: each bucket is cut to a multiple of the global batch."""
        batch = int(state.hp["global_batch_size"])
        counts = np.bincount(state.buckets, minlength=state.settings.num_buckets)
        return int((counts // batch * batch).sum())

    def rank_batches(self, state, epoch) -> list[np.ndarray]:
        """This rank's share (a contiguous slice) of every global batch of the epoch."""
        env, batch = state.env, int(state.hp["global_batch_size"])
        seed = state.epoch_seeds[(epoch - 1) % len(state.epoch_seeds)]
        if state.settings.revision == "v0.5":
            lengths = state.train.src.lengths + state.train.tgt.lengths
            batches = data.epoch_batches_v05(lengths, batch, seed)
        else:
            batches = data.epoch_batches(state.buckets, state.settings.num_buckets, batch, seed)
        local = batch // env.world_size
        return [b[env.rank * local:(env.rank + 1) * local] for b in batches]

    def batch_of(self, pairs: data.ParallelSet, indices) -> tuple[torch.Tensor, ...]:
        """(src, src lengths, decoder inputs, targets) for ``indices``, sorted by source
        length, longest first (the reference's collate, for the packed encoder)."""
        indices = sorted(indices, key=lambda i: -len(pairs.src.get(int(i))))
        src = pad_rows([pairs.src.get(int(i)) for i in indices])
        tgt = pad_rows([pairs.tgt.get(int(i)) for i in indices])
        lengths = torch.tensor([len(pairs.src.get(int(i))) for i in indices])
        return src, lengths, tgt[:, :-1], tgt[:, 1:]

    def train_step(self, state, batch) -> torch.Tensor:
        """One update on ``batch`` = (src, src lengths, decoder inputs, targets); the loss is
        summed over tokens and divided by this rank's sentences (DDP's mean over ranks makes
        it the global batch's). Returns that loss, detached."""
        s, hp, device = state.settings, state.hp, state.env.device
        src, lengths, tgt_in, tgt_out = (part.to(device) for part in batch)
        state.step += 1
        lr = learning_rate(state.step, hp["opt_base_learning_rate"], int(hp.get("opt_learning_rate_warmup_steps", 0)),
                           hp.get("opt_learning_rate_remain_steps"), int(hp.get("opt_learning_rate_decay_interval", 1)),
                           int(hp.get("opt_learning_rate_decay_steps", 4)),
                           float(hp.get("opt_learning_rate_decay_factor", 0.5)))
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        state.optimizer.zero_grad(set_to_none=True)
        total, _ = metric.label_smoothed_loss(state.model(src, lengths, tgt_in), tgt_out, s.label_smoothing)
        loss = total / src.shape[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(state.raw_model.parameters(), s.grad_clip_norm)
        state.optimizer.step()
        return loss.detach()

    def train_epoch(self, state, epoch, progress):
        state.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=state.env.device)
        num_samples = 0
        batches = self.rank_batches(state, epoch)
        total = sum(len(b) for b in batches)
        for indices in batches:
            loss = self.train_step(state, self.batch_of(state.train, indices))
            loss_sum += loss.double()
            num_samples += len(indices)
            progress(num_samples, total, loss)
        return TrainStats(num_samples=num_samples, loss=float(loss_sum) / max(len(batches), 1))

    def example_batch(self, state, split="train"):
        """Random ids of the reference's shapes: this rank's share of a global batch of
        ``max_sequence_length``-token pairs, or ``eval_batch_size`` 32-token sources."""
        s, hp, env = state.settings, state.hp, state.env
        generator = torch.Generator().manual_seed(0)
        rows = s.eval_batch_size if split == "eval" else int(hp["global_batch_size"]) // env.world_size
        length = 32 if split == "eval" else int(hp["max_sequence_length"])
        src = torch.randint(4, s.vocab_size, (rows, length), generator=generator)
        src[:, 0], src[:, -1] = data.BOS_ID, data.EOS_ID
        lengths = torch.full((rows,), length)
        if split == "eval":
            return ExampleBatch((src, lengths), rows)
        tgt = torch.randint(4, s.vocab_size, (rows, length), generator=generator)
        tgt[:, 0], tgt[:, -1] = data.BOS_ID, data.EOS_ID
        return ExampleBatch((src, lengths, tgt[:, :-1], tgt[:, 1:]), rows)

    @torch.no_grad()
    def eval_step(self, state, batch):
        """Beam-search output ids (b, max_length_test) of (src, src lengths)."""
        state.raw_model.eval()
        src, lengths = batch
        return self.decode(state, src.to(state.env.device), lengths)[0]

    def decode(self, state, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, model = state.settings, state.raw_model
        static = model.encode(src, lengths)
        return beam_search(model.decode_step, static, src.shape[0], s.beam_size, s.max_length_test, data.BOS_ID,
                           data.EOS_ID, s.length_norm_factor, s.coverage_penalty_factor, src.shape[1],
                           device=src.device)

    def translate(self, state, sources: list[list[int]], detokenize: metric.Detokenizer) -> list[str]:
        """Beam search, output cut at EOS, BPE joined, Moses-detokenised."""
        src = pad_rows(sources).to(state.env.device)
        ids, _ = self.decode(state, src, torch.tensor([len(x) for x in sources]))
        texts = []
        for row in ids.tolist():
            row = row[1:row.index(data.EOS_ID)] if data.EOS_ID in row else row[1:]
            texts.append(detokenize(metric.join_bpe(state.vocab.pieces(row))))
        return texts

    @torch.no_grad()
    def evaluate(self, state, epoch):
        s, env, model = state.settings, state.env, state.raw_model
        model.eval()
        detokenize = metric.Detokenizer()
        hypotheses, references = [], []
        for start in range(0, len(state.my_test), s.eval_batch_size):
            chunk = state.my_test[start:start + s.eval_batch_size]
            hypotheses += self.translate(state, [state.test_ids[i] for i in chunk], detokenize)
            references += [state.test_refs[i] for i in chunk]
        stats = torch.from_numpy(metric.bleu_statistics(hypotheses, references))
        bleu = metric.bleu_points(env.all_reduce_sum(stats.to(env.device)).cpu().numpy())
        dev_loss = self.dev_loss(state)
        return EvalResult({"bleu_uncased": bleu}, extras={"eval_loss": dev_loss} if math.isfinite(dev_loss) else {})

    def dev_loss(self, state) -> float:
        """Label-smoothed loss per target token on newstest2015+2016 (the reference's
        validation; not part of the metric, but on the clock), no dropout."""
        s, env, model = state.settings, state.env, state.raw_model
        sums = torch.zeros(2, dtype=torch.float64)
        for start in range(0, len(state.my_dev), s.eval_batch_size):
            src, lengths, tgt_in, tgt_out = (t.to(env.device) for t in
                                             self.batch_of(state.dev, state.my_dev[start:start + s.eval_batch_size]))
            total, count = metric.label_smoothed_loss(model(src, lengths, tgt_in), tgt_out, s.label_smoothing)
            sums += torch.stack([total.double(), count.double()]).cpu()
        sums = env.all_reduce_sum(sums.to(env.device)).cpu()
        return float(sums[0] / sums[1]) if sums[1] > 0 else float("nan")


BENCHMARK = GNMTBenchmark()
