"""Scores of the published fixture folders: pinned, and equal to the official summarizer (v0.7)."""
import contextlib
import io
import json
import os
import types
from pathlib import Path

import pytest

from mlperf_train import score

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "mlperf_results"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared fixtures not present")

# folder (relative to FIXTURES) -> expected minutes; computed once, v0.7 checked against the
# official summarizer below, v0.6 gnmt by hand (olympic mean of run_stop - run_start in seconds).
EXPECTED_MINUTES = {
    "v0.5/v0.5.0/google/cloud_v2.8/gnmt-tpuv2-8/results/tpu/gnmt": 40.370987036824225,
    "v0.5/v0.5.0/intel/intel_ncf_submission/results/skx8180/ncf": 29.79787430548006,
    "v0.6/Google/results/tpu-v3-32/gnmt": 12.248025000095367,
    "v0.6/Google/results/tpu-v3-32/mask": 107.03376666704814,
    "v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch/transformer": 20.344202082852522,
    "v0.7/Google/results/tpu-v4-16-TF/maskrcnn": 103.10435,
    "v0.7/NVIDIA/results/dgx1_ngc20.06_mxnet/resnet": 71.27832222222223,
    "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/gnmt": 18.501885416666664,
    "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/ssd": 20.689961111111113,
    "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/transformer": 18.811895833333335,
    "v0.7/NVIDIA/results/dgx1_ngc20.06_tensorflow/minigo": 603.59899375,
}
V07 = [k for k in EXPECTED_MINUTES if k.startswith("v0.7/")]


@pytest.mark.parametrize("folder", sorted(EXPECTED_MINUTES))
def test_pinned_minutes(folder):
    result = score.score_folder(str(FIXTURES / folder))
    assert result.valid, result.reason
    assert result.minutes == pytest.approx(EXPECTED_MINUTES[folder], rel=1e-9)


@pytest.mark.parametrize("folder", V07)
def test_v07_equals_official_summarizer(folder):
    from mlperf_logging.result_summarizer.result_summarizer import (
        _compute_strong_score_standalone)
    path = str(FIXTURES / folder)
    with contextlib.redirect_stdout(io.StringIO()):
        official, _, _ = _compute_strong_score_standalone(
            os.path.basename(path), "system", False, path, "training", "0.7.0")
    assert score.score_folder(path).minutes == pytest.approx(official, rel=1e-9)


def test_v06_gnmt_by_hand():
    from mlperf_train.results import read_run
    folder = FIXTURES / "v0.6/Google/results/tpu-v3-32/gnmt"
    times = sorted(read_run(p).minutes for p in folder.glob("result_*.txt"))
    assert len(times) == 10
    assert score.score_folder(str(folder)).minutes == pytest.approx(sum(times[1:-1]) / 8)


def test_ncf_first_50_converged_in_run_order():
    folder = FIXTURES / "v0.5/v0.5.0/intel/intel_ncf_submission/results/skx8180/ncf"
    result = score.score_folder(str(folder))
    assert (result.runs, result.converged, result.round) == (100, 55, "0.5.0")
    assert result.normalized == pytest.approx(46.72 / result.minutes)


def test_incomplete_series_is_invalid(tmp_path):
    source = FIXTURES / "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/ssd"
    for i in range(3):
        (tmp_path / f"result_{i}.txt").write_text((source / f"result_{i}.txt").read_text())
    result = score.score_folder(str(tmp_path))
    assert not result.valid and result.minutes is None
    assert "3 of 5 required runs" in result.reason


def test_two_non_converged_runs_make_v07_invalid(tmp_path):
    source = FIXTURES / "v0.7/NVIDIA/results/dgx1_ngc20.06_pytorch/ssd"
    for i in range(5):
        text = (source / f"result_{i}.txt").read_text()
        if i < 2:
            text = text.replace('"status": "success"', '"status": "aborted"')
        (tmp_path / f"result_{i}.txt").write_text(text)
    result = score.score_folder(str(tmp_path))
    assert not result.valid and "2 non-converged" in result.reason


def test_main_json(capsys):
    folder = str(FIXTURES / V07[0])
    args = types.SimpleNamespace(folders=[folder], ruleset=None, json=True, csv=False)
    assert score.main(args) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["folder"] == folder and row["benchmark"] == "maskrcnn" and row["round"] == "0.7.0"
    assert {"runs", "converged", "minutes", "valid", "reason"} <= set(row)


def test_main_table_and_not_a_log(tmp_path, capsys):
    (tmp_path / "result_0.txt").write_text("hello\nnot a log\n")
    args = types.SimpleNamespace(folders=[str(tmp_path)], ruleset=None, json=False, csv=False)
    assert score.main(args) == 1
    assert "not an MLPerf log" in capsys.readouterr().out


def test_first_50_success_file_disagrees_with_the_logs():
    """The published first_50_success_file lists runs whose logs say success=false (e.g.
    result_12), so it cannot be reproduced from these logs; we follow the logs."""
    from mlperf_train.results import read_run
    root = FIXTURES / "v0.5/v0.5.0/intel/intel_ncf_submission/results/skx8180"
    listed = (root / "first_50_success_file").read_text().split()
    assert len(listed) == 50
    assert not read_run(str(root / "ncf/result_12.txt")).converged
    assert "ncf/result_12.txt" in listed
