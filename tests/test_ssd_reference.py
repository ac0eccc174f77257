"""SSD through the engine at a reduced size of the same code: one block and one evaluation on
1 process (log accepted by `check` and the official checker, target aside) and on 2 processes
(gathered predictions equal to one process's mAP on the same weights; the CLI under torchrun);
presets, the missing-backbone refusal, COCO evaluation on a hand-made case; the small preset
to target (slow)."""
import dataclasses
import json
import os
import subprocess
import sys
import types

import pytest
import torch
import yaml

from helpers import ROOT, read_events, run_cli, run_one_block_log
from mlperf_train import compliance, engine
from mlperf_train.cli import main as cli
from mlperf_train.hparams import load_preset
from mlperf_train.rules import benchmark_rules
from references.ssd.benchmark import BENCHMARK, SsdSettings

TINY = yaml.safe_load((ROOT / "hparams/ssd/tiny.yaml").read_text())
TINY_SETTINGS = TINY["settings"]


def tiny_preset_file(tmp_path, **changes):
    doc = {**TINY, **changes}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("tiny-coco")
    torch.set_num_threads(1)
    BENCHMARK.generate_small(data, SsdSettings(**TINY_SETTINGS), seed=0)
    return data


def official_errors(log):
    official = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
                               "--ruleset", "0.7.0", str(log)], capture_output=True, text=True)
    lines = (official.stdout + official.stderr).splitlines()
    return [line for line in lines if ("ERROR" in line or "Failed" in line) and line.strip() != "ERROR - FAILED"]


def test_one_block_and_one_evaluation_through_the_engine(tmp_path, tiny_data, capsys):
    preset = load_preset(tiny_preset_file(tmp_path), settings_class=SsdSettings, expected_benchmark="ssd")
    outcome, path = run_one_block_log(BENCHMARK, preset, tmp_path, tiny_data, seed=3)
    assert outcome.ended_by_rules and outcome.epochs == 1, outcome.reason
    assert 0.0 <= outcome.quality["mAP"] <= 1.0
    events = read_events(path)
    values = {e["key"]: e["value"] for e in events}
    # the generated data drops its image without annotations in each split (spec §1)
    assert values["train_samples"] < 16 and values["eval_samples"] < 12
    assert values["model_bn_span"] == 8 and values["max_samples"] == 1
    assert values["opt_learning_rate_decay_boundary_epochs"] == [40, 50]
    artifact = [e for e in events if e["key"] == "mlperf_train_artifact"]
    assert artifact[0]["value"] == "resnet34-width4.pth" and len(artifact[0]["metadata"]["sha256"]) == 64
    assert [e["key"] for e in events].count("eval_accuracy") == 1
    assert compliance.main(types.SimpleNamespace(logs=[str(path)], ruleset=None)) in (0, 1)
    findings = capsys.readouterr().out.splitlines()
    assert all("no evaluation reached the target" in line and "the target preset" in line for line in findings), findings
    assert all("eval_accuracy" in line for line in official_errors(path))


def test_reference_preset_log_of_one_tiny_block_passes_all_but_the_target(tmp_path, capsys, monkeypatch):
    """Issue 13 item 6: the reference preset's hparams, ruleset cadence (first evaluation after
    epoch 40: one block (1, 40)) and closed checks, on the tiny model and 4 + 4 generated
    images (the only change: the settings, so 40 epochs take seconds). The untimed FLOPs
    count (a step on 256 generated images, half this test's time) is left out: the one-block
    test above covers it."""
    monkeypatch.setattr(engine, "_log_flops", lambda *args: True)
    settings = SsdSettings(**{**TINY_SETTINGS, "synth_train": 4, "synth_val": 4})
    data = tmp_path / "coco"
    BENCHMARK.generate_small(data, settings, seed=0)
    reference = load_preset(ROOT / "hparams/ssd/reference.yaml", settings_class=SsdSettings, expected_benchmark="ssd")
    preset = dataclasses.replace(reference, max_epochs=40, settings=settings)
    outcome, path = run_one_block_log(BENCHMARK, preset, tmp_path, data, seed=5)
    assert outcome.ended_by_rules and outcome.epochs == 40, outcome.reason
    events = read_events(path)
    assert [(e["metadata"]["first_epoch_num"], e["metadata"]["epoch_count"])
            for e in events if e["key"] == "block_start"] == [(1, 40)]
    assert [e["metadata"]["epoch_num"] for e in events if e["key"] == "eval_accuracy"] == [40]
    values = {e["key"]: e["value"] for e in events}
    assert values["global_batch_size"] == 256 and values["opt_learning_rate_warmup_steps"] == 300
    assert compliance.main(types.SimpleNamespace(logs=[str(path)], ruleset=None)) == 1
    findings = capsys.readouterr().out.splitlines()
    # only the target: closed_ssd.yaml's eval_accuracy >= 0.230 and our own "not reached"
    assert any("no evaluation reached the target 0.23" in line for line in findings), findings
    assert all("eval_accuracy" in line or "no evaluation reached the target 0.23" in line for line in findings), findings
    assert all("eval_accuracy" in line for line in official_errors(path))


