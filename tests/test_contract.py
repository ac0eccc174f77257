"""The Benchmark contract (``mlperf_train/benchmark.py``), checked on every registered,
implemented reference in seconds: a new reference gets all of this for free.

Each reference ships ``hparams/<bench>/tiny.yaml``: the same code at the smallest size.
``generate_small`` writes its data and stand-in artifacts in the real formats (untrained
weights where the real preset pretrains), into a scratch folder.
"""
import ast
import dataclasses
import datetime
import math
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import ROOT, child_pids
from mlperf_train import benchmark as registry
from mlperf_train import quality, validate
from mlperf_train.benchmark import Artifacts, Benchmark, DataNotYetAvailable, Dataset, EvalResult, TrainStats
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import HPARAMS_DIR, load_preset
from mlperf_train.rules import benchmark_rules

BENCHMARKS = registry.implemented()
REFERENCES = ROOT / "references"


def preset_files(name: str) -> list[Path]:
    """Every preset a reference ships: small, tiny, reference and per-ruleset references."""
    folder = HPARAMS_DIR / name
    return sorted(folder.glob("*.yaml")) + sorted(folder.glob("*/reference.yaml"))


def test_every_registered_reference_is_a_benchmark():
    assert {"ncf", "resnet", "transformer"} <= set(BENCHMARKS)
    for name in BENCHMARKS:
        bench = registry.get(name)
        assert isinstance(bench, Benchmark) and bench.name == name
        assert dataclasses.is_dataclass(bench.State) and bench.Settings.__dataclass_params__.frozen


def test_a_subclass_that_breaks_the_contract_fails_at_definition():
    with pytest.raises(TypeError, match="abstract"):
        class Incomplete(Benchmark):  # noqa: F841 - defining it is the test
            name = "incomplete"
        Incomplete()
    with pytest.raises(TypeError, match="`unit` must be one of"):
        class Lunar(registry.Benchmark):
            name, unit = "lunar", "moon"
            Settings = State = dataclasses.make_dataclass("S", [], frozen=True)
            prepare = generate_small = init = open_data = train_epoch = train_step = None
            example_batch = eval_step = evaluate = logged_hparams = None


@pytest.mark.parametrize("name", BENCHMARKS)
def test_presets_validate(name, capsys):
    files = preset_files(name)
    assert {"small.yaml", "tiny.yaml", "reference.yaml"} <= {f.name for f in files}
    for path in files:
        problems = validate.validate_file(path, None, "closed")
        assert not problems, problems


class ClockGuard:
    """Records any read of the wall clock (what times a run) made directly from reference
    code. Timeouts of subprocesses do not read it; libraries called by a reference may."""

    def __init__(self, monkeypatch):
        self.reads: list[str] = []
        for module, attribute in ((time, "time"), (time, "time_ns")):
            original = getattr(module, attribute)
            monkeypatch.setattr(module, attribute, self._guard(original, f"time.{attribute}"))

    def _guard(self, original, label):
        def guarded(*args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(str(REFERENCES)):
                self.reads.append(f"{label} from {caller}:{sys._getframe(1).f_lineno}")
            return original(*args, **kwargs)
        return guarded


WALL_CLOCK_CALLS = {("time", "time"), ("time", "time_ns"), ("datetime", "now"), ("datetime", "utcnow"),
                    ("datetime", "today"), ("date", "today")}


def test_no_reference_reads_the_wall_clock_in_its_source():
    found = []
    for path in REFERENCES.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    (node.value.id, node.attr) in WALL_CLOCK_CALLS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime") and \
                    any(alias.name in ("time", "time_ns", "datetime") for alias in node.names):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import ...")
    assert not found, found


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """name -> (preset, data folder): generate_small of each tiny preset, once per module."""
    made = {}

    def make(name):
        if name not in made:
            bench = registry.get(name)
            preset = load_preset(HPARAMS_DIR / name / "tiny.yaml", None, "closed", bench.Settings,
                                 expected_benchmark=name)
            folder = tmp_path_factory.mktemp(f"{name}-tiny")
            bench.generate_small(folder, preset.settings, seed=0)
            made[name] = preset, folder
        return made[name]
    return make


@pytest.mark.parametrize("name", BENCHMARKS)
def test_one_tiny_unit_keeps_the_contract(name, tiny_data, monkeypatch):
    bench = registry.get(name)
    preset, folder = tiny_data(name)
    rules = benchmark_rules(name, preset.ruleset)
    assert set(preset.target) == set(rules.target)
    for artifact in bench.required_artifacts(preset):
        assert (folder / "artifacts" / artifact).is_file(), f"generate_small made no {artifact}"
    children_before = set(child_pids())
    guard = ClockGuard(monkeypatch)
    env = RunEnv()
    env.seed_everything(0)
    dataset = env.dataset = Dataset(folder)
    state = bench.init(preset, env, Artifacts(folder / "artifacts"))   # the dataset is closed
    try:
        assert isinstance(state, bench.State)
        with pytest.raises(DataNotYetAvailable):
            dataset.root  # noqa: B018
        logged = bench.logged_hparams(preset, env)
        dataset._open_for_run()
        bench.open_data(state, dataset)
        data_keys = bench.logged_data_keys(state)
        calls = []
        stats = bench.train_epoch(state, 1, lambda done, total, loss=None: calls.append((done, total)))
        assert isinstance(stats, TrainStats) and stats.num_samples > 0 and math.isfinite(stats.loss)
        assert calls and all(0 < done <= total for done, total in calls), calls[-3:]
        assert [done for done, _ in calls] == sorted(done for done, _ in calls)
        result = bench.evaluate(state, 1)
        assert isinstance(result, EvalResult)
        assert quality.check(result.quality, preset.target)      # named exactly as the target
        # what the log holds about the run comes from disjoint places
        own = set(logged) | set(preset.hparams)
        assert not set(data_keys) & own, set(data_keys) & own
        assert not set(result.extras) & (own | set(data_keys) | {"eval_accuracy"})
        # the training step and example batches work outside train_epoch
        example = bench.example_batch(state, "train")
        assert example.num_samples > 0
        loss = bench.train_step(state, example.data)
        assert isinstance(loss, torch.Tensor) and torch.isfinite(loss).all()
        evaluation = bench.example_batch(state, "eval")
        assert evaluation.num_samples > 0
        bench.eval_step(state, evaluation.data)
    finally:
        bench.close(state)
    assert not guard.reads, guard.reads
    assert set(child_pids()) <= children_before, "close() left child processes"
