"""NCF (NeuMF on MovieLens-20M): the harness plug-in (``mlperf_train/benchmark.py``)."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mlperf_train.benchmark import Benchmark, EvalResult, ExampleBatch, ExampleNeedsData, TrainStats
from mlperf_train.settings import setting
from references.ncf import data
from references.ncf.metric import distinct_mask, hit_and_ndcg
from references.ncf.model import NeuMF
from references.ncf.synthetic import write_ratings

@contextlib.contextmanager
def cpu_threads(count: int):
    """Run a block with ``count`` intra-op threads (0: as it is), then restore the
    process's setting, so that other benchmarks of the same process keep theirs."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclasses.dataclass(frozen=True)
class NcfSettings:
    """Defaults are the reference's (spec sections 1-2); ``closed`` ones are fixed in a
    closed-division run of the reference preset."""

    mf_dim: int = setting(64, closed=True, allowed={"min": 1})
    layers: list = setting(default_factory=lambda: [256, 256, 128, 64], closed=True, allowed={"list_of": "int"})
    min_ratings: int = setting(20, closed=True, allowed={"min": 1})
    eval_negatives: int = setting(999, closed=True, allowed={"min": 1})
    train_negatives: int = setting(4, closed=True, allowed={"min": 1})
    # users scored per evaluation step (x 1,000 candidates): memory, not results
    eval_batch_users: int = setting(32, allowed={"min": 1})
    # intra-op CPU threads (0: torch's default). The small model's ops are too small to
    # share: on a busy 2-core machine two spinning OpenMP threads made a run 7-9x slower.
    cpu_threads: int = setting(0, allowed={"min": 0})
    # the synthetic ratings.csv of the small preset (spec section 9)
    synth_users: int = setting(2000, allowed={"min": 2})
    synth_items: int = setting(3000, allowed={"min": 2})
    synth_dim: int = setting(8, allowed={"min": 1})


@dataclasses.dataclass
class NcfState:
    settings: NcfSettings
    hparams: Any
    env: Any
    generator: torch.Generator           # the epoch's negatives and order: same on every rank
    model: torch.nn.Module | None = None  # built in open_data: its size is the data's
    optimizers: list = dataclasses.field(default_factory=list)
    train: data.TrainingSet | None = None
    meta: dict = dataclasses.field(default_factory=dict)
    eval_users: torch.Tensor | None = None
    eval_test: torch.Tensor | None = None
    eval_negatives: torch.Tensor | None = None
    eval_distinct: torch.Tensor | None = None


@dataclasses.dataclass(frozen=True)
class NcfBatch:
    """One global batch's share on this rank: ids (int64, shape (b,)), labels (float32, 1
    for a positive), and the number of samples of the whole global batch (the mean's
    denominator, so that DDP's average over ranks is the one-process loss)."""

    users: torch.Tensor
    items: torch.Tensor
    labels: torch.Tensor
    global_size: int


