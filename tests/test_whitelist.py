"""The declarative whitelist: each constraint, every ruleset's files, and `validate`."""
import subprocess
import sys
from pathlib import Path

import pytest

from mlperf_train import whitelist
from mlperf_train.cli import main
from mlperf_train.errors import UsageError
from mlperf_train.rules import RULES_DIR, RULESETS, load_suite

ROOT = Path(__file__).resolve().parents[1]


def rules_of(violations):
    return {v.key: v.rule for v in violations}


@pytest.mark.parametrize("ruleset", RULESETS)
def test_every_whitelist_file_loads_and_names_a_suite_benchmark(ruleset):
    for path in sorted((RULES_DIR / ruleset / "whitelist").glob("*.yaml")):
        assert path.stem in load_suite(ruleset).benchmarks, path
        assert whitelist.load(path.stem, ruleset).keys


@pytest.mark.parametrize("value, ok", [([44, 55], True), ([40, 50], True), ([48, 60], True),
                                       ([44, 56], False), ([36, 45], False), ([44], False)])
def test_time_stretch_checks_every_boundary(value, ok):
    # the official checker keeps only the second of its two CHECK lines; we check both
    found = whitelist.check_logged({"opt_learning_rate_decay_boundary_epochs": value}, "ssd", "0.7.0", "closed")
    assert (not found) == ok


def test_time_stretch_scaled_by_batch():
    steps = "opt_learning_rate_decay_steps"
    ok = {"global_batch_size": 128, steps: [9750, 13000]}          # (60k, 80k) * 1.3 * 16/128
    bad = {"global_batch_size": 128, steps: [9750, 14000]}
    assert not whitelist.check_logged(ok, "maskrcnn", "0.7.0", "closed")
    assert steps in rules_of(whitelist.check_logged(bad, "maskrcnn", "0.7.0", "closed"))


@pytest.mark.parametrize("key, value, rule_part", [
    ("max_samples", 7, "one of [1, 50]"),
    ("model_bn_span", 0, ">= 1"),
    ("opt_learning_rate_warmup_steps", 2.5, "type int"),
])
def test_ssd_values_outside_the_rules(key, value, rule_part):
    found = rules_of(whitelist.check_logged({key: value}, "ssd", "0.7.0", "closed"))
    assert rule_part in found[key]


def test_multiple_of_and_equals():
    found = rules_of(whitelist.check_logged({"opt_base_learning_rate": 0.03, "opt_learning_rate_decay_factor": 0.2,
                                             "min_image_size": 800}, "maskrcnn", "0.7.0", "closed"))
    assert "multiple of 0.02" in found["opt_base_learning_rate"]
    assert "fixed at 0.1" in found["opt_learning_rate_decay_factor"]
    assert "min_image_size" not in found
    assert not whitelist.check_logged({"opt_base_learning_rate": 0.16}, "maskrcnn", "0.7.0", "closed")


def test_a_bool_is_not_a_number_and_not_one():
    assert whitelist.check_logged({"max_samples": True}, "ssd", "0.7.0", "closed")
    assert whitelist.check_logged({"opt_learning_rate_alt_decay_func": 1}, "gnmt", "0.7.0", "closed")


def test_required_and_only_when():
    found = rules_of(whitelist.check({"global_batch_size": 256, "opt_name": "lars", "opt_base_learning_rate": 1.0,
                                      "opt_learning_rate_warmup_epochs": 5,
                                      "opt_learning_rate_decay_boundary_epochs": [30, 60]},
                                     "resnet", "0.6.0", "closed"))
    assert found["opt_learning_rate_decay_boundary_epochs"] == "allowed only when opt_name = 'sgd'"
    assert found["lars_opt_weight_decay"] == "required when opt_name = 'lars'"


def test_check_reports_unknown_and_missing_keys_check_logged_does_not():
    hparams = {"global_batch_size": 8, "not_a_key": 1}
    found = rules_of(whitelist.check(hparams, "gnmt", "0.7.0", "closed"))
    assert found["not_a_key"].startswith("not a hyperparameter of gnmt")
    typo = rules_of(whitelist.check({"opt_base_learning_rat": 0.1}, "gnmt", "0.7.0", "closed"))
    assert typo["opt_base_learning_rat"].endswith("did you mean opt_base_learning_rate?")
    assert found["opt_base_learning_rate"] == "required"
    assert not whitelist.check_logged(hparams, "gnmt", "0.7.0", "closed")


def test_open_division_checks_types_only():
    assert not whitelist.check_logged({"max_samples": 7}, "ssd", "0.7.0", "open")
    assert whitelist.check_logged({"max_samples": "7"}, "ssd", "0.7.0", "open")


def test_a_whitelist_with_an_unknown_constraint_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "0.7.0" / "whitelist").mkdir(parents=True)
    (tmp_path / "0.7.0" / "whitelist" / "ssd.yaml").write_text(
        "benchmark: ssd\nkeys:\n  max_samples: {type: int, lambda: 'v > 0'}\n")
    monkeypatch.setattr(whitelist, "RULES_DIR", tmp_path)
    whitelist.load.cache_clear()
    try:
        with pytest.raises(UsageError, match="unknown constraint 'lambda'"):
            whitelist.load("ssd", "0.7.0")
    finally:
        whitelist.load.cache_clear()


