"""The engine through success, epoch-cap abort, SIGTERM, slow init, early data access, crash."""
import json
import signal

import pytest

from mlperf_train import engine
from mlperf_train.distributed import RunEnv
from mlperf_train.mllog import ResultLog
from toy_benchmark import ToyBenchmark, toy_preset, toy_rules

SUBMISSION = engine.Submission(org="test", platform="1xcpu", division="closed")


def read_log(path):
    events = []
    for line in path.read_text().splitlines():
        assert line.startswith(":::MLLOG "), line
        events.append(json.loads(line[len(":::MLLOG "):]))
    return events


def keys(events):
    return [e["key"] for e in events]


def only(events, key):
    found = [e for e in events if e["key"] == key]
    assert len(found) == 1, (key, found)
    return found[0]


def run_toy(tmp_path, preset, rules=None, init_limit_seconds=60.0, bench=None):
    bench = bench or ToyBenchmark()
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    bench.generate_small(data, preset.settings, 0)
    log = ResultLog(tmp_path / "result_0.txt")
    try:
        outcome = engine.run_once(bench, preset, rules or toy_rules(), RunEnv(), log, seed=7, data_root=data,
                                  submission=SUBMISSION, cache_cleared=False,
                                  init_limit_seconds=init_limit_seconds)
    finally:
        path = log.close(finished=False)
    return bench, outcome, read_log(path)


def test_success_stops_at_target_with_ordered_timestamps(tmp_path):
    bench, outcome, events = run_toy(tmp_path, toy_preset(target=0.3))
    assert outcome.status == "success" and outcome.ended_by_rules and outcome.epochs == 3
    assert bench.calls == ["init", "open_data", "train 1", "eval 1", "train 2", "eval 2", "train 3", "eval 3"]
    times = [e["time_ms"] for e in events]
    assert times == sorted(times)
    order = keys(events)
    assert order.index("cache_clear") < order.index("init_start") < order.index("init_stop") \
        < order.index("run_start") < order.index("block_start") < order.index("run_stop")
    assert only(events, "run_stop")["metadata"]["status"] == "success"
    assert only(events, "seed")["value"] == 7
    assert only(events, "global_batch_size")["value"] == 8
    assert [e["value"] for e in events if e["key"] == "eval_accuracy"] == [0.1, 0.2, 0.3]
    assert outcome.seconds == pytest.approx(
        (only(events, "run_stop")["time_ms"] - only(events, "run_start")["time_ms"]) / 1000)


def test_blocks_follow_the_eval_cadence(tmp_path):
    _, outcome, events = run_toy(tmp_path, toy_preset(target=0.4), rules=toy_rules(every_epochs=2))
    assert outcome.status == "success" and outcome.epochs == 4
    blocks = [e["metadata"] for e in events if e["key"] == "block_start"]
    assert blocks == [{**b, "first_epoch_num": n, "epoch_count": 2} for b, n in zip(blocks, (1, 3))]
    assert [e["metadata"]["epoch_num"] for e in events if e["key"] == "eval_accuracy"] == [2, 4]


def test_epoch_cap_aborts(tmp_path):
    _, outcome, events = run_toy(tmp_path, toy_preset(target=0.9, max_epochs=4))
    assert outcome.status == "aborted" and outcome.ended_by_rules and outcome.epochs == 4
    assert only(events, "run_stop")["metadata"]["status"] == "aborted"
    assert keys(events)[-1] == "run_stop"


def test_sigterm_aborts_and_reraises(tmp_path):
    previous = signal.signal(signal.SIGTERM, engine.raise_on_signal)
    try:
        with pytest.raises(engine.RunInterrupted):
            run_toy(tmp_path, toy_preset(target=0.9, signal_in_epoch=2))
    finally:
        signal.signal(signal.SIGTERM, previous)
    events = read_log(tmp_path / "result_0.txt.partial")
    stop = only(events, "run_stop")
    assert stop["metadata"]["status"] == "aborted" and "SIGTERM" in stop["metadata"]["reason"]


def test_init_over_the_limit_starts_the_clock(tmp_path):
    _, outcome, events = run_toy(tmp_path, toy_preset(target=0.1, init_seconds=1.0), init_limit_seconds=0.3)
    assert outcome.status == "success"
    init_start = only(events, "init_start")["time_ms"]
    run_start = only(events, "run_start")["time_ms"]
    assert only(events, "init_stop")["time_ms"] == run_start
    assert 250 <= run_start - init_start < 900  # the clock started at the limit, not when init ended
    assert outcome.seconds >= 0.6  # the rest of init is on the clock


def test_data_touched_before_run_start_is_a_rule_violation(tmp_path):
    bench, outcome, events = run_toy(tmp_path, toy_preset(touch_data_in_init=True))
    assert outcome.status == "aborted" and not outcome.ended_by_rules
    assert "before run_start" in outcome.reason
    assert "open_data" not in bench.calls
    assert only(events, "run_stop")["metadata"]["status"] == "aborted"


def test_a_crash_ends_the_run_cleanly(tmp_path):
    _, outcome, events = run_toy(tmp_path, toy_preset(crash_in_epoch=2))
    assert outcome.status == "aborted" and not outcome.ended_by_rules
    assert "the toy crashed" in outcome.reason
    assert keys(events)[-1] == "run_stop"


def test_a_reference_preset_picks_the_first_eval_epoch_within_the_rules(tmp_path):
    import dataclasses
    import types

    from mlperf_train.rules import EvalCadence

    rules = dataclasses.replace(toy_rules(), eval=EvalCadence(every_epochs=4, first_epoch_max=4))
    preset = dataclasses.replace(toy_preset(target=0.55, max_epochs=9), name="reference",
                                 eval=types.MappingProxyType({"first_eval_epoch": 1}))
    _, outcome, events = run_toy(tmp_path, preset, rules=rules)
    assert [e["metadata"]["epoch_num"] for e in events if e["key"] == "eval_accuracy"] == [1, 5, 9]
    assert [e["metadata"]["epoch_count"] for e in events if e["key"] == "block_start"] == [1, 4, 4]
    assert outcome.status == "success" and outcome.epochs == 9


def test_data_keys_and_eval_extras_are_logged_on_the_clock(tmp_path):
    class WithExtras(ToyBenchmark):
        def logged_data_keys(self, state):
            return {"train_samples": 123, "eval_samples": 45}

        def logged_hparams(self, preset, env):
            return {}

        def eval_extras(self, state):
            return {"eval_ndcg": 0.5}

    _, outcome, events = run_toy(tmp_path, toy_preset(target=0.2), bench=WithExtras())
    order = keys(events)
    assert order.index("run_start") < order.index("train_samples") < order.index("epoch_start")
    assert only(events, "train_samples")["value"] == 123 and only(events, "eval_samples")["value"] == 45
    extras = [e for e in events if e["key"] == "eval_ndcg"]
    assert [e["metadata"]["epoch_num"] for e in extras] == [1, 2]
    assert all(order.index("eval_accuracy") < order.index("eval_ndcg") for _ in extras)
