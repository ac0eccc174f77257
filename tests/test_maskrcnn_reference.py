"""The Mask R-CNN reference end to end: one block and one evaluation of the tiny preset
through the CLI (log accepted by the official 0.7.0 checker and by ``check``, the target
aside), the same weights scored alike on 1 and 2 processes, a missing R-50.pkl refused in
one line, and (slow) the small preset to its target."""
import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT, read_events, run_cli
from mlperf_train.hparams import HPARAMS_DIR, load_preset
from references.maskrcnn.benchmark import BENCHMARK

TINY = HPARAMS_DIR / "maskrcnn" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    preset = load_preset(TINY, None, "closed", BENCHMARK.Settings, expected_benchmark="maskrcnn")
    folder = tmp_path_factory.mktemp("maskrcnn-tiny")
    BENCHMARK.generate_small(folder, preset.settings, seed=0)
    return folder


def _official_checker(path) -> list[str]:
    result = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
                             "--ruleset", "0.7.0", str(path)], capture_output=True, text=True, cwd=path.parent)
    return [line for line in (result.stdout + result.stderr).splitlines() if "Failed checks" in line]


def test_one_block_and_one_evaluation_pass_the_checkers(tmp_path, tiny_dir):
    result = run_cli("run", "maskrcnn", "--hparams", TINY, "--data", tiny_dir, "--runs", "1", "--seed", "3",
                     "--output", tmp_path, "--system", "cpu", env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    path = tmp_path / "cpu" / "maskrcnn" / "result_0.txt"
    events = read_events(path)
    keys = [e["key"] for e in events]
    assert keys.count("eval_accuracy") == 1 and keys.count("block_start") == 1
    times = [e["time_ms"] for e in events]
    assert times == sorted(times)
    values = {e["key"]: e["value"] for e in events}
    assert set(values["eval_accuracy"]) == {"BBOX", "SEGM"}
    assert values["num_image_candidates"] == 1000 and values["min_image_size"] == 64
    assert values["train_samples"] == 8 and values["eval_samples"] == 4
    artifact = [e for e in events if e["key"] == "mlperf_train_artifact"]
    assert artifact and len(artifact[0]["metadata"]["sha256"]) == 64
    # the official checker fails only the target (a tiny preset's quality is far below it)
    failed = _official_checker(path)
    assert len(failed) == 1 and "eval_accuracy" in failed[0], failed
    check = run_cli("check", path)
    lines = [line for line in check.stdout.splitlines() if line.strip()]
    assert lines and all("no evaluation reached the target" in line for line in lines), check.stdout


def test_missing_backbone_is_refused_in_one_line(tmp_path, tiny_dir):
    (tmp_path / "data").mkdir()
    for part in ("train2017", "val2017", "annotations"):
        os.symlink(tiny_dir / part, tmp_path / "data" / part)
    result = run_cli("run", "maskrcnn", "--hparams", TINY, "--data", tmp_path / "data", "--runs", "1",
                     "--output", tmp_path / "out", timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "R-50.pkl: missing" in lines[0] and "artifacts" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def _worker(mode, nproc, tiny_dir, weights, out):
    launcher = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--rdzv_backend=c10d",
        "--rdzv_endpoint=localhost:0"]
    result = subprocess.run([*launcher, str(ROOT / "tests" / "maskrcnn_eval_worker.py"), mode, str(tiny_dir),
                             str(weights), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_processes_train_a_block_and_score_its_weights_as_one_process_does(tmp_path, tiny_dir):
    weights = tmp_path / "weights.pt"
    two = _worker("train", 2, tiny_dir, weights, tmp_path / "q2.json")
    one = _worker("eval", 1, tiny_dir, weights, tmp_path / "q1.json")
    assert set(one) == {"BBOX", "SEGM"} and one == two, (one, two)


@pytest.mark.slow
# Calibrated (its README section 5: 5 of 5 seeds, 432-543 s on one core); seed 1 meets the target
# at epoch 4 (this test: 437 s on one thread), more than the ~6 minutes CI's 30-minute budget has left.
@pytest.mark.beyond_ci
def test_small_preset_reaches_its_target(tmp_path):
    result = run_cli("run", "maskrcnn", "--runs", "1", "--seed", "1", "--output", tmp_path, "--system", "cpu",
                     timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    path = tmp_path / "cpu" / "maskrcnn" / "result_0.txt"
    stop = [e for e in read_events(path) if e["key"] == "run_stop"][0]
    assert stop["metadata"]["status"] == "success"
    failed = _official_checker(path)  # the official config knows only the real target (0.377 / 0.339)
    assert len(failed) == 1 and "eval_accuracy" in failed[0], failed
    assert run_cli("check", path).returncode == 0


def test_small_presets_may_shrink_image_sizes_and_schedule_but_the_reference_may_not():
    from mlperf_train import whitelist
    small = {"global_batch_size": 4, "opt_base_learning_rate": 0.02, "opt_learning_rate_warmup_steps": 100,
             "opt_learning_rate_warmup_factor": 0.3333333, "num_image_candidates": 1000,
             "opt_learning_rate_decay_factor": 0.1, "opt_learning_rate_decay_steps": [280, 360],
             "min_image_size": 200, "max_image_size": 333}
    assert not whitelist.check(small, "maskrcnn", "0.7.0", "closed", small_preset=True)
    assert not whitelist.check_logged(small, "maskrcnn", "0.7.0", "closed", small_preset=True)
    found = {v.key for v in whitelist.check(small, "maskrcnn", "0.7.0", "closed")}
    assert found == {"opt_learning_rate_decay_steps", "min_image_size", "max_image_size"}
    # what the rules fix whatever the size stays checked in a small preset
    bad = {**small, "opt_base_learning_rate": 0.005, "num_image_candidates": 1500}
    found = {v.key for v in whitelist.check_logged(bad, "maskrcnn", "0.7.0", "closed", small_preset=True)}
    assert found == {"opt_base_learning_rate", "num_image_candidates"}
