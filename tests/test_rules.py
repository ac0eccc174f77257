"""Rulesets as data, the `list` table, and the CLI's one-line errors."""
import subprocess
import sys

import pytest

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
    assert rules.target == target and rules.runs == runs


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
    target = benchmark_rules("maskrcnn", "0.7.0").target
    assert target_reached(target, {"BBOX": 0.38, "SEGM": 0.34})
    assert not target_reached(target, {"BBOX": 0.38, "SEGM": 0.33})
    assert not target_reached(target, 0.9)


def test_unknown_benchmark_or_ruleset_is_a_usage_error():
    with pytest.raises(UsageError, match="is not in ruleset 0.7.0; it is in: 0.5.0"):
        benchmark_rules("ncf", "0.7.0")
    with pytest.raises(UsageError, match="unknown ruleset"):
        load_suite("0.4.0")


def test_list_prints_one_row_per_benchmark_and_ruleset(capsys):
    assert main(["list", "--ruleset", "0.5.0"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
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
