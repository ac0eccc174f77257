"""Scores of the published fixture folders: pinned, equal to the official summarizer (v0.7; v0.6
up to its unit bug), checked by an independent exact computation (v0.5, v0.6); `score` and
`check` agree on every file; the rules' edge cases; exit codes."""
import contextlib
import csv
import io
import json
import logging
import os
import re
import shutil
import types
from decimal import Decimal

import pytest

from mlperf_train import cli, compliance, score, verdict
from mlperf_train.errors import UsageError
from mlperf_train.results import read_run
from test_results import OURS, published_fixtures

FIXTURES = published_fixtures()
FOLDERS = sorted(str(p.parent.relative_to(FIXTURES)) for p in FIXTURES.glob("v0.*/**/result_*.txt")
                 if p.name == min(q.name for q in p.parent.glob("result_*.txt")))

# Our minutes for every complete fixture folder. v0.7: equal to the official summarizer (test
# below); v0.5/v0.6: equal to an exact decimal computation from the raw text (test below), and
# by hand for v0.6 Google gnmt before its logs counted as rejected. None: invalid, and why.
EXPECTED = {
    "v0.5/v0.5.0/google/cloud_v2.8/gnmt-tpuv2-8/results/tpu/gnmt": 40.370987036822917,
    "v0.5/v0.5.0/intel/intel_ncf_submission/results/skx8180/ncf": 29.797874305555556,   # first 50 of 55
    # Google's v0.6 logs fail the official 0.6.0 checker (cache_clear null; "mask"): not runs
    "v0.6/Google/results/tpu-v3-32/gnmt": None,
    "v0.6/Google/results/tpu-v3-32/mask": None,
    "v0.6/Google/results/tpu-v3-32/resnet": None,
    "v0.6/Google/results/tpu-v3-32/ssd": None,
    "v0.6/Google/results/tpu-v3-32/transformer": None,
    "v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch/ssd": 22.363288888888889,
    "v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch/transformer": 20.344202083333333,
    "v0.6/NVIDIA/results/dgx1_ngc19.05_tensorflow/minigo": 27.392233333333333,           # from eval_result
    "v0.7/Google/results/tpu-v4-16-TF/maskrcnn": 103.10435,
    "v0.7/Google/results/tpu-v4-16-TF/ssd": 8.684683333333333,
    "v0.7/NVIDIA/results/dgx1_ngc20.06_mxnet/resnet": 71.27832222222223,                 # 4 of 5 converged
    "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/gnmt": 18.501885416666667,
    "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/ssd": 20.689961111111111,
    "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/transformer": 18.811895833333333,
    "v0.7/NVIDIA/results/dgx1_ngc20.06_tensorflow/minigo": 603.59899375,
}
SINGLE_LOGS = [f for f in FOLDERS if f not in EXPECTED]     # one log each, for check tests
V07 = [f for f in FOLDERS if f.startswith("v0.7/")]


def _official_minutes(path, ruleset):
    from mlperf_logging.result_summarizer.result_summarizer import _compute_strong_score_standalone
    logging.disable(logging.WARNING)   # its checker warns about the non-converged ResNet run
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return _compute_strong_score_standalone(os.path.basename(path), "system", False, str(path),
                                                    "training", ruleset)[0]
    finally:
        logging.disable(logging.NOTSET)


def test_every_fixture_folder_is_pinned():
    assert len(FOLDERS) == 28 and len(SINGLE_LOGS) == 11 and len(V07) == 16
    assert all(len(list((FIXTURES / f).glob("result_*.txt"))) == 1 for f in SINGLE_LOGS)


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_pinned_minutes(folder):
    result = score.score_folder(str(FIXTURES / folder))
    assert result.usable and result.round == "0.{}.0".format(folder[3])
    if EXPECTED[folder] is None:
        assert not result.valid and result.converged == 0 and len(result.not_counted) == result.runs
    else:
        assert result.valid, result.reason
        assert result.minutes == pytest.approx(EXPECTED[folder], rel=1e-9)


