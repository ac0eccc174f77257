"""``close(state)`` runs on every exit path and no child process outlives a run: success,
abort at the unit cap, a crash, SIGTERM. ResNet's tiny preset with a persistent loader
worker process gives the run real children."""
import dataclasses
import os
import signal
import threading
import time

import pytest

from helpers import child_pids
from mlperf_train import engine
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import HPARAMS_DIR, load_preset
from mlperf_train.mllog import ResultLog
from mlperf_train.rules import benchmark_rules
from references.resnet.benchmark import BENCHMARK


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    preset = load_preset(HPARAMS_DIR / "resnet" / "tiny.yaml", settings_class=BENCHMARK.Settings)
    preset = dataclasses.replace(preset, settings=dataclasses.replace(preset.settings, num_workers=1))
    data = tmp_path_factory.mktemp("resnet-tiny")
    BENCHMARK.generate_small(data, preset.settings, seed=0)
    return preset, data


class Holding(type(BENCHMARK)):
    """Keeps every state alive after the run, as a reference cycle or a cache might: then
    only close() can end the loader's worker process (garbage collection cannot)."""

    def __init__(self):
        self.kept = []

    def init(self, preset, env, artifacts):
        self.kept.append(super().init(preset, env, artifacts))
        return self.kept[-1]


class Crashing(Holding):
    def evaluate(self, state, epoch):
        raise RuntimeError("evaluation crashed")


def _run(preset, data, tmp_path, bench):
    log = ResultLog(tmp_path / "result_0.txt")
    try:
        return engine.run_once(bench, preset, benchmark_rules("resnet"), RunEnv(), log, seed=1, data_root=data,
                               submission=engine.Submission("t", "t", "closed"), cache_cleared=False)
    finally:
        log.close(finished=False)


def _no_children_soon(before: set[int]) -> set[int]:
    for _ in range(50):  # workers exit asynchronously once told to
        left = set(child_pids()) - before
        if not left:
            return left
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("ending", ["success", "unit cap", "crash", "SIGTERM"])
def test_no_child_process_outlives_a_run(tiny, tmp_path, ending):
    preset, data = tiny
    before = set(child_pids())
    bench = Crashing() if ending == "crash" else Holding()   # alive until the end of the test
    if ending == "success":
        outcome = _run(dataclasses.replace(preset, target={"top1_accuracy": 0.0}), data, tmp_path, bench)
        assert outcome.status == "success"
    elif ending == "unit cap":
        outcome = _run(dataclasses.replace(preset, target={"top1_accuracy": 1.01}, max_epochs=2), data, tmp_path,
                       bench)
        assert outcome.status == "aborted" and outcome.ended_by_rules
    elif ending == "crash":
        outcome = _run(preset, data, tmp_path, bench)
        assert outcome.status == "aborted" and "evaluation crashed" in outcome.reason
    else:
        previous = signal.signal(signal.SIGTERM, engine.raise_on_signal)
        timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
        try:
            timer.start()
            with pytest.raises(engine.RunInterrupted):
                _run(dataclasses.replace(preset, target={"top1_accuracy": 1.01}, max_epochs=200), data, tmp_path,
                     bench)
        finally:
            timer.cancel()
            signal.signal(signal.SIGTERM, previous)
    assert bench.kept and not _no_children_soon(before)
