"""``mlperf-train check`` on published logs, on copies with a constrained value changed, and
on our own small-preset logs."""
import json
import re
import types
from pathlib import Path

import pytest
import yaml

from mlperf_train import cli, compliance
from mlperf_train.results import read_run
from test_results import OURS, published_fixtures

FIXTURES = published_fixtures()
V07 = FIXTURES / "v0.7"
# The one non-converged published run: the official checker fails its target check too.
NOT_CONVERGED = "NVIDIA/results/dgx1_ngc20.06_mxnet/resnet/result_0.txt"
RESNET = V07 / "NVIDIA/results/dgx1_ngc20.06_mxnet/resnet/result_1.txt"
SSD = V07 / "NVIDIA/results/dgx1_ngc20.06_pytorch/ssd/result_0.txt"
MASKRCNN = V07 / "Google/results/tpu-v4-16-TF/maskrcnn/result_0.txt"


def _closed_v07_logs():
    logs = sorted(p for p in V07.glob("*/results/*/*/result_*.txt") if str(p.relative_to(V07)) != NOT_CONVERGED)
    assert len(logs) == 44 and all(read_run(p).division == "closed" for p in logs)
    return logs


def _main(logs, ruleset=None):
    return compliance.main(types.SimpleNamespace(logs=[str(p) for p in logs], ruleset=ruleset))


def test_every_closed_v07_log_passes(capsys):
    assert _main(_closed_v07_logs()) == 0, capsys.readouterr().out