def test_two_processes_gather_the_same_map_as_one(tmp_path, tiny_data):
    out = tmp_path / "map.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv_backend=c10d",
               "--rdzv_endpoint=localhost:0", str(ROOT / "tests/ssd_dist_worker.py"),
               str(tiny_preset_file(tmp_path)), str(tiny_data), str(out)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(out.read_text())
    # equal up to float rounding of batches composed differently (6+5 images vs 8+3)
    assert found["two"] == pytest.approx(found["one"], abs=1e-6) and found["samples"] >= 14


def test_cli_under_torchrun_runs_one_block_and_one_evaluation(tmp_path, tiny_data):
    result = run_cli("run", "ssd", "--hparams", tiny_preset_file(tmp_path), "--data", tiny_data, "--runs", "1",
                     "--seed", "3", "--output", tmp_path, "--system", "ddp2", nproc=2, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = read_events(tmp_path / "ddp2" / "ssd" / "result_0.txt")
    keys = [e["key"] for e in events]
    assert keys.count("eval_accuracy") == 1 and keys.count("block_start") == 1 and keys.count("run_stop") == 1
    assert {e["key"]: e["value"] for e in events}["model_bn_span"] == 4


def test_closed_reference_run_without_the_backbone_refuses_in_one_line(tmp_path, capsys):
    data = tmp_path / "coco"
    for part in ("train2017", "val2017", "annotations"):
        (data / part).mkdir(parents=True)
    code = cli(["run", "ssd", "--hparams", str(ROOT / "hparams/ssd/reference.yaml"), "--data", str(data),
                "--runs", "1", "--output", str(tmp_path / "logs")])
    output = capsys.readouterr()
    lines = [line for line in (output.out + output.err).splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert f"{data / 'artifacts' / 'resnet34-333f7ec4.pth'}: missing" in lines[0] and "put the file there" in lines[0]


def test_presets_validate():
    assert cli(["validate", str(ROOT / "hparams/ssd/reference.yaml"), str(ROOT / "hparams/ssd/small.yaml")]) == 0


@pytest.mark.parametrize("hparams, key", [
    ({"max_samples": 8}, "max_samples"),
    ({"opt_learning_rate_decay_boundary_epochs": [44, 50]}, "opt_learning_rate_decay_boundary_epochs"),
    ({"opt_learning_rate_warmup_steps": 0}, "opt_learning_rate_warmup_steps"),
])
def test_reference_preset_refuses_values_outside_the_rules(tmp_path, capsys, hparams, key):
    doc = yaml.safe_load((ROOT / "hparams/ssd/reference.yaml").read_text())
    doc["hparams"].update(hparams)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert cli(["validate", str(path)]) != 0
    assert f"hparams.{key}" in capsys.readouterr().out


def test_rulesets_with_evaluation_inside_an_epoch_are_not_runnable():
    for ruleset in ("0.5.0", "0.6.0"):
        assert not benchmark_rules("ssd", ruleset).runnable


@pytest.mark.slow   # seed 1: mAP 0.154 after 14 epochs, 174 s from run_start (loaded box; README)
def test_small_preset_reaches_its_target(tmp_path):
    result = run_cli("run", "ssd", "--runs", "1", "--seed", "1", "--output", tmp_path, "--system", "test",
                     timeout=1500)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success (target reached)" in result.stdout
    log = tmp_path / "test" / "ssd" / "result_0.txt"
    assert cli(["check", str(log)]) == 0
    assert all("eval_accuracy" in line for line in official_errors(log))   # only the target differs