@pytest.mark.parametrize("folder", V07)
def test_v07_equals_official_summarizer(folder):
    path = FIXTURES / folder
    official = _official_minutes(path, "0.7.0")
    ours = score.score_folder(str(path)).minutes
    assert ours == pytest.approx(official, rel=1e-9) if official is not None else ours is None


def test_official_summarizer_reads_v06_seconds_as_milliseconds():
    """Why v0.6 is pinned against our own exact computation: the official function divides
    v0.6 stamps (seconds) by 60 * 1000. It drops the Google v0.6 logs as we do: they fail its
    0.6.0 compliance check."""
    for folder in (f for f in EXPECTED if f.startswith("v0.6/") and "minigo" not in f and "mask" not in f):
        official = _official_minutes(FIXTURES / folder, "0.6.0")
        ours = score.score_folder(str(FIXTURES / folder)).minutes
        assert (official is None and ours is None) or official * 1000 == pytest.approx(ours, rel=1e-9), folder


def test_official_summarizer_drops_every_v06_minigo_run():
    """It checks every file with training_0.6.0/common.yaml, which does not admit MiniGo
    (training_0.6.0/minigo.yaml is standalone), and would time it to run_stop, not to the
    passing model's eval_result: both wrong by the 0.6.0 rules. Ours uses minigo.yaml."""
    folder = FIXTURES / "v0.6/NVIDIA/results/dgx1_ngc19.05_tensorflow/minigo"
    assert _official_minutes(folder, "0.6.0") is None
    assert score.score_folder(str(folder)).valid


@pytest.mark.parametrize("folder", FOLDERS)
def test_score_and_check_agree_on_every_fixture(folder, capsys):
    """A file counts as a converged run in `score` exactly when `check` finds nothing in it."""
    result = score.score_folder(str(FIXTURES / folder))
    not_counted = {line.split(": ", 1)[0] for line in result.not_counted}
    for path in sorted((FIXTURES / folder).glob("result_*.txt")):
        code = compliance.main(types.SimpleNamespace(logs=[str(path)], ruleset=None))
        out = capsys.readouterr().out
        assert code in (0, 1) and (code == 1) == (path.name in not_counted), (path, out)
        if code:
            first = next(l for l in result.not_counted if l.startswith(path.name + ": "))
            assert first.split(": ", 1)[1].split(" (+")[0] in out
    assert result.converged == result.runs - len(not_counted)


_STAMP = {"v0.5": re.compile(r":::MLPv0\.5\.0 \S+ ([0-9.]+) \([^)]*\) (run_start|run_stop)(.*)"),
          "v0.6": re.compile(r":::MLL ([0-9.]+) (run_start|run_stop): (.*)")}


@pytest.mark.parametrize("folder", [f for f in EXPECTED if EXPECTED[f] and not f.startswith("v0.7/") and "minigo" not in f])
def test_v05_v06_equal_an_exact_computation(folder):
    """Independent of the reader: first run_start/run_stop stamps by regex, exact decimals,
    success from the run_stop text, runs in index order, NCF's first 50 converged."""
    runs = sorted((FIXTURES / folder).glob("result_*.txt"), key=lambda p: int(p.stem.split("_")[1]))
    minutes = []
    for path in runs:
        found = {}
        for line in path.read_text(errors="replace").splitlines():
            match = _STAMP[folder[:4]].search(line)
            if match:
                found.setdefault(match.group(2), (Decimal(match.group(1)), match.group(3)))
        if "success" in found["run_stop"][1] and "false" not in found["run_stop"][1]:
            minutes.append((found["run_stop"][0] - found["run_start"][0]) / 60)
    if folder.endswith("/ncf"):
        minutes = minutes[:50]
    else:
        assert len(minutes) == len(runs)
    kept = sorted(minutes)[1:-1]
    exact = float(sum(kept) / len(kept))
    assert exact == pytest.approx(EXPECTED[folder], rel=1e-12)
    assert score.score_folder(str(FIXTURES / folder)).minutes == pytest.approx(exact, rel=1e-9)


