"""``mlperf-train check`` on published v0.7 logs and on copies with a constrained value changed."""
import re
import types
from pathlib import Path

import pytest

from mlperf_train import compliance

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "mlperf_results"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared fixtures not present")
V07 = FIXTURES / "v0.7"
# The one non-converged published run: the official checker fails its target check too.
NOT_CONVERGED = {"NVIDIA/results/dgx1_ngc20.06_mxnet/resnet/result_0.txt"}


def _closed_v07_logs():
    return sorted(p for p in V07.glob("*/results/*/*/result_*.txt")
                  if str(p.relative_to(V07)) not in NOT_CONVERGED)


def _main(logs, ruleset=None):
    return compliance.main(types.SimpleNamespace(logs=[str(p) for p in logs], ruleset=ruleset))


def test_every_closed_v07_log_passes(capsys):
    assert _main(_closed_v07_logs()) == 0, capsys.readouterr().out


def test_non_converged_run_fails_target_check(capsys):
    assert _main([V07 / next(iter(NOT_CONVERGED))]) == 1
    assert "eval_accuracy" in capsys.readouterr().out


def _mutated(tmp_path, folder, key, new_value):
    source = next((V07 / folder).glob("result_0.txt")) if "/" in folder else None
    text = source.read_text()
    pattern = rf'("key": "{key}", "value": )[^,]*'
    assert re.search(pattern, text), key
    path = tmp_path / "result_0.txt"
    path.write_text(re.sub(pattern, rf"\g<1>{new_value}", text))
    return path


@pytest.mark.parametrize("folder,key,value", [
    ("NVIDIA/results/dgx1_ngc20.06_mxnet/resnet", "opt_name", '"adamw"'),
    ("NVIDIA/results/dgx1_ngc20.06_pytorch/ssd", "max_samples", "7"),
    ("Google/results/tpu-v4-16-TF/maskrcnn", "opt_base_learning_rate", "0.03"),
])
def test_changed_constrained_value_fails_and_names_key(tmp_path, capsys, folder, key, value):
    path = _mutated(tmp_path, folder, key, value)
    assert _main([path]) == 1
    out = capsys.readouterr().out
    assert key in out
    assert all(line.startswith(str(path)) for line in out.splitlines())


def test_resnet_sgd_learning_rate_not_multiple(tmp_path, capsys):
    text = (V07 / "NVIDIA/results/dgx1_ngc20.06_mxnet/resnet/result_1.txt").read_text()
    text = text.replace('"key": "opt_name", "value": "lars"', '"key": "opt_name", "value": "sgd"')
    text += ('\n:::MLLOG {"namespace": "", "time_ms": 1, "event_type": "POINT_IN_TIME", '
             '"key": "sgd_opt_base_learning_rate", "value": 0.0015, "metadata": {}}\n')
    path = tmp_path / "result_1.txt"
    path.write_text(text)
    assert _main([path]) == 1
    assert "sgd_opt_base_learning_rate" in capsys.readouterr().out


def test_unusable_input_exits_2(tmp_path, capsys):
    junk = tmp_path / "junk.txt"
    junk.write_text("no mlperf here\n")
    assert _main([junk, tmp_path / "missing.txt"]) == 2
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_small_preset_skips_only_the_target_check(tmp_path, capsys):
    text = (V07 / "NVIDIA/results/dgx1_ngc20.06_pytorch/ssd/result_0.txt").read_text()
    text = re.sub(r'("key": "eval_accuracy", "value": )[0-9.]+', r"\g<1>0.01", text)
    path = tmp_path / "result_0.txt"
    path.write_text(text)
    assert _main([path]) == 1
    assert "eval_accuracy" in capsys.readouterr().out
    preset = ('0: :::MLLOG {"namespace": "", "time_ms": 0, "event_type": "POINT_IN_TIME", '
              '"key": "mlperf_train_preset", "value": "small", '
              '"metadata": {"ruleset": "0.7.0", "target": 0.01}}\n')
    path.write_text(preset + text)
    assert _main([path]) == 0, capsys.readouterr().out
    path.write_text(preset + re.sub(r'("key": "max_samples", "value": )[0-9]+', r"\g<1>7", text))
    assert _main([path]) == 1
    assert "max_samples" in capsys.readouterr().out
