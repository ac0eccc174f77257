"""The reader: every MLPerf log format into run records; bad input gives a reason."""
from mlperf_train.results import canonical_benchmark, read_run


def _write(tmp_path, text, name="result_0.txt"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_mllog_with_prefix(tmp_path):
    path = _write(tmp_path, "\n".join([
        '0: :::MLLOG {"time_ms": 1000, "key": "submission_benchmark", "value": "resnet", "metadata": {}}',
        '[1,0]<stdout>::::MLLOG {"time_ms": 60000, "key": "run_start", "value": null, "metadata": {}}',
        '2020-01-01 :::MLLOG {"time_ms": 180000, "key": "run_stop", "value": null, "metadata": {"status": "success"}}',
    ]))
    record = read_run(path)
    assert (record.log_format, record.benchmark, record.ruleset) == ("mllog", "resnet", "0.7.0")
    assert record.converged and record.minutes == 2.0


def test_our_logs_carry_ruleset_and_preset(tmp_path):
    path = _write(tmp_path, "\n".join([
        ':::MLLOG {"time_ms": 0, "key": "mlperf_train_preset", "value": "small", "metadata": {"ruleset": "0.5.0", "target": 0.5}}',
        ':::MLLOG {"time_ms": 0, "key": "submission_benchmark", "value": "ncf", "metadata": {}}',
        ':::MLLOG {"time_ms": 0, "key": "run_start", "value": null, "metadata": {}}',
        ':::MLLOG {"time_ms": 6000, "key": "run_stop", "value": null, "metadata": {"status": "aborted"}}',
    ]))
    record = read_run(path)
    assert (record.ruleset, record.preset, record.converged) == ("0.5.0", "small", False)
    assert "aborted" in record.reason


def test_mll_minigo_eval_result_seconds(tmp_path):
    path = _write(tmp_path, "\n".join([
        ':::MLL 1000.0 submission_benchmark: {"value": "minigo", "metadata": {}}',
        ':::MLL 1000.5 run_start: {"value": null, "metadata": {}}',
        ':::MLL 9000.0 eval_result: {"value": null, "metadata": {"iteration": 3, "timestamp": 120.0}}',
    ]))
    record = read_run(path)
    assert record.ruleset == "0.6.0" and record.converged and record.minutes == 2.0


def test_mlp_without_success_flag_uses_eval_target(tmp_path):
    lines = [":::MLPv0.5.0 ncf 100.0 (a.py:1) run_start",
             ':::MLPv0.5.0 ncf 160.0 (a.py:2) eval_accuracy: {"epoch": 1, "value": 0.64}',
             ":::MLPv0.5.0 ncf 160.0 (a.py:3) eval_target: 0.635",
             ":::MLPv0.5.0 ncf 160.1 (a.py:4) run_stop"]
    record = read_run(_write(tmp_path, "\n".join(lines)))
    assert record.benchmark == "ncf" and record.converged
    lines[2] = ":::MLPv0.5.0 ncf 160.0 (a.py:3) eval_target: 0.65"
    assert not read_run(_write(tmp_path, "\n".join(lines))).converged
    del lines[2]
    assert read_run(_write(tmp_path, "\n".join(lines)), target=0.635).converged


def test_bad_input_gives_reasons(tmp_path):
    assert "cannot read" in read_run(str(tmp_path / "missing.txt")).reason
    assert "not an MLPerf log" in read_run(_write(tmp_path, "\x00\x01binary")).reason
    truncated = ':::MLLOG {"time_ms": 0, "key": "run_start", "value": null, "metadata": {}}\n:::MLLOG {"time_'
    record = read_run(_write(tmp_path, truncated))
    assert not record.converged and "no run_stop" in record.reason


def test_benchmark_aliases():
    assert canonical_benchmark("mask") == "maskrcnn"
    assert canonical_benchmark("MaskRCNN") == "maskrcnn"
    assert canonical_benchmark("resnet") == "resnet"
