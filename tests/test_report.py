"""``mlperf-train report``: the JSON on fixture folders, checked by hand; a VFLOPS worked
example; one figure per benchmark in a self-contained page."""
import json
import math
import re

import pytest

from helpers import ROOT, run_cli
from mlperf_train import report, vflops

OURS = ROOT / "tests/data/report/1xcpu"
SSD = ROOT / "tests/data/mlperf_results/v0.7/Google/results/tpu-v4-16-TF/ssd"


@pytest.fixture(scope="module")
def data():
    return report.build([OURS, SSD])


def test_published_folder_by_hand(data):
    ssd = [s for s in data["score"] if s["benchmark"] == "ssd"][0]
    # run_start..run_stop of result_0..4 (time_ms in the logs): 8.686667, 8.684033, 8.67535,
    # 8.685933, 8.684083 minutes; the olympic mean drops result_2 (fastest) and result_0 (slowest)
    assert ssd["valid"] and ssd["runs"] == 5
    assert ssd["minutes"] == pytest.approx((8.684033333 + 8.685933333 + 8.684083333) / 3, abs=1e-6)
    runs = {r["file"]: r for r in data["runs"] if r["benchmark"] == "ssd"}
    assert {f: r["olympic"] for f, r in runs.items()} == {
        "result_0.txt": "dropped slowest", "result_1.txt": "kept", "result_2.txt": "dropped fastest",
        "result_3.txt": "kept", "result_4.txt": "kept"}
    assert runs["result_2.txt"]["minutes"] == pytest.approx((1592970751405 - 1592970230884) / 60000)
    last = runs["result_2.txt"]["curve"][-1]            # eval_accuracy 0.23178 at epoch 50
    assert last["epoch"] == 50 and last["quality"] == {"mAP": pytest.approx(0.23178118467330933)}
    assert last["minutes"] == pytest.approx((1592970751379 - 1592970230884) / 60000)
    assert runs["result_2.txt"]["target"] == {"mAP": 0.23}
    assert all(r["flops"] is None and r["throughput"] == [] for r in runs.values())   # published: no FLOPs
    assert data["benchmarks"]["ssd"]["vflops_exponent"] == 10


def test_our_folder_by_hand(data):
    run = [r for r in data["runs"] if r["benchmark"] == "ncf"][0]
    assert run["converged"] and run["olympic"] == "not counted"      # 1 of NCF 0.5.0's 100 runs
    assert [p["samples_per_second"] for p in run["throughput"]] == pytest.approx(
        [162318.84057971014, 239572.19251336897, 287179.4871794872, 282947.36842105264])
    work = run["flops"]
    seconds = (1796103886466 - 1796103873483) / 1000              # run_start..run_stop: 12.983 s
    samples = 4 * 403200                                          # 4 epochs of 403,200 samples
    achieved = 16272.0 * samples / seconds                        # 2.0214e9 FLOPS
    assert work["time_to_train_seconds"] == pytest.approx(seconds)
    assert work["samples_trained"] == samples and work["train_flops"] == pytest.approx(26_243_481_600)
    assert work["achieved_flops"] == pytest.approx(2.021372687e9)
    assert achieved == pytest.approx(2.021372687e9)
    assert (work["op_class"], work["precision"], work["peak_flops"]) == ("gemm", "fp32", 4.0e10)
    assert work["mfu"] == pytest.approx(2.021372687e9 / 4.0e10)      # 0.0505
    ratio = 0.6690307328605201 / 0.65                               # the last evaluation over the target
    assert work["quality_ratio"] == pytest.approx(ratio)
    assert work["vflops"] == pytest.approx(2.021372687e9 * 1.155216, rel=1e-5)    # ratio^5 = 1.155216
    assert data["rooflines"] == {str(OURS / "ncf"): str(OURS / "roofline.json")}


