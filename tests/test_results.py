"""The reader: every MLPerf log format into run records; bad input gives a reason, never a
crash; the official parser's view of each line is the official parser's own.

``published_fixtures()`` is shared with the other tests of the results tooling.
"""
import re
from pathlib import Path

import pytest

from mlperf_train.results import canonical_benchmark, parse_line, read_run

DATA = Path(__file__).resolve().parent / "data"
OURS = DATA / "ours" / "cpu" / "ncf"   # written by `mlperf-train run ncf`


def published_fixtures() -> Path:
    """Published result logs (v0.5, v0.6, v0.7), trimmed to their MLPerf lines, in the
    repository (``tests/data/mlperf_results/README.md`` says which and from where)."""
    return DATA / "mlperf_results"


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
    assert record.minutes == 2.0 and record.status == "success" and record.problem == ""


def test_first_run_stop_counts_as_in_the_official_summarizer(tmp_path):
    # Several ranks may each print the same events; the first run_start/run_stop count.
    lines = [_mllog(0, "run_start"), _mllog(0, "run_start"), _mllog(60000, "run_stop", status="success"),
             _mllog(120000, "run_stop", status="aborted")]
    record = read_run(_write(tmp_path, "\n".join(lines)))
    assert record.minutes == 1.0 and record.status == "success" and record.second_attempt == ""


def test_our_logs_carry_ruleset_and_preset():
    record = read_run(OURS / "result_0.txt")
    assert (record.log_format, record.benchmark, record.ruleset, record.preset) == ("mllog", "ncf", "0.5.0", "small")
    assert record.preset_target == 0.55 and record.small_preset
    assert record.division == "closed" and 0 < record.minutes < 5
    assert [e.epoch for e in record.evals] == list(range(1, len(record.evals) + 1))


def test_a_relaunch_appended_to_the_file_is_a_second_attempt(tmp_path):
    first = [_mllog(0, "init_start"), _mllog(10, "init_stop"), _mllog(11, "run_start"),
             _mllog(60000, "eval_accuracy", 0.5, epoch_num=1)]
    relaunch = [_mllog(240000, "submission_org", "x"), _mllog(240001, "init_start"), _mllog(250000, "init_stop"),
                _mllog(250001, "run_start"), _mllog(900000, "run_stop", status="success")]
    record = read_run(_write(tmp_path, "\n".join(first + relaunch)))
    assert "holds two attempts" in record.second_attempt and "250.0 s after the first" in record.second_attempt
    # the same file after a finished run: a run_start after run_stop
    again = first + [_mllog(70000, "run_stop", status="aborted"), _mllog(80000, "run_start")]
    assert "after a new run_stop" in read_run(_write(tmp_path, "\n".join(again))).second_attempt


def test_ranks_printing_the_same_events_and_late_submission_lines_are_one_attempt(tmp_path):
    # each rank's own init_start a few ms apart, run_start printed by two ranks, submission_* at the end
    lines = [_mllog(0, "init_start"), _mllog(3, "init_start"), _mllog(7, "init_start"), _mllog(5000, "init_stop"),
             _mllog(5001, "run_start"), _mllog(5002, "run_start"), _mllog(9000, "run_stop", status="success"),
             _mllog(9001, "submission_benchmark", "ssd"), _mllog(9002, "submission_org", "x")]
    record = read_run(_write(tmp_path, "\n".join(lines)))
    assert record.second_attempt == "" and record.benchmark == "ssd" and record.start_ms == 5001


def test_evaluations_as_logged(tmp_path):
    lines = [_mllog(0, "eval_accuracy", 0.5, epoch_num=4), _mllog(1, "eval_accuracy", "25.3", epoch_num=5.0),
             _mllog(2, "eval_accuracy", {"BBOX": 0.1, "SEGM": 0.2}, epoch_num=6)]
    record = read_run(_write(tmp_path, "\n".join(lines)))
    assert [(e.epoch, e.value) for e in record.evals] == [(4, 0.5), (5, "25.3"), (6, {"BBOX": 0.1, "SEGM": 0.2})]
    v05 = read_run(_write(tmp_path, ':::MLPv0.5.0 ncf 160.0 (a.py:2) eval_accuracy: {"epoch": 3, "value": 0.64}'))
    assert [(e.epoch, e.value) for e in v05.evals] == [(3, 0.64)]


def test_off_clock_eval_result_and_saved_models(tmp_path):
    head = [':::MLL 1000.0 submission_benchmark: {"value": "minigo", "metadata": {}}',
            ':::MLL 1000.5 run_start: {"value": null, "metadata": {}}',
            ':::MLL 1100.5 save_model: {"value": {"iteration": 3}, "metadata": {}}',
            ':::MLL 9000.0 eval_result: {"value": null, "metadata": {"iteration": 3, "timestamp": 120.0}}']
    record = read_run(_write(tmp_path, "\n".join(head)))
    assert record.ruleset == "0.6.0" and record.eval_result_seconds == 120.0 and record.eval_result_iteration == 3
    assert record.saved_models == {3.0: 1100500.0}


def test_mlp_success_flag_and_target(tmp_path):
    lines = [":::MLPv0.5.0 gnmt 100.0 (a.py:1) run_start", ":::MLPv0.5.0 gnmt 110.0 (a.py:1) eval_target: 21.8",
             ':::MLPv0.5.0 gnmt 220.0 (a.py:2) run_stop: {"success": false}']
    record = read_run(_write(tmp_path, "\n".join(lines)))
    assert record.status == "aborted" and record.minutes == 2.0 and record.eval_target == 21.8