def test_ncf_first_50_converged_in_run_order():
    folder = FIXTURES / "v0.5/v0.5.0/intel/intel_ncf_submission/results/skx8180/ncf"
    result = score.score_folder(str(folder))
    assert (result.runs, result.converged, result.round) == (100, 55, "0.5.0")
    assert result.reason == "the first 50 of 55 converged runs, in run order"
    # the 50 fastest converged runs would give a different (smaller) score
    fastest = sorted(v.minutes for v in map(verdict.judge, folder.glob("result_*.txt")) if v.converged)[:50]
    assert score.olympic_mean(fastest) < result.minutes - 0.1


def test_run_order_is_by_index_not_by_name(tmp_path):
    for i in (10, 2, 1):
        (tmp_path / f"result_{i}.txt").write_text("")
    assert [os.path.basename(p) for p in score.result_files(tmp_path)] == ["result_1.txt", "result_2.txt", "result_10.txt"]


def test_first_50_success_file_disagrees_with_the_logs():
    """The published first_50_success_file lists runs whose logs say success=false (e.g.
    result_12), so it cannot be reproduced from these logs; we follow the logs."""
    root = FIXTURES / "v0.5/v0.5.0/intel/intel_ncf_submission/results/skx8180"
    listed = (root / "first_50_success_file").read_text().split()
    assert len(listed) == 50 and "ncf/result_12.txt" in listed
    assert not verdict.judge(str(root / "ncf/result_12.txt")).converged       # best HR@10 0.6343 < 0.635


def test_a_normalized_score_needs_a_comparable_reference_time():
    """rules/0.5.0/suite.yaml: reference_results.md's NCF time is another configuration's
    (target HR 0.9562), so NCF gets no normalized score; the others' times are comparable."""
    ncf = score.score_folder(FIXTURES / "v0.5/v0.5.0/intel/intel_ncf_submission/results/skx8180/ncf")
    assert ncf.valid and ncf.normalized is None
    from mlperf_train.rules import benchmark_rules
    assert benchmark_rules("ncf", "0.5.0").reference_minutes is None
    assert benchmark_rules("resnet", "0.5.0").reference_minutes == 8831.28


def _copy(source, target, count, edit=None):
    for i, path in enumerate(sorted(source.glob("result_*.txt"), key=lambda p: int(p.stem.split("_")[1]))[:count]):
        text = path.read_text()
        (target / path.name).write_text(edit(i, text) if edit else text)


SSD07 = FIXTURES / "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/ssd"


def test_incomplete_series_is_invalid(tmp_path):
    _copy(SSD07, tmp_path, 3)
    result = score.score_folder(str(tmp_path))
    assert not result.valid and result.usable and result.minutes is None
    assert result.reason == "3 of 5 required runs"
    (tmp_path / "result_3.txt.partial").write_text("killed half way\n")
    assert score.score_folder(str(tmp_path)).reason == "3 of 5 required runs; 1 unfinished run(s) (.partial) not counted"


def test_v07_one_non_converged_run_is_the_dropped_slowest_two_are_invalid(tmp_path):
    def abort(count):   # below the target: the status flag alone would not decide
        return lambda i, text: re.sub(r'("key": "eval_accuracy", "value": )[0-9.]+', r"\g<1>0.2", text) if i < count else text
    _copy(SSD07, tmp_path, 5, abort(1))
    result = score.score_folder(str(tmp_path))
    times = sorted(read_run(p).minutes for p in sorted(SSD07.glob("result_*.txt"))[1:])
    assert result.valid and result.minutes == pytest.approx(sum(times[1:]) / 3)
    assert result.reason == "1 non-converged run counted as the slowest"
    assert result.not_counted[0].startswith("result_0.txt: no evaluation reached the target 0.2300 (best 0.2000")
    _copy(SSD07, tmp_path, 5, abort(2))
    result = score.score_folder(str(tmp_path))
    assert not result.valid and result.reason == "2 non-converged runs, at most 1 allowed"


