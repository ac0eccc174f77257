"""Rulesets as data, the `list` table, and the CLI's one-line errors."""
import subprocess
import sys

import pytest
import yaml

from mlperf_train.cli import main
from mlperf_train.errors import UsageError
from mlperf_train.rules import RULESETS, benchmark_rules, default_ruleset, load_suite, target_reached


def test_default_ruleset_is_the_newest_that_runs_the_benchmark():
    assert default_ruleset("ncf") == "0.5.0"
    assert default_ruleset("minigo") == "0.6.0"
    for name in ("resnet", "ssd", "maskrcnn", "gnmt", "transformer"):
        assert default_ruleset(name) == "0.7.0"


@pytest.mark.parametrize("ruleset, bench, target, runs", [
    ("0.7.0", "resnet", 0.759, 5), ("0.5.0", "resnet", 0.749, 5), ("0.7.0", "transformer", 25.0, 10),
    ("0.5.0", "ncf", 0.635, 100), ("0.7.0", "ssd", 0.23, 5), ("0.7.0", "gnmt", 24.0, 10),
])
def test_targets_and_run_counts(ruleset, bench, target, runs):
    rules = benchmark_rules(bench, ruleset)
    assert rules.target == {rules.metric: target} and rules.runs == runs


def test_aggregation_rules_per_round():
    assert benchmark_rules("ncf", "0.5.0").aggregation == {"method": "first_converged_olympic", "num_converged": 50}
    assert benchmark_rules("resnet", "0.7.0").aggregation["max_non_converged"] == 1
    assert benchmark_rules("resnet", "0.6.0").aggregation["max_non_converged"] == 0


def test_every_suite_entry_is_complete():
    for ruleset in RULESETS:
        for name, rules in load_suite(ruleset).benchmarks.items():
            assert rules.direction in ("higher", "lower"), name
            assert rules.eval.every_epochs or rules.eval.at_epochs, name


def test_resnet_cadence_every_four_with_the_first_after_at_most_four():
    cadence = benchmark_rules("resnet", "0.7.0").eval
    assert [e for e in range(1, 14) if cadence.is_eval_epoch(e)] == [4, 8, 12]
    assert cadence.epochs_until_next_eval(5) == 4


def test_mask_rcnn_needs_both_targets_at_one_evaluation():
    rules = benchmark_rules("maskrcnn", "0.7.0")
    assert rules.quality_keys == ("BBOX", "SEGM")
    assert target_reached(rules.target, {"BBOX": 0.38, "SEGM": 0.34})
    assert not target_reached(rules.target, {"BBOX": 0.38, "SEGM": 0.33})
    assert not target_reached(rules.target, {"bbox": 0.9, "segm": 0.9})   # mllog.constants.BBOX is lower case


def _load_entry(tmp_path, monkeypatch, entry):
    """A one-benchmark ruleset 0.7.0 written to a scratch rules folder."""
    from mlperf_train import rules as rules_mod
    folder = tmp_path / "0.7.0"
    folder.mkdir()
    (folder / "suite.yaml").write_text(yaml.safe_dump({"ruleset": "0.7.0", "log_format": "mllog",
                                                       "benchmarks": {"ssd": entry}}))
    monkeypatch.setattr(rules_mod, "RULES_DIR", tmp_path)
    rules_mod.load_suite.cache_clear()
    try:
        return rules_mod.load_suite("0.7.0")
    finally:
        monkeypatch.undo()
        rules_mod.load_suite.cache_clear()


ENTRY = {"metric": "mAP", "target": 0.23, "runs": 5, "aggregation": {"method": "olympic"},
         "eval": {"at_epochs": [40, 50]}, "reference_minutes": None}


@pytest.mark.parametrize("change, message", [
    ({"eval": {"at_epochs": [32.7, 43.7]}}, "fall inside an epoch"),
    ({"eval": {"every_epochs": 1, "on_clok": False}}, "eval: unknown key 'on_clok'"),
    ({"eval": {"every_epochs": 1, "on_clock": "no"}}, "on_clock must be true or false"),
    ({"runnable": False}, "unknown key 'runnable'"),
    ({"not_runnable": ""}, "not_runnable must say why"),
    ({"target": "high"}, "neither a number nor a mapping"),
])
def test_the_rules_loader_refuses_what_the_engine_cannot_honour(tmp_path, monkeypatch, change, message):
    with pytest.raises(UsageError, match=message):
        _load_entry(tmp_path, monkeypatch, {**ENTRY, **change})


def test_an_entry_marked_not_runnable_may_keep_the_rules_points(tmp_path, monkeypatch):
    suite = _load_entry(tmp_path, monkeypatch, {**ENTRY, "eval": {"at_epochs": [32.7]}, "not_runnable": "why"})
    assert not suite.benchmarks["ssd"].runnable and suite.benchmarks["ssd"].eval.at_epochs == (32.7,)


def test_ssd_before_0_7_is_not_runnable_and_list_says_why(capsys):
    for ruleset in ("0.5.0", "0.6.0"):
        rules = benchmark_rules("ssd", ruleset)
        assert not rules.runnable and "iteration counts" in rules.not_runnable
        assert rules.eval.at_epochs[0] == 32.7
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "0.6.0 ssd: the rules evaluate SSD at iteration counts" in out
    assert "0.7.0 minigo: v0.7 MiniGo is 19x19" in out


def test_minigo_0_6_evaluates_off_the_clock():
    assert benchmark_rules("minigo", "0.6.0").eval.on_clock is False
    assert benchmark_rules("minigo", "0.5.0").eval.on_clock is True


def test_unknown_benchmark_or_ruleset_is_a_usage_error():
    with pytest.raises(UsageError, match="is not in ruleset 0.7.0; it is in: 0.5.0"):
        benchmark_rules("ncf", "0.7.0")
    with pytest.raises(UsageError, match="unknown ruleset"):
        load_suite("0.4.0")


def test_list_prints_one_row_per_benchmark_and_ruleset(capsys):
    assert main(["list", "--ruleset", "0.5.0"]) == 0
    rows = capsys.readouterr().out.split("\n\n")[0].strip().splitlines()
    assert rows[0].split()[:4] == ["ruleset", "benchmark", "metric", "target"]
    assert len(rows) == 1 + len(load_suite("0.5.0").benchmarks)
    ncf = next(r for r in rows if " ncf " in r)
    assert "0.635" in ncf and "first 50 converged" in ncf and ncf.rstrip().endswith("*")


@pytest.mark.parametrize("argv, message", [
    (["run", "nope"], "mlperf-train run: unknown benchmark 'nope'"),
    (["run", "ncf", "--runs", "0"], "--runs: must be >= 1, got 0"),
    (["run", "ncf", "--data", "/no/such/dir"], "mlperf-train run: --data /no/such/dir: not a directory"),
    (["run", "ncf", "--ruleset", "0.7.0"], "benchmark 'ncf' is not in ruleset 0.7.0"),
    (["score", "/no/such/folder"], "mlperf-train score: /no/such/folder: not a folder"),
    (["prepare", "ncf", "--source", "/no/such", "--data", "/tmp/x"], "--source /no/such: does not exist"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_status_2(argv, message):
    result = subprocess.run([sys.executable, "-m", "mlperf_train", *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
