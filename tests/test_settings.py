"""Settings are validated in one declarative place (``mlperf_train/settings.py``): ``validate``
and ``run`` agree on every file, one line each (``file: settings.key = value: rule``), exit 2;
a small preset's target is named as the ruleset's."""
import dataclasses

import pytest
import yaml

from helpers import ROOT
from mlperf_train import settings as settings_mod
from mlperf_train.cli import main as cli
from mlperf_train.settings import setting


def _variant(tmp_path, base: str, change: dict, name="bad.yaml"):
    doc = yaml.safe_load((ROOT / base).read_text())
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        node = doc
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


CASES = [
    ("hparams/resnet/small.yaml", {"settings.label_smoothing": 0.2},
     "settings.label_smoothing = 0.2: must be one of [0.0, 0.1] in the closed division"),
    ("hparams/transformer/small.yaml", {"settings.max_sequence_method": "chop"},
     "settings.max_sequence_method = 'chop': must be one of ['discard', 'truncate']"),
    ("hparams/ncf/small.yaml", {"settings.mf_dims": 8},
     "settings.mf_dims = 8: unknown setting; allowed: mf_dim,"),
    ("hparams/ncf/small.yaml", {"settings.mf_dim": "16"},
     "settings.mf_dim = '16': must be int like the default 64"),
    ("hparams/resnet/reference.yaml", {"settings.width": 32},
     "settings.width = 32: fixed at 64 in a closed-division reference run"),
    ("hparams/resnet/small.yaml", {"settings.eval_batch_size": 0},
     "settings.eval_batch_size = 0: must be >= 1"),
    ("hparams/ncf/small.yaml", {"target": {"HR": 0.65}},
     "target = {'HR': 0.65}: names ['HR'] where the target names ['hr_at_10'] (ruleset 0.5.0)"),
    ("hparams/ncf/small.yaml", {"target": "high"},
     "target = 'high': 'high' is neither a number nor a mapping of named numbers"),
    ("hparams/resnet/0.5.0/reference.yaml", {"ruleset": "0.4.0"},
     "ruleset = '0.4.0': unknown ruleset; allowed: 0.5.0, 0.6.0, 0.7.0"),
]


@pytest.mark.parametrize("base, change, line", CASES)
def test_validate_and_run_report_the_same_line(tmp_path, capsys, base, change, line):
    path = _variant(tmp_path, base, change)
    assert cli(["validate", str(path)]) == 2
    validated = capsys.readouterr().out.strip().splitlines()
    assert f"{path}: {line}" in "\n".join(validated), validated
    benchmark = yaml.safe_load(path.read_text())["benchmark"]
    assert cli(["run", benchmark, "--hparams", str(path), "--output", str(tmp_path / "logs")]) == 2
    refused = capsys.readouterr().err.strip().splitlines()
    assert [f"mlperf-train run: {v}" for v in validated] == refused
    assert not (tmp_path / "logs").exists()   # refused before any run


def test_a_two_valued_target_must_be_named_exactly(tmp_path, capsys):
    doc = {"benchmark": "maskrcnn", "preset": "small", "target": {"bbox": 0.1, "segm": 0.1}, "max_epochs": 1,
           "hparams": {}}
    path = tmp_path / "mask.yaml"
    path.write_text(yaml.safe_dump(doc))
    cli(["validate", str(path)])
    out = capsys.readouterr().out
    assert f"{path}: target = {{'bbox': 0.1, 'segm': 0.1}}: names ['bbox', 'segm'] where the target names " \
           f"['BBOX', 'SEGM'] (the names differ in case only; they must match exactly)" in out


def test_a_ruleset_named_in_the_file_must_agree_with_the_command_line(tmp_path, capsys):
    path = ROOT / "hparams/resnet/0.5.0/reference.yaml"
    assert cli(["validate", str(path)]) == 0       # the file names 0.5.0
    assert cli(["validate", "--ruleset", "0.7.0", str(path)]) == 2
    assert "ruleset = '0.5.0': this file is for ruleset 0.5.0, not --ruleset 0.7.0" in capsys.readouterr().out


@dataclasses.dataclass(frozen=True)
class PerRuleset:
    value_weight: float = setting(0.25, closed=True, reference={"0.5.0": 1.0}, allowed={"min": 0.0})


@pytest.mark.parametrize("raw, ruleset, problems", [
    ({}, "0.6.0", []),
    ({"value_weight": 0.25}, "0.5.0", ["settings.value_weight = 0.25: fixed at 1.0 (the 0.5.0 reference) in a "
                                       "closed-division reference run"]),
    ({}, "0.5.0", ["settings.value_weight = (missing): required in a closed reference preset of ruleset 0.5.0: "
                   "the reference value is 1.0, not the default 0.25"]),
    ({"value_weight": 1.0}, "0.5.0", []),
])
def test_reference_values_may_differ_by_ruleset(raw, ruleset, problems):
    found = settings_mod.check(raw, PerRuleset, ruleset, "closed", reference_preset=True)
    assert [f"{key} = {value!r}: {rule}" for key, value, rule in found] == problems
    assert settings_mod.check(raw, PerRuleset, ruleset, "open", reference_preset=True) == []


def test_a_setting_with_an_unknown_constraint_fails_at_import():
    with pytest.raises(ValueError, match="unknown constraint 'between'"):
        setting(1, allowed={"between": [0, 2]})