# --- mlperf-train validate ---------------------------------------------------------------
def test_shipped_hparams_files_validate():
    files = sorted(str(p) for p in (ROOT / "hparams").glob("*/*.yaml"))
    assert main(["validate", *files]) == 0


def write(tmp_path, text, name="h.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_validate_reports_every_violation_one_line_each(tmp_path, capsys):
    bad = write(tmp_path, "benchmark: gnmt\nmax_epochs: 3\nhparams:\n  global_batch_size: 0\n"
                          "  opt_learning_rate_decay_factor: 0.7\n  typo_key: 1\n")
    assert main(["validate", str(bad)]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert f"{bad}: hparams.global_batch_size = 0: must be >= 1" in lines
    assert f"{bad}: hparams.opt_learning_rate_decay_factor = 0.7: fixed at 0.5" in lines
    assert any(line.startswith(f"{bad}: hparams.typo_key = 1: not a hyperparameter of gnmt") for line in lines)
    assert f"{bad}: hparams.opt_base_learning_rate = (missing): required" in lines
    assert all(line.startswith(f"{bad}: ") for line in lines)


def test_validate_open_division_allows_other_values(tmp_path, capsys):
    doc = ("benchmark: gnmt\nmax_epochs: 3\nhparams:\n  global_batch_size: 64\n  opt_base_learning_rate: 0.002\n"
           "  opt_learning_rate_alt_decay_func: true\n  opt_learning_rate_alt_warmup_func: true\n"
           "  opt_learning_rate_decay_factor: 0.7\n  opt_learning_rate_decay_steps: 4\n"
           "  opt_learning_rate_decay_interval: 100\n  opt_learning_rate_remain_steps: 100\n"
           "  opt_learning_rate_warmup_steps: 10\n  max_sequence_length: 50\n")
    path = write(tmp_path, doc)
    assert main(["validate", "--division", "open", str(path)]) == 0
    assert main(["validate", str(path)]) == 2
    assert "opt_learning_rate_decay_factor = 0.7: fixed at 0.5" in capsys.readouterr().out


def test_validate_malformed_missing_and_wrong_ruleset(tmp_path, capsys):
    malformed = write(tmp_path, "benchmark: [ssd\n", "malformed.yaml")
    scalar = write(tmp_path, "just text\n", "scalar.yaml")
    ncf_in_07 = write(tmp_path, "benchmark: ncf\nmax_epochs: 1\nhparams: {}\n", "ncf.yaml")
    assert main(["validate", "--ruleset", "0.7.0", str(malformed), str(scalar), str(ncf_in_07),
                 str(tmp_path / "absent.yaml")]) == 2
    out = capsys.readouterr().out
    assert f"{malformed}: malformed YAML at line 2" in out
    assert f"{scalar}: must be a YAML mapping" in out
    assert f"{ncf_in_07}: benchmark = 'ncf': benchmark 'ncf' is not in ruleset 0.7.0; it is in: 0.5.0" in out
    assert f"{tmp_path / 'absent.yaml'}: cannot read: No such file or directory" in out


def test_yaml_is_never_evaluated(tmp_path, capsys):
    evil = write(tmp_path, "benchmark: !!python/object/apply:os.system ['touch pwned']\nmax_epochs: 1\n")
    assert main(["validate", str(evil)]) == 2
    assert not (Path.cwd() / "pwned").exists()
    assert "malformed YAML" in capsys.readouterr().out


def test_run_refuses_a_closed_run_that_breaks_the_whitelist(tmp_path):
    bad = write(tmp_path, (ROOT / "hparams" / "ncf" / "small.yaml").read_text().replace(
        "opt_name: adam", "opt_name: sgd"))
    result = subprocess.run([sys.executable, "-m", "mlperf_train", "run", "ncf", "--hparams", str(bad),
                             "--output", str(tmp_path / "logs")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"{bad}: hparams.opt_name = 'sgd': must be one of ['adam', 'lazy_adam']" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_a_reference_preset_may_pick_only_the_first_eval_epoch(tmp_path, capsys):
    head = "benchmark: gnmt\nmax_epochs: 3\nhparams: {}\n"
    ok_offset = write(tmp_path, "benchmark: resnet\nmax_epochs: 3\neval: {first_eval_epoch: 2}\nhparams: {}\n", "a.yaml")
    late = write(tmp_path, "benchmark: resnet\nmax_epochs: 3\neval: {first_eval_epoch: 5}\nhparams: {}\n", "b.yaml")
    cadence = write(tmp_path, head + "eval: {every_epochs: 2}\n", "c.yaml")
    main(["validate", "--division", "open", str(ok_offset), str(late), str(cadence)])
    out = capsys.readouterr().out
    assert f"{ok_offset}: eval" not in out
    assert f"{late}: eval.first_eval_epoch = 5: must be 1..4 (ruleset 0.7.0)" in out
    assert f"{cadence}: eval.every_epochs = 2: only a small preset may change" in out
