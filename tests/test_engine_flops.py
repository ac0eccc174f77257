"""The engine logs measured work: FLOPs per sample before the clock (after ``run_stop`` where
the model needs the data) and each unit's throughput; the official checker accepts such logs."""
import json
import logging

from mlperf_train import compliance, engine
from mlperf_train.benchmark import ExampleNeedsData
from mlperf_train.results import read_run
from helpers import ROOT
from test_engine import only, run_toy
from toy_benchmark import ToyBenchmark, toy_preset

PUBLISHED = ROOT / "tests/data/mlperf_results/v0.7/Google/results/tpu-v4-16-TF/ssd/result_1.txt"


def test_flops_before_the_clock_and_throughput_per_unit(tmp_path):
    _, outcome, events = run_toy(tmp_path, toy_preset(target=0.3))
    keys = [e["key"] for e in events]
    flops = only(events, engine.FLOPS_KEY)
    assert keys.index("init_start") < keys.index(engine.FLOPS_KEY) < keys.index("init_stop")
    # Linear(2, 1) on 4 samples, forward only (the toy's step has no backward): 2 * 4 * 2 = 16
    assert flops["value"] == 4.0
    meta = flops["metadata"]
    assert (meta["train_flops_per_step"], meta["train_samples_per_step"], meta["eval_flops_per_sample"]) == (16, 4, 4.0)
    assert (meta["op_class"], meta["precision"], meta["world_size"], meta["device"]) == ("gemm", "fp32", 1, "cpu")
    rates = [e for e in events if e["key"] == engine.THROUGHPUT_KEY]
    assert [e["metadata"]["epoch_num"] for e in rates] == [1, 2, 3]
    assert all(e["metadata"]["samples"] == 100 and e["value"] > 0 for e in rates)
    stops = [e["time_ms"] for e in events if e["key"] == "epoch_stop"]
    assert [e["time_ms"] for e in rates] == stops


class NeedsData(ToyBenchmark):
    def example_batch(self, state, split="train"):
        if state.data is None:
            raise ExampleNeedsData("the toy's model is the data's size")
        return super().example_batch(state, split)


def test_a_model_that_needs_the_data_is_counted_after_run_stop(tmp_path):
    _, outcome, events = run_toy(tmp_path, toy_preset(target=0.3), bench=NeedsData())
    keys = [e["key"] for e in events]
    assert outcome.status == "success"
    assert keys.index("run_stop") < keys.index(engine.FLOPS_KEY) and keys.count(engine.FLOPS_KEY) == 1


def _official(path):
    from mlperf_logging.compliance_checker import mlp_compliance

    record = read_run(path)
    config = compliance.first_configs(record)[0]
    mlp_compliance.enqueued_configs.clear()
    checker = mlp_compliance.make_checker("training", "0.7.0", quiet=True, werror=False)
    logging.disable(logging.WARNING)
    try:
        mlp_compliance.main(str(path), config, checker)
    finally:
        logging.disable(logging.NOTSET)
        mlp_compliance.enqueued_configs.clear()
    return sorted(map(compliance._one_line, [*checker.overwritable.values(), *checker.not_overwritable]))


def test_the_official_checker_accepts_the_new_keys(tmp_path):
    """Our keys in a published, accepted v0.7 log: before run_start, per epoch, after run_stop."""
    def line(key, value, time_ms, **metadata):
        return ":::MLLOG " + json.dumps({"namespace": "", "time_ms": time_ms, "event_type": "POINT_IN_TIME",
                                         "key": key, "value": value, "metadata": metadata})
    out = []
    for text in PUBLISHED.read_text().splitlines():
        event = json.loads(text.split(":::MLLOG ", 1)[1])
        if event["key"] == "run_start":
            out.append(line(engine.FLOPS_KEY, 1.2e9, event["time_ms"], eval_flops_per_sample=4e8, op_class="conv"))
        out.append(text)
        if event["key"] == "block_stop":      # this log has no epoch_stop
            out.append(line(engine.THROUGHPUT_KEY, 5000.0, event["time_ms"], epoch_num=event["metadata"].get(
                "first_epoch_num"), samples=117266))
        if event["key"] == "run_stop":
            out.append(line(engine.FLOPS_KEY, 1.2e9, event["time_ms"] + 5))
    edited = tmp_path / "result_1.txt"
    edited.write_text("\n".join(out) + "\n")
    assert sum(engine.THROUGHPUT_KEY in text for text in out) == 13
    assert _official(PUBLISHED) == []
    assert _official(edited) == []
    assert compliance.run_checker(read_run(edited)) == []