def test_v06_needs_every_run_converged(tmp_path):
    source = FIXTURES / "v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch/ssd"
    _copy(source, tmp_path, 5, lambda i, text: text.replace('"status": "success"', '"status": "aborted"') if i == 0 else text)
    result = score.score_folder(str(tmp_path))
    assert not result.valid and result.reason == "1 non-converged runs, at most 0 allowed"


def test_mixed_benchmarks_are_invalid(tmp_path):
    _copy(SSD07, tmp_path, 5)
    shutil.copy(FIXTURES / "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/gnmt/result_0.txt", tmp_path / "result_5.txt")
    result = score.score_folder(str(tmp_path))
    assert not result.valid and result.reason == "runs of different benchmarks: ssd, gnmt"


def test_our_small_preset_logs_are_flagged():
    result = score.score_folder(OURS)                              # a Path works too (series.py)
    assert (result.benchmark, result.round, result.preset, result.small_preset) == ("ncf", "0.5.0", "small", True)
    assert (result.runs, result.converged, result.valid) == (2, 2, False)
    assert result.reason == "2 of 50 required converged runs in 2 of 100 runs"
    assert "small (not a result)" in score.format_table([result])


def _main(folders, **flags):
    args = types.SimpleNamespace(folders=[str(f) for f in folders], ruleset=None, json=False, csv=False)
    vars(args).update(flags)
    return score.main(args)


MASKRCNN07 = "v0.7/Google/results/tpu-v4-16-TF/maskrcnn"
RESNET07 = "v0.7/NVIDIA/results/dgx1_ngc20.06_mxnet/resnet"


def test_main_json(capsys):
    folder = str(FIXTURES / MASKRCNN07)
    assert _main([folder], json=True) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["folder"] == folder and row["benchmark"] == "maskrcnn" and row["round"] == "0.7.0"
    assert {"runs", "converged", "minutes", "valid", "reason", "not_counted"} <= set(row)
    assert row["minutes"] == pytest.approx(EXPECTED[MASKRCNN07]) and row["not_counted"] == []


def test_main_csv_and_invalid_folder_exits_1(capsys):
    assert _main([OURS], csv=True) == 1
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["preset"] == "small" and row["valid"] == "False" and row["minutes"] == ""


def test_main_json_invalid_has_null_minutes(capsys):
    assert _main([OURS], json=True) == 1
    assert json.loads(capsys.readouterr().out)[0]["minutes"] is None


def test_unusable_folders_exit_2(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "result_0.txt").write_text("hello\nnot a log\n")
    (tmp_path / "empty").mkdir()
    assert _main([FIXTURES / MASKRCNN07, tmp_path / "junk", tmp_path / "empty"]) == 2
    out, err = capsys.readouterr()
    assert "not an MLPerf log" in out and "no result_*.txt files" in out
    assert err.count("\n") == 2 and "Traceback" not in err


def test_cli_exit_codes(tmp_path, capsys):
    assert cli.main(["score", str(FIXTURES / RESNET07)]) == 0
    out = capsys.readouterr().out
    assert "71.278" in out and f"{FIXTURES / RESNET07}/result_0.txt: no evaluation reached the target" in out
    assert cli.main(["score", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a folder" in err
    # judged by ruleset 0.6.0 (no failed run allowed; our 0.6.0 MLLOG configs, which want one init_start)
    assert cli.main(["score", "--ruleset", "0.6.0", str(FIXTURES / RESNET07)]) == 1
    out = capsys.readouterr().out
    assert "non-converged runs, at most 0 allowed" in out and "rules/0.6.0/compliance/common.yaml" in out
