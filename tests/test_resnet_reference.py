"""ResNet through the engine on tiny images: one block, one evaluation, an accepted log;
determinism; the presets and whitelists of 0.5.0 and 0.7.0; the small preset to target (full)."""
import subprocess
import sys
import types

import pytest
import yaml

from helpers import ROOT, read_events, run_cli, run_one_block_log
from mlperf_train import compliance, whitelist
from mlperf_train.benchmark import Artifacts, Dataset, no_progress
from mlperf_train.cli import main as cli
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import load_preset
from references.resnet.benchmark import BENCHMARK, ResnetSettings

TINY_SETTINGS = {"image_size": 32, "eval_resize": 37, "width": 4, "blocks": [1, 1, 1, 1], "num_outputs": 5,
                 "num_workers": 0, "eval_batch_size": 16, "synth_classes": 4, "synth_train_per_class": 12,
                 "synth_val_per_class": 5, "synth_min_size": 40, "synth_max_size": 64}


def tiny_preset(tmp_path, **changes):
    doc = yaml.safe_load((ROOT / "hparams/resnet/small.yaml").read_text())
    doc.update(max_epochs=1, eval={"every_epochs": 1}, settings=TINY_SETTINGS)
    doc["hparams"]["global_batch_size"] = 16
    doc.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_preset(path, settings_class=ResnetSettings, expected_benchmark="resnet")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("tiny-imagenet")
    BENCHMARK.generate_small(data, ResnetSettings(**TINY_SETTINGS), seed=0)
    return data


def test_one_block_and_one_evaluation_through_the_engine(tmp_path, tiny_data, capsys):
    preset = tiny_preset(tmp_path)
    outcome, path = run_one_block_log(BENCHMARK, preset, tmp_path, tiny_data, seed=3)
    assert outcome.ended_by_rules and outcome.epochs == 1, outcome.reason
    assert 0.0 <= outcome.quality["top1_accuracy"] <= 1.0
    events = read_events(path)
    values = {e["key"]: e["value"] for e in events}
    assert values["train_samples"] == 48 and values["eval_samples"] == 20
    assert values["model_bn_span"] == 16 and values["sgd_opt_base_learning_rate"] == preset.hparams["sgd_opt_base_learning_rate"]
    assert [e["key"] for e in events].count("eval_accuracy") == 1
    # one evaluation, below the preset's target: check and score judge it a run that did not
    # converge, and that is all they find
    assert compliance.main(types.SimpleNamespace(logs=[str(path)], ruleset=None)) in (0, 1)
    findings = capsys.readouterr().out.splitlines()
    assert all("no evaluation reached the target" in line and "the target preset" in line for line in findings), findings


def test_same_seed_same_training(tmp_path, tiny_data):
    preset = tiny_preset(tmp_path)

    def one_epoch(seed):
        env = RunEnv()
        env.seed_everything(seed)
        state = BENCHMARK.init(preset, env, Artifacts(tiny_data / "artifacts"))
        dataset = Dataset(tiny_data)
        dataset._open_for_run()
        BENCHMARK.open_data(state, dataset)
        try:
            return BENCHMARK.train_epoch(state, 1, no_progress), BENCHMARK.evaluate(state, 1)
        finally:
            BENCHMARK.close(state)

    first, second, other = one_epoch(1), one_epoch(1), one_epoch(2)
    assert first == second and first[0].num_samples == 48
    assert first[0].loss != other[0].loss


def test_lars_preset_trains(tmp_path, tiny_data):
    hparams = yaml.safe_load((ROOT / "hparams/resnet/reference.yaml").read_text())["hparams"]
    preset = tiny_preset(tmp_path, hparams={**hparams, "global_batch_size": 16})
    env = RunEnv()
    env.seed_everything(0)
    state = BENCHMARK.init(preset, env, Artifacts(tiny_data / "artifacts"))
    dataset = Dataset(tiny_data)
    dataset._open_for_run()
    BENCHMARK.open_data(state, dataset)
    assert type(state.optimizer).__name__ == "LARS"
    assert BENCHMARK.train_epoch(state, 1, no_progress).num_samples == 48
    BENCHMARK.close(state)


def test_presets_validate_in_their_rulesets():
    assert cli(["validate", str(ROOT / "hparams/resnet/reference.yaml"), str(ROOT / "hparams/resnet/small.yaml")]) == 0
    assert cli(["validate", "--ruleset", "0.5.0", str(ROOT / "hparams/resnet/0.5.0/reference.yaml")]) == 0


@pytest.mark.parametrize("ruleset, hparams, key", [
    ("0.7.0", {"lars_opt_weight_decay": 3e-4}, "lars_opt_weight_decay"),
    ("0.7.0", {"sgd_opt_base_learning_rate": 0.0015}, "sgd_opt_base_learning_rate"),
    ("0.7.0", {"lars_epsilon": 1e-9}, "lars_epsilon"),
    ("0.7.0", {"sgd_opt_end_learning_rate": 0.0}, "sgd_opt_end_learning_rate"),
    ("0.5.0", {"global_batch_size": 512, "opt_base_learning_rate": 0.3}, "opt_base_learning_rate"),
    ("0.5.0", {"opt_learning_rate_decay_boundary_epochs": [30, 60, 80, 95]}, "opt_learning_rate_decay_boundary_epochs"),
])
def test_whitelists_refuse_values_outside_the_rules(ruleset, hparams, key):
    found = {v.key for v in whitelist.check_logged(hparams, "resnet", ruleset, "closed")}
    assert key in found


def test_whitelists_accept_the_rules_examples():
    assert not whitelist.check_logged({"global_batch_size": 512, "opt_base_learning_rate": 0.512,   # r = 2
                                       "opt_learning_rate_decay_boundary_epochs": [33, 66, 88, 99]},
                                      "resnet", "0.5.0", "closed")
    assert not whitelist.check_logged({"lars_opt_weight_decay": 2.5e-5 * 2, "sgd_opt_base_learning_rate": 6.0},
                                      "resnet", "0.7.0", "closed")


def test_closed_reference_keeps_closed_settings(tmp_path, capsys):
    doc = yaml.safe_load((ROOT / "hparams/resnet/reference.yaml").read_text())
    doc["settings"] = {"width": 32}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert cli(["validate", str(path)]) != 0
    assert f"{path}: settings.width = 32: fixed at 64 in a closed-division reference run" in capsys.readouterr().out


@pytest.mark.slow
def test_small_preset_reaches_its_target(tmp_path):
    result = run_cli("run", "resnet", "--runs", "1", "--seed", "1", "--output", tmp_path, "--system", "test",
                     timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success (target reached)" in result.stdout
    log = tmp_path / "test" / "resnet" / "result_0.txt"
    assert cli(["check", str(log)]) == 0
    official = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
                               "--ruleset", "0.7.0", str(log)], capture_output=True, text=True)
    problems = [line for line in (official.stdout + official.stderr).splitlines() if "ERROR" in line]
    assert all("eval_accuracy" in line for line in problems), problems   # only the target differs
