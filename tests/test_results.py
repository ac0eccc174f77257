"""The reader: every MLPerf log format into run records; bad input gives a reason, never a crash.

``published_fixtures()`` is shared with test_score.py and test_compliance.py.
"""
import re
from pathlib import Path

import pytest

from mlperf_train.results import canonical_benchmark, parse_line, read_run

REPO = Path(__file__).resolve().parents[1]
OURS = Path(__file__).resolve().parent / "data" / "ours" / "cpu" / "ncf"   # written by `mlperf-train run ncf`


def published_fixtures() -> Path:
    """Real published result logs (v0.5, v0.6, v0.7) at ../shared/fixtures/mlperf_results
    from the repository root; CI has them at the same place, so their absence is a failure."""
    path = REPO.parent / "shared" / "fixtures" / "mlperf_results"
    if not (path / "v0.7").is_dir():
        pytest.fail(f"published MLPerf result logs are missing: expected them at {path} "
                    f"(../shared/fixtures/mlperf_results relative to the repository root {REPO})",
                    pytrace=False)
    return path


FIXTURES = published_fixtures()
ALL_LOGS = sorted(FIXTURES.glob("v0.*/**/result_*.txt"))


def _write(tmp_path, text, name="result_0.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def _mllog(time_ms, key, value=None, **metadata):
    import json
    return ":::MLLOG " + json.dumps({"namespace": "", "time_ms": time_ms, "event_type": "POINT_IN_TIME",
                                     "key": key, "value": value, "metadata": metadata})


def test_mllog_with_prefixes(tmp_path):
    path = _write(tmp_path, "\n".join([
        '0: ' + _mllog(1000, "submission_benchmark", "resnet"),
        '[1,0]<stdout>::' + _mllog(60000, "run_start"),
        '2020-01-01 12:00:00 INFO ' + _mllog(180000, "run_stop", status="success"),
    ]))
    record = read_run(path)
    assert (record.log_format, record.benchmark, record.ruleset) == ("mllog", "resnet", "0.7.0")
    assert record.converged and record.minutes == 2.0 and record.reason == ""


def test_first_run_stop_counts_as_in_the_official_summarizer(tmp_path):
    # Several ranks may each print the same events; the first run_start/run_stop count.
    lines = [_mllog(0, "run_start"), _mllog(0, "run_start"), _mllog(60000, "run_stop", status="success"),
             _mllog(120000, "run_stop", status="aborted")]
    record = read_run(_write(tmp_path, "\n".join(lines)))
    assert record.converged and record.minutes == 1.0


def test_our_logs_carry_ruleset_and_preset():
    record = read_run(OURS / "result_0.txt")
    assert (record.log_format, record.benchmark, record.ruleset, record.preset) == ("mllog", "ncf", "0.5.0", "small")
    assert record.converged and record.division == "closed" and 0 < record.minutes < 5


def test_aborted_run(tmp_path):
    path = _write(tmp_path, "\n".join([_mllog(0, "run_start"), _mllog(6000, "run_stop", status="aborted")]))
    record = read_run(path)
    assert not record.converged and record.reason == "run_stop status aborted"


def test_mll_minigo_eval_result_is_seconds_after_run_start(tmp_path):
    head = [':::MLL 1000.0 submission_benchmark: {"value": "minigo", "metadata": {}}',
            ':::MLL 1000.5 run_start: {"value": null, "metadata": {}}']
    passed = ':::MLL 9000.0 eval_result: {"value": null, "metadata": {"iteration": 3, "timestamp": 120.0}}'
    record = read_run(_write(tmp_path, "\n".join(head + [passed])))
    assert record.ruleset == "0.6.0" and record.converged and record.minutes == 2.0
    never = passed.replace("120.0", "0")
    record = read_run(_write(tmp_path, "\n".join(head + [never])))
    assert not record.converged and "no model reached the target" in record.reason


def test_mlp_without_success_flag_uses_eval_target_or_the_given_target(tmp_path):
    lines = ["0: :::MLPv0.5.0 ncf 100.0 (a.py:1) run_start",
             ':::MLPv0.5.0 ncf 160.0 (a.py:2) eval_accuracy: {"epoch": 1, "value": 0.64}',
             ":::MLPv0.5.0 ncf 160.0 (a.py:3) eval_target: 0.635",
             ":::MLPv0.5.0 ncf 160.1 (a.py:4) run_stop"]
    record = read_run(_write(tmp_path, "\n".join(lines)))
    assert record.benchmark == "ncf" and record.converged and record.minutes == pytest.approx(1.0016667)
    lines[2] = ":::MLPv0.5.0 ncf 160.0 (a.py:3) eval_target: 0.65"
    assert not read_run(_write(tmp_path, "\n".join(lines))).converged
    del lines[2]
    assert read_run(_write(tmp_path, "\n".join(lines)), target=0.635).converged
    assert read_run(_write(tmp_path, "\n".join(lines))).reason == "run_stop status missing"


def test_mlp_success_flag(tmp_path):
    lines = [":::MLPv0.5.0 gnmt 100.0 (a.py:1) run_start", ':::MLPv0.5.0 gnmt 220.0 (a.py:2) run_stop: {"success": false}']
    record = read_run(_write(tmp_path, "\n".join(lines)))
    assert not record.converged and record.status == "aborted" and record.minutes == 2.0


def test_bad_input_gives_reasons(tmp_path):
    assert "cannot read" in read_run(str(tmp_path / "missing.txt")).reason
    assert "cannot read" in read_run(str(tmp_path)).reason           # a directory
    assert "not an MLPerf log" in read_run(_write(tmp_path, b"\x00\x01\xff binary")).reason
    assert "not an MLPerf log" in read_run(_write(tmp_path, "")).reason
    truncated = _mllog(0, "run_start") + "\n" + ':::MLLOG {"time_ms": 5, "key": "run_st'
    record = read_run(_write(tmp_path, truncated))
    assert not record.converged and "no run_stop" in record.reason
    backwards = _mllog(60000, "run_start") + "\n" + _mllog(0, "run_stop", status="success")
    assert read_run(_write(tmp_path, backwards)).reason == "run_stop before run_start"
    record = read_run(_write(tmp_path, _mllog(0, "init_start")))
    assert record.log_format == "mllog" and record.reason == "no run_start"


def test_malformed_lines_are_skipped(tmp_path):
    lines = [':::MLLOG {"key": "run_start"}',                    # no time_ms
             ':::MLLOG ["run_start"]', ':::MLLOG 5', ':::MLLOG {"time_ms": "x", "key": "run_stop"}',
             ':::MLL abc run_start: {}', ':::MLPv0.5.0 run_start',
             b'\xff\xfe:::MLLOG {"time_ms": 0, "key": "run_start", "value": "\xff", "metadata": {}}',
             _mllog(0, "run_start"), _mllog(60000, "run_stop", status="success"),
             ':::MLLOG {"time_ms": 1, "key": "submission_division", "value": null, "metadata": ["x"]}']
    text = b"\n".join(l if isinstance(l, bytes) else l.encode() for l in lines)
    record = read_run(_write(tmp_path, text))
    assert record.converged and record.minutes == 1.0


def test_huge_binary_line_does_not_hide_the_log(tmp_path):
    junk = b"\x00junk" * (3 << 20)                                   # 15 MiB without a newline
    text = junk + b"\n" + "\n".join([_mllog(0, "run_start"), _mllog(60000, "run_stop", status="success")]).encode()
    record = read_run(_write(tmp_path, text))
    assert record.converged and record.minutes == 1.0
    # a long line that ends with a log line still gives the log line (its last MiB is kept)
    record = read_run(_write(tmp_path, junk + b" " + _mllog(0, "run_start").encode() + b"\n"
                             + _mllog(60000, "run_stop", status="success").encode()))
    assert record.converged


def test_parse_line_all_formats():
    fmt, bench, event = parse_line('x :::MLPv0.5.0 ssd 1541.5 (a.py:1) eval_accuracy: {"epoch": 3, "value": 0.2}')
    assert (fmt, bench, event.key, event.time_ms, event.value) == ("mlp", "ssd", "eval_accuracy", 1541500.0, {"epoch": 3, "value": 0.2})
    fmt, bench, event = parse_line(':::MLL 1558420755.5 run_stop: {"value": null, "metadata": {"status": "success"}}')
    assert (fmt, event.key, event.time_ms, event.metadata["status"]) == ("mll", "run_stop", 1558420755500.0, "success")
    fmt, bench, event = parse_line(_mllog(5, "opt_name", "lars"))
    assert (fmt, event.key, event.time_ms, event.value) == ("mllog", "opt_name", 5.0, "lars")
    assert parse_line("plain text") is None


def test_benchmark_aliases():
    assert canonical_benchmark("mask") == "maskrcnn"
    assert canonical_benchmark("MaskRCNN") == "maskrcnn"
    assert canonical_benchmark("resnet") == "resnet"


def test_every_published_log_reads():
    """All 205 published logs: the format of their round, the benchmark of their folder, a
    run_start and a run_stop; the only non-converged ones are known."""
    assert len(ALL_LOGS) == 205
    fmt_of_round = {"v0.5": "mlp", "v0.6": "mll", "v0.7": "mllog"}
    not_converged = []
    for path in ALL_LOGS:
        record = read_run(path)
        rel = path.relative_to(FIXTURES)
        assert record.log_format == fmt_of_round[rel.parts[0]], rel
        assert record.benchmark == canonical_benchmark(path.parent.name), rel
        assert record.start_ms is not None and record.stop_ms is not None, rel
        assert 0 < record.minutes < 24 * 60, rel
        if not record.converged:
            not_converged.append(str(rel))
    ncf = [p for p in not_converged if "/ncf/" in p]
    assert len(ncf) == 45                                 # 55 of 100 converged
    assert sorted(set(not_converged) - set(ncf)) == ["v0.7/NVIDIA/results/dgx1_ngc20.06_mxnet/resnet/result_0.txt"]


def test_reader_agrees_with_a_plain_regex_on_published_logs():
    """run_start/run_stop stamps from a naive regex, to check the fast block search."""
    stamp = {"mllog": re.compile(r'"time_ms": ([0-9.]+).*"key": "(run_start|run_stop)"'),
             "mll": re.compile(r":::MLL ([0-9.]+) (run_start|run_stop):"),
             "mlp": re.compile(r":::MLPv0\.5\.0 \S+ ([0-9.]+) \([^)]*\) (run_start|run_stop)")}
    for path in ALL_LOGS[::7]:
        record = read_run(path)
        found = {}
        for line in path.read_text(errors="replace").splitlines():
            match = stamp[record.log_format].search(line)
            if match:
                found.setdefault(match.group(2), float(match.group(1)))
        scale = 1.0 if record.log_format == "mllog" else 1000.0
        assert record.start_ms == pytest.approx(found["run_start"] * scale, rel=1e-15), path
        assert record.stop_ms == pytest.approx(found["run_stop"] * scale, rel=1e-15), path