def test_bad_input_gives_reasons(tmp_path):
    assert "cannot read" in read_run(str(tmp_path / "missing.txt")).problem
    assert "cannot read" in read_run(str(tmp_path)).problem           # a directory
    assert "not an MLPerf log" in read_run(_write(tmp_path, b"\x00\x01\xff binary")).problem
    assert "not an MLPerf log" in read_run(_write(tmp_path, "")).problem
    truncated = _mllog(0, "run_start") + "\n" + ':::MLLOG {"time_ms": 5, "key": "run_st'
    record = read_run(_write(tmp_path, truncated))
    assert record.start_ms == 0 and record.stop_ms is None and len(record.scan.parse_errors) == 1
    record = read_run(_write(tmp_path, _mllog(0, "init_start")))
    assert record.log_format == "mllog" and record.start_ms is None


def test_malformed_lines_are_skipped(tmp_path):
    lines = [':::MLLOG {"key": "run_start"}',                    # no time_ms
             ':::MLLOG ["run_start"]', ':::MLLOG 5', ':::MLLOG {"time_ms": "x", "key": "run_stop"}',
             ':::MLL abc run_start: {}', ':::MLPv0.5.0 run_start',
             b'\xff\xfe:::MLLOG {"time_ms": 0, "key": "run_start", "value": "\xff", "metadata": {}}',
             _mllog(0, "run_start"), _mllog(60000, "run_stop", status="success"),
             ':::MLLOG {"time_ms": 1, "key": "submission_division", "value": null, "metadata": ["x"]}']
    text = b"\n".join(l if isinstance(l, bytes) else l.encode() for l in lines)
    record = read_run(_write(tmp_path, text))
    assert record.minutes == 1.0 and record.status == "success"
    # the official parser raises on a line without time_ms: that is remembered, not raised
    assert "KeyError" in record.scan.parser_crash


def test_huge_binary_line_does_not_hide_the_log(tmp_path):
    junk = b"\x00junk" * (3 << 20)                                   # 15 MiB without a newline
    text = junk + b"\n" + "\n".join([_mllog(0, "run_start"), _mllog(60000, "run_stop", status="success")]).encode()
    record = read_run(_write(tmp_path, text))
    assert record.minutes == 1.0
    # a long line that ends with a log line still gives the log line (its last MiB is kept)
    record = read_run(_write(tmp_path, junk + b" " + _mllog(0, "run_start").encode() + b"\n"
                             + _mllog(60000, "run_stop", status="success").encode()))
    assert record.minutes == 1.0


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
    """All 231 published logs: the format of their round, the benchmark of their folder, a
    run_start and a run_stop (v0.6 MiniGo: an eval_result instead, it scores models after
    the run), at least one evaluation, one attempt each."""
    assert len(ALL_LOGS) == 231
    fmt_of_round = {"v0.5": "mlp", "v0.6": "mll", "v0.7": "mllog"}
    for path in ALL_LOGS:
        record = read_run(path)
        rel = path.relative_to(FIXTURES)
        assert record.log_format == fmt_of_round[rel.parts[0]], rel
        assert record.benchmark == canonical_benchmark(path.parent.name), rel
        assert record.start_ms is not None and record.evals and not record.second_attempt, rel
        if rel.parts[0] == "v0.6" and record.benchmark == "minigo":
            assert record.stop_ms is None and 0 < record.eval_result_seconds < 24 * 3600, rel
        else:
            assert 0 < record.minutes < 24 * 60, rel


@pytest.mark.parametrize("round_", ["v0.6", "v0.7"])
def test_the_official_parsers_view_is_its_own(round_):
    """logread.scan gives exactly mlp_parser.parse_file's lines, line numbers and errors."""
    from mlperf_logging.compliance_checker import mlp_parser

    logs = [p for p in ALL_LOGS if p.relative_to(FIXTURES).parts[0] == round_]
    for path in logs:
        record = read_run(path)
        lines, errors = mlp_parser.parse_file(str(path), ruleset="0.6.0" if round_ == "v0.6" else "0.7.0")
        assert (record.scan.official, record.scan.parse_errors) == (lines, errors), path


def test_the_official_parsers_errors_on_odd_lines(tmp_path):
    from mlperf_logging.compliance_checker import mlp_parser

    text = "\r\n".join([_mllog(0, "run_start"), "x :::MLLOG {broken", "a :::MLLOG b :::MLLOG " + _mllog(5, "k")[9:],
                         "\xe9 :::MLLOG " + _mllog(6, "k", "\xe9")[9:], "plain"]) + "\r" + _mllog(7, "run_stop")
    path = _write(tmp_path, text.encode("latin-1"))
    record = read_run(path)
    assert (record.scan.official, record.scan.parse_errors) == mlp_parser.parse_file(path, ruleset="0.7.0")
    assert len(record.scan.parse_errors) == 1 and [l.key for l in record.scan.official] == ["run_start", "k", "k", "run_stop"]


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
        if "run_stop" not in found:    # v0.6 MiniGo
            continue
        assert record.start_ms == pytest.approx(found["run_start"] * scale, rel=1e-15), path
        assert record.stop_ms == pytest.approx(found["run_stop"] * scale, rel=1e-15), path
