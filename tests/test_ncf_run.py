"""NCF end to end: `prepare` through the CLI, the small preset to its target with a log that
`mlperf-train check` accepts, and two ranks following the one-process trajectory."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import ROOT, read_events, run_cli
from mlperf_train import compliance
from references.ncf.synthetic import write_ratings



def cli(*args, timeout=300):
    return run_cli(*args, timeout=timeout)


def test_prepare_command_processes_a_ratings_csv(tmp_path):
    source = tmp_path / "ml-20m"
    source.mkdir()
    write_ratings(source / "ratings.csv", 200, 300, 8, seed=3)
    result = cli("prepare", "ncf", "--source", source, "--data", tmp_path / "prepared", timeout=120)
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "prepared" / "meta.json").read_text())
    assert meta["min_ratings"] == 20 and meta["num_eval_negatives"] == 999
    assert np.load(tmp_path / "prepared" / "eval_negatives.npy").shape == (meta["num_users"], 999)
    assert 0 < meta["num_users"] < 200   # the filter dropped the users under 20 ratings


def test_prepare_names_a_missing_file(tmp_path):
    result = cli("prepare", "ncf", "--source", tmp_path, "--data", tmp_path / "out", timeout=120)
    assert result.returncode == 2 and "ratings.csv" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("ncf-run")
    result = cli("run", "ncf", "--runs", "1", "--seed", "1", "--output", output, "--system", "test")
    return result, output / "test" / "ncf" / "result_0.txt"


@pytest.mark.slow
def test_small_preset_reaches_its_target_and_its_log_passes_check(small_run):
    result, log = small_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success (target reached)" in result.stdout
    assert compliance.check_log(str(log)) == []
    events = read_events(log)
    keys = [e["key"] for e in events]
    for key in ("preproc_hp_min_ratings", "input_hp_num_neg", "model_hp_mf_dim", "train_samples",
                "eval_samples", "opt_adam_epsilon"):
        assert keys.count(key) == 1, key
    assert keys.count("eval_ndcg") == keys.count("eval_accuracy") >= 1
    # the data keys are logged on the clock, after run_start
    assert keys.index("run_start") < keys.index("train_samples") < keys.index("epoch_start")


@pytest.mark.slow
@pytest.mark.parametrize("key,old,new", [
    ("preproc_hp_min_ratings", "20", "10"),
    ("input_hp_num_neg", "4", "8"),
    ("opt_name", '"adam"', '"sgd"'),
    ("opt_adam_epsilon", "1e-08", "1e-07"),
])
def test_check_rejects_a_changed_value(small_run, tmp_path, key, old, new):
    _, log = small_run
    text = log.read_text()
    needle = f'"key": "{key}", "value": {old}'
    assert needle in text
    changed = tmp_path / "result_0.txt"
    changed.write_text(text.replace(needle, f'"key": "{key}", "value": {new}'))
    problems = compliance.check_log(str(changed))
    assert problems and any(key in p for p in problems)


@pytest.mark.slow
def test_check_holds_a_reference_run_to_the_full_scale_model_and_data(small_run, tmp_path):
    _, log = small_run
    text = log.read_text().replace('"value": "small"', '"value": "reference"').replace('"small": true', '"small": false')
    changed = tmp_path / "result_0.txt"
    changed.write_text(text)
    problems = " ".join(compliance.check_log(str(changed)))
    for key in ("model_hp_mf_dim", "model_hp_mlp_layer_sizes", "eval_hp_num_users", "input_size"):
        assert key in problems


WORKER = textwrap.dedent("""
    import json, sys, types
    import torch
    from mlperf_train.benchmark import Artifacts, no_progress
    from mlperf_train.distributed import RunEnv
    from references.ncf.benchmark import BENCHMARK, NcfSettings
    folder, out = sys.argv[1], sys.argv[2]
    settings = NcfSettings(mf_dim=4, layers=[8, 4], eval_negatives=20, eval_batch_users=5)
    env = RunEnv.from_environment(device="cpu")
    env.seed_everything(11)
    hparams = {"global_batch_size": 250, "opt_name": "adam", "opt_base_learning_rate": 0.01,
               "opt_adam_beta_1": 0.9, "opt_adam_beta_2": 0.999, "opt_adam_epsilon": 1e-8}
    state = BENCHMARK.init(types.SimpleNamespace(settings=settings, hparams=hparams), env, Artifacts(folder))
    BENCHMARK.open_data(state, types.SimpleNamespace(root=folder))
    losses = [BENCHMARK.train_epoch(state, epoch, no_progress).loss for epoch in (1, 2)]
    result = BENCHMARK.evaluate(state, 2)
    model = getattr(state.model, "module", state.model)
    if env.rank == 0:
        json.dump({"hr": result.quality["hr_at_10"], "ndcg": result.extras["eval_ndcg"], "final": model.final.weight.flatten().tolist(),
                   "items": model.mf_item.weight[:5].flatten().tolist()}, open(out, "w"))
    env.shutdown()
""")


@pytest.mark.slow
def test_two_ranks_follow_the_one_process_trajectory(tmp_path):
    from references.ncf.benchmark import BENCHMARK, NcfSettings
    data = tmp_path / "data"
    BENCHMARK.generate_small(data, NcfSettings(eval_negatives=20, synth_users=120, synth_items=150), seed=0)
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    results = []
    for nproc in (1, 2):
        out = tmp_path / f"{nproc}.json"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                   "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0", str(worker), str(data), str(out)]
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr[-3000:]
        results.append(json.loads(out.read_text()))
    one, two = results
    assert two["hr"] == pytest.approx(one["hr"], abs=1e-9)
    assert two["final"] == pytest.approx(one["final"], rel=1e-4, abs=1e-6)
    assert two["items"] == pytest.approx(one["items"], rel=1e-4, abs=1e-6)
