"""NCF (NeuMF) on MovieLens-20M style data: the harness plug-in."""
from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np
import torch

from mlperf_train.benchmark import Benchmark, TrainStats
from references.ncf.data import prepare_ratings
from references.ncf.metric import hit_and_ndcg
from references.ncf.model import NeuMF
from references.ncf.synthetic import write_ratings

CLOSED = {"closed": True}


@dataclasses.dataclass(frozen=True)
class NcfSettings:
    mf_dim: int = 64
    layers: tuple = (256, 256, 128, 64)
    min_ratings: int = dataclasses.field(default=20, metadata=CLOSED)
    eval_negatives: int = dataclasses.field(default=999, metadata=CLOSED)
    train_negatives: int = dataclasses.field(default=4, metadata=CLOSED)
    eval_batch_users: int = 2048
    # synthetic generator (small preset only)
    synth_users: int = 2000
    synth_items: int = 3000
    synth_dim: int = 8


class NcfBenchmark(Benchmark):
    name = "ncf"
    metric = "hr_at_10"
    Settings = NcfSettings

    def prepare(self, source, data_dir, settings):
        source = Path(source)
        csv = source / "ratings.csv" if source.is_dir() else source
        prepare_ratings(csv, Path(data_dir), settings.min_ratings, settings.eval_negatives)

    def generate_small(self, data_dir, settings, seed=0):
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        write_ratings(data_dir / "ratings.csv", settings.synth_users, settings.synth_items,
                      settings.synth_dim, seed)
        self.prepare(data_dir, data_dir, settings)

    def init(self, preset, env):
        hp = preset.hparams
        return types.SimpleNamespace(preset=preset, env=env, settings=preset.settings, hp=hp, model=None)

    def open_data(self, state, dataset):
        d = np.load(Path(dataset.root) / "ncf.npz")
        s, hp, env = state.settings, state.hp, state.env
        state.num_users, state.num_items = int(d["num_users"]), int(d["num_items"])
        state.train_users = torch.from_numpy(d["train_users"].astype(np.int64))
        state.train_items = torch.from_numpy(d["train_items"].astype(np.int64))
        state.pos_keys = torch.sort(state.train_users * state.num_items + state.train_items).values
        state.test_items = torch.from_numpy(d["test_items"].astype(np.int64))
        state.eval_negs = torch.from_numpy(d["eval_negatives"].astype(np.int64))
        lazy = hp.get("opt_name", "adam") == "lazy_adam"
        model = NeuMF(state.num_users, state.num_items, s.mf_dim, tuple(s.layers), sparse=lazy)
        state.model = env.wrap_model(model)
        kw = dict(lr=hp["opt_base_learning_rate"], betas=(hp.get("opt_adam_beta_1", 0.9), hp.get("opt_adam_beta_2", 0.999)),
                  eps=hp.get("opt_adam_epsilon", 1e-8))
        if lazy:
            emb = [p for n, p in model.named_parameters() if "mf_" in n or "mlp_user" in n or "mlp_item" in n]
            dense = [p for n, p in model.named_parameters() if not ("mf_" in n or "mlp_user" in n or "mlp_item" in n)]
            state.opts = [torch.optim.SparseAdam(emb, **kw), torch.optim.Adam(dense, **kw)]
        else:
            state.opts = [torch.optim.Adam(model.parameters(), **kw)]

    def _negatives(self, state, users):
        """Items not in the user's training positives (rejection against sorted keys)."""
        items = torch.randint(0, state.num_items, users.shape)
        while True:
            keys = users * state.num_items + items
            idx = torch.searchsorted(state.pos_keys, keys).clamp(max=len(state.pos_keys) - 1)
            bad = state.pos_keys[idx] == keys
            if not bad.any():
                return items
            items[bad] = torch.randint(0, state.num_items, (int(bad.sum()),))

    def train_epoch(self, state, epoch):
        s, env = state.settings, state.env
        n = s.train_negatives
        neg_users = state.train_users.repeat(n)
        users = torch.cat([state.train_users, neg_users])
        items = torch.cat([state.train_items, self._negatives(state, neg_users)])
        labels = torch.cat([torch.ones(len(state.train_users)), torch.zeros(len(neg_users))])
        perm = torch.randperm(len(users))
        gbs = int(state.hp["global_batch_size"])
        per_rank = gbs // env.world_size
        state.model.train()
        total, count = 0.0, 0
        for start in range(0, len(users), gbs):
            b = perm[start:start + gbs][env.rank * per_rank:(env.rank + 1) * per_rank]
            if len(b) == 0:
                continue
            for opt in state.opts:
                opt.zero_grad()
            logits = state.model(users[b], items[b])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[b])
            loss.backward()
            for opt in state.opts:
                opt.step()
            total += float(loss.detach()) * len(b)
            count += len(b)
        return TrainStats(num_samples=len(users), loss=total / max(count, 1))

    @torch.no_grad()
    def evaluate(self, state, epoch):
        env = state.env
        state.model.eval()
        users = torch.tensor(list(env.shard(state.num_users)), dtype=torch.long)
        sums = torch.zeros(2, dtype=torch.float64)
        for start in range(0, len(users), state.settings.eval_batch_users):
            u = users[start:start + state.settings.eval_batch_users]
            cand = torch.cat([state.test_items[u, None], state.eval_negs[u]], dim=1)
            scores = state.model(u[:, None].expand_as(cand), cand)
            hit, ndcg = hit_and_ndcg(scores[:, 0], scores[:, 1:])
            sums += torch.stack([hit.sum(), ndcg.sum()])
        sums = env.all_reduce_sum(sums)
        # NDCG@10 is computed (sums[1]) but the engine takes one number: HR@10 is the target metric.
        state.last_ndcg = float(sums[1]) / state.num_users
        return float(sums[0]) / state.num_users

    def logged_hparams(self, preset, env):
        s = preset.settings
        # train_samples / eval_samples depend on the data, unknown before run_start: not logged yet.
        return {"preproc_hp_min_ratings": s.min_ratings, "preproc_hp_num_eval": s.eval_negatives + 1,
                "input_hp_num_neg": s.train_negatives, "model_hp_mf_dim": s.mf_dim,
                "model_hp_mlp_layer_sizes": list(s.layers)}


BENCHMARK = NcfBenchmark()