def test_vflops_worked_example():
    # HPC AI500 v2.0: VFLOPS = FLOPS * (achieved / target)^n. ResNet-50 (n = 5) at 1 PFLOPS
    # reaching top-1 0.77 against 0.759: 0.77 / 0.759 = 1.0144928; ^2 = 1.0291955; ^4 = 1.0592434;
    # ^5 = 1.0745950.
    assert vflops.exponent("resnet") == 5
    ratio = vflops.quality_ratio({"top1_accuracy": 0.77}, {"top1_accuracy": 0.759})
    assert ratio == pytest.approx(1.0144928, abs=1e-7)
    assert vflops.valid_flops(1e15, ratio, 5) == pytest.approx(1.0745950e15, rel=1e-6)
    # Mask R-CNN (n = 10): BBOX 0.380 / 0.377 = 1.0079576, SEGM 0.340 / 0.339 = 1.0029499: the
    # smaller counts; ^2 = 1.0059084, ^4 = 1.0118518, ^5 = 1.0148366, ^10 = 1.0298932.
    assert vflops.exponent("maskrcnn") == 10
    ratio = vflops.quality_ratio({"BBOX": 0.380, "SEGM": 0.340}, {"BBOX": 0.377, "SEGM": 0.339})
    assert ratio == pytest.approx(0.340 / 0.339)
    assert vflops.valid_flops(2e15, ratio, 10) == pytest.approx(2e15 * 1.0298932, rel=1e-6)
    # short of the target, VFLOPS falls fast: 0.95^5 = 0.7737809
    assert vflops.valid_flops(1.0, 0.95, 5) == pytest.approx(0.7737809375)
    assert {name: e["exponent"] for name, e in vflops.exponents().items()} == {
        "resnet": 5, "ssd": 10, "maskrcnn": 10, "transformer": 5, "gnmt": 5, "ncf": 5, "minigo": 5}


def test_page_has_one_figure_per_benchmark_and_is_self_contained(tmp_path):
    maskrcnn = ROOT / "tests/data/mlperf_results/v0.7/Google/results/tpu-v4-16-TF/maskrcnn"
    result = run_cli("report", OURS, SSD, maskrcnn, "--output", tmp_path / "out", timeout=300)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "out" / report.HTML_FILE).read_text()
    figures = re.findall(r"<img data-benchmark='(\w+)'[^>]* src='data:image/png;base64,", page)
    assert sorted(figures) == ["maskrcnn", "ncf", "ssd"]
    assert len(re.findall(r"<img", page)) == 3
    assert not re.search(r"(src|href)=['\"](?!data:)", page)      # nothing outside the file
    data = json.loads((tmp_path / "out" / report.JSON_FILE).read_text())
    assert [s["benchmark"] for s in data["score"]] == ["ncf", "ssd", "maskrcnn"]
    mask = [r for r in data["runs"] if r["benchmark"] == "maskrcnn"]
    assert set(mask[0]["target"]) == {"BBOX", "SEGM"} and all(math.isfinite(r["minutes"]) for r in mask)


def test_a_system_folder_stands_for_its_benchmark_folders_and_bad_input_is_one_line(tmp_path, capsys):
    from mlperf_train import cli

    assert report.benchmark_folders([OURS]) == [OURS / "ncf"]
    assert cli.main(["report", str(tmp_path / "nothing"), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nothing: not a folder" in err, err


def test_a_log_root_stands_for_every_benchmark_folder_below_it(tmp_path, capsys):
    """``run --output out`` writes ``out/<system>/<benchmark>/``; ``score``, ``check`` and
    ``report`` given ``out`` (or a submitter's ``results/``) find every such folder."""
    from mlperf_train import cli, score

    results = ROOT / "tests/data/mlperf_results/v0.7/Google/results"
    found = report.benchmark_folders([results])
    assert SSD in found and len(found) >= 2 and found == sorted(found)
    assert report.benchmark_folders([OURS.parent]) == [OURS / "ncf"]
    assert score.result_folders([str(OURS.parent)]) == [str(OURS / "ncf")]
    assert cli.main(["score", str(OURS.parent)]) in (0, 1)           # scored, not "no result_*.txt"
    assert "ncf" in capsys.readouterr().out
    empty = tmp_path / "empty" / "sys"
    empty.mkdir(parents=True)
    assert cli.main(["report", str(tmp_path / "empty"), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no result_*.txt" in err, err
    assert cli.main(["check", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no result_*.txt" in err, err
