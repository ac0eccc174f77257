"""A series: one file per run, resumable, a killed run never looks finished."""
import pytest

from mlperf_train import series
from mlperf_train.distributed import RunEnv
from toy_benchmark import ToyBenchmark, toy_preset, toy_rules


@pytest.fixture
def toy_series(monkeypatch, tmp_path):
    state = {"bench": ToyBenchmark(), "preset": toy_preset(target=0.2)}
    monkeypatch.setenv("MLPERF_TRAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(series, "load_series_preset", lambda config: (state["bench"], state["preset"]))
    monkeypatch.setattr(series, "benchmark_rules", lambda name, ruleset: toy_rules())
    monkeypatch.setattr(series, "_print_aggregate", lambda folder, ruleset: None)
    config = series.SeriesConfig(benchmark="toy", runs=3, seed=100, output=tmp_path / "logs", system="sys")
    return state, config, tmp_path / "logs" / "sys" / "toy"


def test_series_writes_one_final_file_per_run(toy_series):
    state, config, folder = toy_series
    assert series.run_series(config, RunEnv()) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["result_0.txt", "result_1.txt", "result_2.txt"]
    seeds = [line for p in sorted(folder.iterdir()) for line in p.read_text().splitlines() if '"key": "seed"' in line]
    assert ['"value": 100' in seeds[0], '"value": 101' in seeds[1], '"value": 102' in seeds[2]] == [True] * 3


def test_rerun_skips_finished_runs_and_redoes_partial_ones(toy_series, capsys):
    state, config, folder = toy_series
    folder.mkdir(parents=True)
    (folder / "result_0.txt").write_text("finished earlier\n")
    (folder / "result_1.txt.partial").write_text("killed half way\n")
    assert series.run_series(config, RunEnv()) == 0
    assert (folder / "result_0.txt").read_text() == "finished earlier\n"
    assert "run_stop" in (folder / "result_1.txt").read_text()
    assert not (folder / "result_1.txt.partial").exists()
    out = capsys.readouterr().out
    assert "run 0: already finished" in out and "redoing an unfinished run" in out


def test_sigterm_leaves_the_run_partial_and_stops_the_series(toy_series):
    state, config, folder = toy_series
    state["preset"] = toy_preset(target=0.9, signal_in_epoch=1)
    assert series.run_series(config, RunEnv()) == series.EXIT_INTERRUPTED
    assert sorted(p.name for p in folder.iterdir()) == ["result_0.txt.partial"]
    assert '"status": "aborted"' in (folder / "result_0.txt.partial").read_text()


def test_small_data_is_generated_once_and_cached(toy_series):
    state, config, folder = toy_series
    series.run_series(config, RunEnv())
    cache = list((folder.parents[2] / "cache" / "data").iterdir())
    assert len(cache) == 1 and (cache[0] / "data.txt").exists()


def test_a_global_batch_the_ranks_cannot_share_is_refused(tmp_path):
    from mlperf_train.errors import UsageError
    from mlperf_train.series import SeriesConfig, run_series

    env = RunEnv(rank=0, world_size=3)  # refused before any collective is needed
    with pytest.raises(UsageError, match=r"global_batch_size = 1024: must be a multiple of the 3 processes"):
        run_series(SeriesConfig(benchmark="ncf", output=tmp_path), env)


def test_what_the_engine_cannot_honour_is_refused_before_the_first_run(toy_series, monkeypatch, tmp_path):
    import dataclasses

    from mlperf_train.errors import UsageError
    from mlperf_train.rules import EvalCadence

    state, config, folder = toy_series
    monkeypatch.setattr(series, "benchmark_rules",
                        lambda name, ruleset: dataclasses.replace(toy_rules(), not_runnable="iteration-count evaluations"))
    with pytest.raises(UsageError, match="toy is not runnable in ruleset 0.7.0: iteration-count evaluations"):
        series.run_series(config, RunEnv())
    off_clock = dataclasses.replace(toy_rules(), eval=EvalCadence(every_epochs=1, on_clock=False))
    monkeypatch.setattr(series, "benchmark_rules", lambda name, ruleset: off_clock)
    with pytest.raises(UsageError, match="evaluates timestamped checkpoints off the clock, and this reference saves none"):
        series.run_series(config, RunEnv())
    assert not folder.exists()


def test_a_missing_artifact_is_named_before_the_first_run(toy_series, monkeypatch):
    from mlperf_train.errors import UsageError

    state, config, folder = toy_series
    monkeypatch.setattr(type(state["bench"]), "required_artifacts",
                        lambda self, preset: {"resnet34-333f7ec4.pth": "torchvision's ImageNet ResNet-34 weights"},
                        raising=False)
    with pytest.raises(UsageError, match=r"artifacts/resnet34-333f7ec4.pth: missing: torchvision's ImageNet "
                                         r"ResNet-34 weights; put the file there"):
        series.run_series(config, RunEnv())
    assert not folder.exists()