class NcfBenchmark(Benchmark):
    name = "ncf"
    metric = "HR@10"
    Settings = NcfSettings
    State = NcfState

    # --- data ------------------------------------------------------------------------------
    def prepare(self, source, data_dir, settings):
        source = Path(source)
        csv = source / "ratings.csv" if source.is_dir() else source
        meta = data.prepare_ratings(csv, Path(data_dir), settings.min_ratings, settings.eval_negatives)
        print(f"ncf: {meta['num_users']} users, {meta['num_items']} items, {meta['num_train']} training "
              f"positives, {meta['num_users']} test positives with {settings.eval_negatives} negatives each")

    def generate_small(self, data_dir, settings, seed=0):
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        write_ratings(data_dir / "ratings.csv", settings.synth_users, settings.synth_items,
                      settings.synth_dim, seed)
        data.prepare_ratings(data_dir / "ratings.csv", data_dir, settings.min_ratings, settings.eval_negatives)

    # --- one run ---------------------------------------------------------------------------
    def init(self, preset, env, artifacts):
        # The model's size is the data's (users, items), so it is built in open_data, on the
        # clock, as REF builds it after loading the data.
        generator = torch.Generator(device=env.device).manual_seed(env.seed)
        # The first optimizer built in a process imports torch._dynamo (seconds): a library
        # import belongs to the untimed init, not to open_data where the optimizers are made.
        importlib.import_module("torch._dynamo")
        return NcfState(settings=preset.settings, hparams=preset.hparams, env=env, generator=generator)

    def open_data(self, state, dataset):
        with cpu_threads(state.settings.cpu_threads):
            self._open_data(state, dataset)

    def _open_data(self, state, dataset):
        root, s, env = Path(dataset.root), state.settings, state.env
        meta = state.meta = data.load_meta(root)
        for key, wanted in (("min_ratings", s.min_ratings), ("num_eval_negatives", s.eval_negatives)):
            if meta[key] != wanted:
                raise ValueError(f"{root}: prepared with {key} = {meta[key]}, the settings say {wanted}")
        state.train = data.TrainingSet(root, meta["num_users"], meta["num_items"], s.train_negatives, env.device)
        users = env.shard(meta["num_users"])
        test, negatives = data.load_eval_shard(root, users)
        state.eval_users = torch.arange(users.start, users.stop, device=env.device)
        # int32 ids (embedding lookups take them): half the memory of the 999 x users table
        state.eval_test = torch.from_numpy(test).to(env.device)
        state.eval_negatives = torch.from_numpy(negatives).to(env.device)
        state.eval_distinct = distinct_mask(state.eval_negatives)

        lazy = state.hparams["opt_name"] == "lazy_adam"
        model = NeuMF(meta["num_users"], meta["num_items"], s.mf_dim, tuple(s.layers), sparse=lazy, device=env.device)
        state.model = env.wrap_model(model)
        hp = state.hparams
        adam = dict(lr=hp["opt_base_learning_rate"], betas=(hp["opt_adam_beta_1"], hp["opt_adam_beta_2"]),
                    eps=hp["opt_adam_epsilon"])
        if lazy:  # Lazy Adam: moments and updates only for the embedding rows in the batch
            sparse = [p for e in model.embeddings() for p in e.parameters()]
            dense = [p for m in (model.mlp, model.final) for p in m.parameters()]
            state.optimizers = [torch.optim.SparseAdam(sparse, **adam), torch.optim.Adam(dense, fused=True, **adam)]
        else:  # fused: the same Adam update in one kernel for all tensors (CPU and CUDA)
            state.optimizers = [torch.optim.Adam(model.parameters(), fused=True, **adam)]

    def train_epoch(self, state, epoch, progress):
        with cpu_threads(state.settings.cpu_threads):
            return self._train_epoch(state, epoch, progress)

    def _train_epoch(self, state, epoch, progress):
        env, train = state.env, state.train
        train.new_epoch(state.generator)  # fresh negatives and order, on the clock
        global_batch = int(state.hparams["global_batch_size"])
        total = train.samples_per_epoch
        state.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=env.device)
        num_local = 0
        for start in range(0, total, global_batch):
            # Every rank holds the same order and takes its slice of each global batch.
            samples = env.shard_batch(train.order[start:start + global_batch])
            users, items, labels = train.batch(samples)
            batch_loss = self.train_step(state, NcfBatch(users, items, labels, min(global_batch, total - start)))
            loss_sum += batch_loss
            num_local += len(samples)
            progress(num_local, -(-total // env.world_size), batch_loss)
        return TrainStats(num_samples=num_local, loss=float(loss_sum) / max(num_local, 1))

    def train_step(self, state, batch: NcfBatch):
        """One Adam step on ``batch``; returns the summed (not mean) BCE loss of this rank's
        share as a device tensor."""
        for optimizer in state.optimizers:
            optimizer.zero_grad(set_to_none=True)
        batch_loss = F.binary_cross_entropy_with_logits(state.model(batch.users, batch.items), batch.labels,
                                                        reduction="sum")
        # The mean over the global batch once DDP averages over ranks, so the trajectory
        # is the one-process one even when the last batch does not split evenly.
        (batch_loss * (state.env.world_size / batch.global_size)).backward()
        for optimizer in state.optimizers:
            optimizer.step()
        return batch_loss.detach()

    def example_batch(self, state, split="train"):
        """Random ids within the model's tables (the model exists once the data is open:
        its size is the data's). "train": one global batch's share of (user, item, label);
        "eval": one user's 1 + ``eval_negatives`` candidates."""
        if state.model is None:
            raise ExampleNeedsData("NCF's model is built in open_data (its size is the data's); no example batch before")
        model, env = getattr(state.model, "module", state.model), state.env
        num_users, num_items = model.mf_user.num_embeddings, model.mf_item.num_embeddings
        generator = torch.Generator().manual_seed(0)
        if split == "eval":
            count = state.settings.eval_negatives + 1
            users = torch.full((count,), int(torch.randint(num_users, (1,), generator=generator)))
            items = torch.randint(num_items, (count,), generator=generator)
            return ExampleBatch((users.to(env.device), items.to(env.device)), 1)
        global_batch = int(state.hparams["global_batch_size"])
        share = len(env.shard(global_batch))
        users = torch.randint(num_users, (share,), generator=generator).to(env.device)
        items = torch.randint(num_items, (share,), generator=generator).to(env.device)
        labels = (torch.rand(share, generator=generator) < 1 / (1 + state.settings.train_negatives)).float()
        return ExampleBatch(NcfBatch(users, items, labels.to(env.device), global_batch), share)

    @torch.no_grad()
    def eval_step(self, state, batch):
        """Scores of one user's candidates (the positive first): sigmoid outputs, shape (n,)."""
        model = getattr(state.model, "module", state.model)
        model.eval()
        users, items = batch
        return torch.sigmoid(model(users, items))

    def evaluate(self, state, epoch):
        with cpu_threads(state.settings.cpu_threads):
            return self._evaluate(state, epoch)

    @torch.no_grad()
    def _evaluate(self, state, epoch):
        env, model = state.env, getattr(state.model, "module", state.model)
        model.eval()
        sums = torch.zeros(2, dtype=torch.float64, device=env.device)
        step = state.settings.eval_batch_users
        for start in range(0, len(state.eval_users), step):
            users = state.eval_users[start:start + step]
            negatives = state.eval_negatives[start:start + step]
            # REF ranks sigmoid outputs: float32 saturation ties count (the positive loses them)
            pos = torch.sigmoid(model(users, state.eval_test[start:start + step]))
            neg = torch.sigmoid(model(users[:, None].expand_as(negatives).reshape(-1), negatives.reshape(-1)))
            hit, ndcg = hit_and_ndcg(pos, neg.view_as(negatives), state.eval_distinct[start:start + step])
            sums += torch.stack([hit.sum(), ndcg.sum()])
        sums = env.all_reduce_sum(sums)
        num_users = state.meta["num_users"]
        return EvalResult({"hr_at_10": float(sums[0]) / num_users},
                          extras={"eval_ndcg": float(sums[1]) / num_users})

    # --- logged keys (v0.5 NCF tags, spec section 7; README maps each) ------------------
    def logged_hparams(self, preset, env):
        s = preset.settings
        return {"model_hp_mf_dim": s.mf_dim, "model_hp_mlp_layer_sizes": list(s.layers),
                "model_hp_loss_fn": "binary_cross_entropy", "input_hp_num_neg": s.train_negatives,
                "input_hp_sample_train_replacement": True, "input_order": "shuffled every epoch"}

    def logged_data_keys(self, state):
        meta = state.meta
        return {"preproc_hp_min_ratings": meta["min_ratings"], "preproc_hp_num_eval": meta["num_eval_negatives"],
                "preproc_hp_sample_eval_replacement": True, "input_size": meta["num_train"],
                "train_samples": state.train.samples_per_epoch, "eval_samples": meta["num_users"],
                "eval_size": meta["num_users"] * (meta["num_eval_negatives"] + 1),
                "eval_hp_num_users": meta["num_users"], "eval_hp_num_neg": meta["num_eval_negatives"]}


BENCHMARK = NcfBenchmark()