def test_non_converged_run_fails_only_the_target_check(capsys):
    assert _main([V07 / NOT_CONVERGED]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{V07 / NOT_CONVERGED}: Failed checks for eval_accuracy : v['value'] >= 0.7590 and v['value'] < 1.0"]


def test_v06_logs_as_the_official_checker_judges_them(capsys):
    nvidia = sorted(FIXTURES.glob("v0.6/NVIDIA/results/*/*/result_*.txt"))
    assert len(nvidia) == 15 and _main(nvidia) == 0, capsys.readouterr().out
    # Google's v0.6 logs log cache_clear as null (the 0.6.0 config wants true) and name
    # Mask R-CNN "mask"; `python -m mlperf_logging.compliance_checker --ruleset 0.6.0` fails them too.
    assert _main([FIXTURES / "v0.6/Google/results/tpu-v3-32/ssd/result_0.txt"]) == 1
    assert "CHECK for 'cache_clear' failed" in capsys.readouterr().out


def _edit(text, key, value):
    pattern = rf'("key": "{key}", "value": )[^,]*'
    assert re.search(pattern, text), key
    return re.sub(pattern, rf"\g<1>{value}", text)


def _line(key, value):
    return (':::MLLOG {"namespace": "", "time_ms": 1594790000000, "event_type": "POINT_IN_TIME", '
            f'"key": "{key}", "value": {json.dumps(value)}, "metadata": {{}}}}')


def _sgd_resnet(learning_rate):
    """The published LARS ResNet log turned into an SGD one with the keys closed SGD needs."""
    sgd = {"sgd_opt_base_learning_rate": learning_rate, "sgd_opt_learning_rate_decay_steps": 37,
           "sgd_opt_weight_decay": 0.0001 * 2, "sgd_opt_momentum": 0.9, "opt_learning_rate_warmup_epochs": 2}
    text = _edit(RESNET.read_text(), "opt_name", '"sgd"')
    opt_line = next(l for l in text.splitlines() if '"key": "opt_name"' in l)
    return text.replace(opt_line, "\n".join([opt_line] + [_line(k, v) for k, v in sgd.items()]))


# The changed values of the issue; each is caught by the official checker configs AND by the
# whitelist (rules/0.7.0/whitelist/*.yaml through whitelist.check_logged).
MUTATIONS = {
    "resnet_sgd_lr": (lambda: _sgd_resnet(0.0015), "sgd_opt_base_learning_rate"),
    "resnet_adamw": (lambda: _edit(RESNET.read_text(), "opt_name", '"adamw"'), "opt_name"),
    "ssd_max_samples": (lambda: _edit(SSD.read_text(), "max_samples", "7"), "max_samples"),
    "maskrcnn_lr": (lambda: _edit(MASKRCNN.read_text(), "opt_base_learning_rate", "0.03"), "opt_base_learning_rate"),
}


def _write(tmp_path, text, name="result_0.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sgd_resnet_with_a_valid_learning_rate_passes(tmp_path, capsys):
    assert _main([_write(tmp_path, _sgd_resnet(2.048))]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_changed_constrained_value_fails_and_names_the_key(tmp_path, capsys, name):
    make, key = MUTATIONS[name]
    path = _write(tmp_path, make())
    assert _main([path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out and all(line.startswith(f"{path}: ") for line in out)
    assert all(key in line or "no checker config" in line for line in out), out   # nothing else
    assert any(line.startswith(f"{path}: hparam {key} = ") for line in out)   # the whitelist
    assert any(f"CHECK for '{key}' failed" in line for line in out)           # the official configs


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_official_checker_alone_catches(tmp_path, monkeypatch, name):
    make, key = MUTATIONS[name]
    monkeypatch.setattr(compliance, "check_hparams", lambda path, record: [])
    problems = compliance.check_log(str(_write(tmp_path, make())))
    assert any(f"CHECK for '{key}' failed" in p for p in problems), problems
    assert all(key in p or p == "no checker config training_0.7.0/closed_resnet_adamw.yaml"
               for p in problems), problems


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_whitelist_alone_catches(tmp_path, monkeypatch, name):
    """Depends on whitelist.check_logged and rules/0.7.0/whitelist/{resnet,ssd,maskrcnn}.yaml."""
    make, key = MUTATIONS[name]
    monkeypatch.setattr(compliance, "run_checker", lambda path, record: [])
    problems = compliance.check_log(str(_write(tmp_path, make())))
    assert problems and all(p.startswith(f"hparam {key} = ") for p in problems), problems


def test_repeated_checks_are_independent_and_write_no_files(tmp_path, monkeypatch, capsys):
    from mlperf_logging.compliance_checker import mlp_compliance
    monkeypatch.chdir(tmp_path)
    bad = _write(tmp_path, MUTATIONS["resnet_adamw"][0]())
    for _ in range(2):
        assert compliance.check_log(str(bad))
        assert compliance.check_log(str(RESNET)) == []
        assert mlp_compliance.enqueued_configs == []
    mlp_compliance.enqueued_configs.append("training_0.7.0/closed_bert.yaml")   # left over by someone else
    assert compliance.check_log(str(RESNET)) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name]            # no compliance_checker.log


def test_small_preset_skips_only_the_target_check(tmp_path, capsys):
    text = re.sub(r'("key": "eval_accuracy", "value": )[0-9.]+', r"\g<1>0.01", SSD.read_text())
    path = _write(tmp_path, text)
    assert _main([path]) == 1
    assert "eval_accuracy" in capsys.readouterr().out
    preset = ('0: :::MLLOG {"namespace": "", "time_ms": 0, "event_type": "POINT_IN_TIME", '
              '"key": "mlperf_train_preset", "value": "small", '
              '"metadata": {"ruleset": "0.7.0", "target": 0.01}}\n')
    path.write_text(preset + text)
    assert _main([path]) == 0, capsys.readouterr().out
    path.write_text(preset + _edit(text, "max_samples", "7"))
    assert _main([path]) == 1
    assert "max_samples" in capsys.readouterr().out


@pytest.mark.parametrize("bench", ["resnet", "ssd", "maskrcnn", "gnmt", "transformer", "minigo"])
def test_small_configs_are_the_official_ones_without_the_target_check(tmp_path, bench):
    """A small preset's log meets every check of the official benchmark config but the target."""
    from mlperf_logging.compliance_checker import mlp_compliance
    official = Path(mlp_compliance.__file__).parent / "training_0.7.0" / f"closed_{bench}.yaml"
    derived = compliance._without_target_check(official, str(tmp_path))
    load = lambda p: yaml.load(p.read_text(), Loader=yaml.BaseLoader)
    expected = load(official)
    for item in expected:
        if item.get("KEY", {}).get("NAME") == "eval_accuracy":
            del item["KEY"]["ATLEAST_ONE_CHECK"]
    assert derived != official and load(derived) == expected


def test_our_ncf_small_logs_pass_and_the_ncf_config_runs(tmp_path, capsys):
    logs = sorted(OURS.glob("result_*.txt"))
    assert _main(logs) == 0, capsys.readouterr().out
    bad = _write(tmp_path, _edit(_edit(logs[0].read_text(), "opt_name", '"sgd"'), "input_hp_num_neg", "5"))
    assert _main([bad]) == 1
    out = capsys.readouterr().out
    assert "CHECK for 'opt_name' failed" in out and "CHECK for 'input_hp_num_neg' failed" in out   # closed_ncf.yaml
    assert "hparam opt_name = 'sgd'" in out                                                       # the whitelist
    # the reference preset keeps the target check of closed_ncf.yaml (HR@10 >= 0.635)
    reference = _write(tmp_path, logs[0].read_text().replace('"value": "small"', '"value": "reference"'))
    assert _main([reference]) == 1
    assert "Failed checks for eval_accuracy" in capsys.readouterr().out


def test_unusable_input_exits_2_with_one_line_each(tmp_path, capsys):
    junk = _write(tmp_path, "no mlperf here\n", "junk.txt")
    empty = _write(tmp_path, "", "empty.txt")
    v05 = next(FIXTURES.glob("v0.5/**/result_0.txt"))
    logs = [junk, empty, tmp_path / "missing.txt", tmp_path, v05]
    assert _main(logs) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == len(logs) and "Traceback" not in err
    assert "v0.5 :::MLPv0.5.0 logs cannot be checked" in err


def test_wrong_ruleset_for_the_format_or_benchmark_exits_2(capsys):
    v06 = next(FIXTURES.glob("v0.6/NVIDIA/**/result_0.txt"))
    assert cli.main(["check", "--ruleset", "0.7.0", str(v06)]) == 2
    assert "checked by ruleset 0.6.0" in capsys.readouterr().err
    assert cli.main(["check", "--ruleset", "0.6.0", str(OURS / "result_0.txt")]) == 2   # ncf is not in 0.6.0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "ncf is not a benchmark of ruleset 0.6.0" in err[0]


def test_a_line_the_official_parser_chokes_on_is_a_finding(tmp_path, capsys):
    path = _write(tmp_path, RESNET.read_text() + ':::MLLOG {"key": "no_time"}\n')
    assert _main([path]) == 1
    assert "cannot parse" in capsys.readouterr().out


def test_cli_check_exit_codes(capsys):
    assert cli.main(["check", str(RESNET), str(SSD)]) == 0
    assert cli.main(["check", str(V07 / NOT_CONVERGED)]) == 1
    assert capsys.readouterr().err == ""
