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
    assert whitelist.check_logged({"max_samples": "seven"}, "ssd", "0.7.0", "open")


@pytest.mark.parametrize("key, logged, meant", [
    ("opt_learning_rate_warmup_factor", 32.0, 32), ("opt_learning_rate_warmup_factor", "32", 32),
    ("opt_learning_rate_warmup_factor", 32.5, 32.5), ("opt_learning_rate_warmup_factor", True, True),
    ("opt_base_learning_rate", "0.09", 0.09), ("opt_base_learning_rate", "1e-3", 0.001),
    ("opt_learning_rate_decay_boundary_epochs", "40, 50", [40, 50]),
    ("opt_learning_rate_decay_boundary_epochs", "[44, 55]", [44, 55]),
    ("opt_learning_rate_decay_boundary_epochs", (44.0, "55"), [44.0, 55]),
    ("opt_learning_rate_decay_boundary_epochs", "44", "44"),
])
def test_a_logged_value_is_read_as_what_it_means(key, logged, meant):
    assert whitelist.read_logged({key: logged}, "ssd", "0.7.0")[key] == meant


@pytest.mark.parametrize("key, logged, meant", [
    ("opt_learning_rate_alt_decay_func", "True", True), ("opt_learning_rate_alt_decay_func", " FALSE ", False),
    ("opt_learning_rate_alt_warmup_func", "t2t", True), ("opt_learning_rate_alt_decay_func", "t2t", "t2t"),
    ("opt_learning_rate_alt_decay_func", 1, 1), ("opt_learning_rate_alt_decay_func", 1.0, 1.0),
])
def test_bool_spellings(key, logged, meant):
    got = whitelist.read_logged({key: logged}, "gnmt", "0.7.0")[key]
    assert got == meant and type(got) is type(meant)


def test_hparams_files_keep_their_yaml_types():
    """validate (check) is strict: a file's author wrote the types; only logs are read by meaning."""
    assert rules_of(whitelist.check({"max_samples": 50.0}, "ssd", "0.7.0", "open"))["max_samples"] == "must be of type int"
    assert not whitelist.check_logged({"max_samples": 50.0}, "ssd", "0.7.0", "closed")


@pytest.mark.parametrize("batch, momentum, rule", [
    (3264, 0.95, "fixed at 0.9 when global_batch_size < 32768"), (32767, 0.91, "fixed at 0.9 when global_batch_size < 32768"),
    (3264, 0.9, None), (32768, 0.95, None), (65536, 0.9537, None),
])
def test_allowed_values_can_depend_on_another_key(batch, momentum, rule):
    hparams = {"global_batch_size": batch, "opt_name": "lars", "lars_opt_momentum": momentum}
    assert rules_of(whitelist.check_logged(hparams, "resnet", "0.7.0", "closed")).get("lars_opt_momentum") == rule
    logged = {"global_batch_size": str(batch), "opt_name": "lars", "lars_opt_momentum": str(momentum)}
    assert rules_of(whitelist.check_logged(logged, "resnet", "0.7.0", "closed")).get("lars_opt_momentum") == rule


def test_conditions_in_required_when_and_only_when(tmp_path, monkeypatch):
    (tmp_path / "0.7.0" / "whitelist").mkdir(parents=True)
    (tmp_path / "0.7.0" / "whitelist" / "gnmt.yaml").write_text(
        "benchmark: gnmt\nnot_expressed: []\nkeys:\n  global_batch_size: {type: int}\n"
        "  big_batch_knob: {type: float, required_when: {global_batch_size: {min: 4096}},"
        " only_when: {global_batch_size: {min: 4096}}}\n"
        "  opt_base_learning_rate: {type: float, when: [{if: {global_batch_size: {one_of: [64, 128]}}, max: 0.01}]}\n")
    monkeypatch.setattr(whitelist, "RULES_DIR", tmp_path)
    whitelist.load.cache_clear()
    try:
        found = rules_of(whitelist.check({"global_batch_size": 8192}, "gnmt", "0.7.0", "closed"))
        assert found == {"big_batch_knob": "required when global_batch_size >= 4096"}
        found = rules_of(whitelist.check({"global_batch_size": 64, "big_batch_knob": 1.0, "opt_base_learning_rate": 0.1},
                                         "gnmt", "0.7.0", "closed"))
        assert found == {"big_batch_knob": "allowed only when global_batch_size >= 4096",
                         "opt_base_learning_rate": "must be <= 0.01 when global_batch_size one of [64, 128]"}
    finally:
        whitelist.load.cache_clear()


@pytest.mark.parametrize("text, message", [
    ("  k: {type: int, when: {if: {a: 1}}}\n", "when must be a list"),
    ("  k: {type: int, when: [{equals: 1}]}\n", "when must be a list"),
    ("  k: {type: int, when: [{if: {a: {sometimes: 1}}, equals: 1}]}\n", "unknown condition 'sometimes'"),
    ("  k: {type: int, when: [{if: {a: 1}, lambda: 1}]}\n", "when: unknown constraint 'lambda'"),
    ("  k: {type: int, required_when: [a]}\n", "a condition is a mapping"),
    ("  k: {type: bool, log_spellings: [t2t]}\n", "log_spellings must map"),
])
def test_a_malformed_condition_is_an_error_of_the_rules_file(tmp_path, monkeypatch, text, message):
    (tmp_path / "0.7.0" / "whitelist").mkdir(parents=True)
    (tmp_path / "0.7.0" / "whitelist" / "ssd.yaml").write_text("benchmark: ssd\nkeys:\n" + text)
    monkeypatch.setattr(whitelist, "RULES_DIR", tmp_path)
    whitelist.load.cache_clear()
    try:
        with pytest.raises(UsageError, match=message):
            whitelist.load("ssd", "0.7.0")
    finally:
        whitelist.load.cache_clear()


@pytest.mark.parametrize("ruleset", RULESETS)
def test_every_whitelist_notes_what_it_cannot_express(ruleset):
    for path in sorted((RULES_DIR / ruleset / "whitelist").glob("*.yaml")):
        assert "not_expressed:" in path.read_text(), path
        for sentence in whitelist.load(path.stem, ruleset).not_expressed:
            assert len(sentence) > 20, (path, sentence)


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
