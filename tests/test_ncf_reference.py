"""NCF: preprocessing on a hand-made ratings file, the metric by hand, one training epoch."""
import dataclasses
import types

import numpy as np
import pytest
import torch

from mlperf_train.distributed import RunEnv
from references.ncf.benchmark import BENCHMARK, NcfSettings
from references.ncf.data import prepare_ratings
from references.ncf.metric import hit_and_ndcg


def _write(tmp_path, rows):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_split_filter_and_negatives(tmp_path):
    # user 7: 3 ratings, latest is movie 30; user 9: 1 rating, filtered out by min_ratings=2.
    rows = [(7, 10, 4.0, 100), (7, 30, 3.5, 300), (7, 20, 5.0, 200), (9, 10, 1.0, 50),
            (8, 40, 2.0, 10), (8, 50, 2.0, 20)] + [(8, m, 3.0, 1) for m in (60, 70, 80, 90)]
    prepare_ratings(_write(tmp_path, rows), tmp_path, min_ratings=2, eval_negatives=3)
    d = np.load(tmp_path / "ncf.npz")
    assert int(d["num_users"]) == 2
    movies = sorted({10, 20, 30, 40, 50, 60, 70, 80, 90})  # item codes follow sorted movieIds
    code = {m: i for i, m in enumerate(movies)}
    assert d["test_items"].tolist() == [code[30], code[50]]
    user0_train = d["train_items"][d["train_users"] == 0].tolist()
    assert sorted(user0_train) == [code[10], code[20]]
    for u, positives in ((0, {10, 20, 30}), (1, {40, 50, 60, 70, 80, 90})):
        assert not set(d["eval_negatives"][u].tolist()) & {code[m] for m in positives}


def test_metric_by_hand():
    pos = torch.tensor([0.9, 0.5, 0.3])
    negs = torch.tensor([[0.1] * 12, [0.6] * 9 + [0.1] * 3, [0.6] * 10 + [0.1] * 2])
    hit, ndcg = hit_and_ndcg(pos, negs)
    assert hit.tolist() == [1.0, 1.0, 0.0]
    assert abs(ndcg[0] - 1.0) < 1e-12 and abs(ndcg[1] - 1 / np.log2(11)) < 1e-12


def test_ties_rank_the_positive_last():
    hit, _ = hit_and_ndcg(torch.zeros(4), torch.zeros(4, 999))
    assert hit.sum() == 0


def test_one_training_epoch_and_eval(tmp_path):
    settings = NcfSettings(mf_dim=4, layers=(8, 4), synth_users=60, synth_items=80, eval_negatives=20)
    BENCHMARK.generate_small(tmp_path, settings, seed=0)
    env = RunEnv.from_environment(device="cpu")
    env.seed_everything(0)
    preset = types.SimpleNamespace(settings=settings, hparams={
        "global_batch_size": 64, "opt_name": "adam", "opt_base_learning_rate": 0.01})
    state = BENCHMARK.init(preset, env)
    BENCHMARK.open_data(state, types.SimpleNamespace(root=tmp_path))
    stats = BENCHMARK.train_epoch(state, 1)
    assert stats.num_samples == 5 * len(state.train_users) and np.isfinite(stats.loss)
    assert 0.0 <= BENCHMARK.evaluate(state, 1) <= 1.0


def test_lazy_adam_trains(tmp_path):
    settings = NcfSettings(mf_dim=4, layers=(8, 4), synth_users=40, synth_items=60, eval_negatives=10)
    BENCHMARK.generate_small(tmp_path, settings, seed=1)
    env = RunEnv.from_environment(device="cpu")
    preset = types.SimpleNamespace(settings=settings, hparams={
        "global_batch_size": 64, "opt_name": "lazy_adam", "opt_base_learning_rate": 0.01})
    state = BENCHMARK.init(preset, env)
    BENCHMARK.open_data(state, types.SimpleNamespace(root=tmp_path))
    assert np.isfinite(BENCHMARK.train_epoch(state, 1).loss)


@pytest.mark.slow
def test_small_preset_reaches_its_target(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "mlperf_train", "run", "ncf", "--runs", "1", "--seed", "1",
                             "--output", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success (target reached)" in result.stdout
