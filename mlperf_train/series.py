"""Runs a series of runs of one benchmark: one result file each, resumable.

``logs/<system>/<bench>/result_<i>.txt`` is the MLPerf submission layout. A finished run's
file is never touched again; a ``.partial`` file (a run that was killed, interrupted or
crashed) is redone on the next invocation. Each run gets its own file, so a crash or
Ctrl-C in one run cannot corrupt another, and one invocation at a time writes a folder
(``folderlock.py``): a second one exits 2 naming the first.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import sys
from pathlib import Path

from mlperf_train import benchmark as registry
from mlperf_train import datacache, engine, quality
from mlperf_train.distributed import RunEnv
from mlperf_train.errors import UsageError
from mlperf_train.folderlock import FolderLock
from mlperf_train.hparams import HparamsInvalid, Preset, Violation, default_preset_path, load_preset
from mlperf_train.mllog import PARTIAL_SUFFIX, ResultLog, result_path
from mlperf_train.progress import ConsoleProgress
from mlperf_train.rules import BenchmarkRules, benchmark_rules

EXIT_INTERRUPTED = 130
EXIT_RUN_CRASHED = 1


@dataclasses.dataclass(frozen=True)
class SeriesConfig:
    benchmark: str
    hparams: Path | None = None
    data: Path | None = None
    runs: int | None = None
    seed: int | None = None
    output: Path = Path("logs")
    system: str | None = None
    ruleset: str | None = None
    division: str = "closed"
    org: str = "mlperf-train"


def default_system_name(env: RunEnv) -> str:
    """A platform name in the spirit of MLPerf system names: ``<ranks>x<device>``."""
    import torch

    if env.device.type == "cuda":
        device = torch.cuda.get_device_name(env.device).replace("NVIDIA ", "")
    else:
        device = f"cpu{os.cpu_count()}"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{env.world_size}x{device}")


def drop_page_cache() -> bool:
    """Drop the OS page cache where permitted (root on Linux); the log says whether it
    happened. ``MLPERF_TRAIN_DROP_CACHES=0`` turns it off (tests, shared machines)."""
    if os.environ.get("MLPERF_TRAIN_DROP_CACHES", "1") == "0":
        return False
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def load_series_preset(config: SeriesConfig) -> tuple[registry.Benchmark, Preset]:
    try:
        bench = registry.get(config.benchmark)
    except KeyError as error:
        raise UsageError(str(error).strip('"')) from None
    path = config.hparams or default_preset_path(config.benchmark)
    preset = load_preset(Path(path), config.ruleset, config.division, bench.Settings,
                         expected_benchmark=config.benchmark)
    return bench, preset


def resolve_data(bench: registry.Benchmark, preset: Preset, config: SeriesConfig, env: RunEnv) -> Path:
    if config.data is not None:
        if not Path(config.data).is_dir():
            raise UsageError(f"--data {config.data}: not a directory (prepare it with `mlperf-train prepare {bench.name}`)")
        return Path(config.data)
    if not preset.is_small:
        raise UsageError(f"{preset.path}: the reference preset needs --data DIR with the prepared real dataset")
    return datacache.small_dataset(bench, preset, env)


def check_runnable(bench: registry.Benchmark, preset: Preset, rules: BenchmarkRules, data_root: Path) -> None:
    """Refuse, before the first run, what would otherwise fail inside one: an entry the
    engine cannot honour, a missing artifact (one line saying where to put it)."""
    if not rules.runnable:
        raise UsageError(f"{bench.name} is not runnable in ruleset {rules.ruleset}: {rules.not_runnable}")
    if not rules.eval.on_clock and type(bench).save_checkpoint is registry.Benchmark.save_checkpoint:
        raise UsageError(f"{bench.name}: ruleset {rules.ruleset} evaluates timestamped checkpoints off the "
                         f"clock, and this reference saves none")
    for name, what in bench.required_artifacts(preset).items():
        if not (data_root / registry.ARTIFACTS_DIR / name).is_file():
            raise UsageError(registry.missing_artifact_message(data_root / registry.ARTIFACTS_DIR, name, what))


def run_series(config: SeriesConfig, env: RunEnv) -> int:
    bench, preset = load_series_preset(config)
    rules = benchmark_rules(config.benchmark, preset.ruleset)
    problems = bench.world_size_problems(preset, env.world_size)
    batch = preset.hparams.get("global_batch_size")
    if isinstance(batch, int) and batch % env.world_size:
        problems.append(("hparams.global_batch_size", batch, f"must be a multiple of the {env.world_size} "
                         f"processes (each rank takes global_batch_size / world size)"))
    if problems:
        raise HparamsInvalid([Violation(preset.path, key, value, rule) for key, value, rule in problems])
    data_root = resolve_data(bench, preset, config, env)
    check_runnable(bench, preset, rules, data_root)
    system = config.system or default_system_name(env)
    folder = Path(config.output) / system / config.benchmark
    lock = FolderLock(folder)
    refusal = None
    if env.is_main:  # rank 0 writes the folder, so rank 0 holds it; the others follow its answer
        try:
            lock.acquire()
        except UsageError as error:
            refusal = str(error)
    refusal = env.broadcast_object(refusal)
    if refusal:
        raise UsageError(refusal)
    try:
        if lock.taken_over:
            print(f"{folder}: took over a stale lock of {lock.taken_over}", file=sys.stderr)
        return _run_all(bench, preset, rules, config, env, data_root, system, folder)
    finally:
        lock.release()


def _run_all(bench, preset: Preset, rules: BenchmarkRules, config: SeriesConfig, env: RunEnv, data_root: Path,
             system: str, folder: Path) -> int:
    num_runs = config.runs or rules.runs
    base_seed = config.seed if config.seed is not None else env.broadcast_object(secrets.randbelow(2**31))
    submission = engine.Submission(org=config.org, platform=system, division=config.division)
    say = print if env.is_main else (lambda *a, **k: None)
    say(f"{bench.name}: {num_runs} run(s), preset {preset.name} ({preset.path}), ruleset {preset.ruleset}, "
        f"target {bench.metric} {quality.format(preset.target, 3)}, {env.world_size} process(es), logs in {folder}")

    previous_handler = signal.signal(signal.SIGTERM, engine.raise_on_signal)
    try:
        for index in range(num_runs):
            final = result_path(folder, index)
            if final.exists():
                say(f"run {index}: already finished ({final}), skipped")
                continue
            stale = final.with_name(final.name + PARTIAL_SUFFIX)
            if env.is_main and stale.exists():
                say(f"run {index}: redoing an unfinished run ({stale.name})")
            cache_cleared = drop_page_cache() if env.local_rank == 0 else False
            log = ResultLog(final if env.is_main else None)
            progress = ConsoleProgress(bench.metric, bench.unit, enabled=env.is_main, label=f"run {index}")
            try:
                outcome = engine.run_once(bench, preset, rules, env, log, base_seed + index, data_root,
                                          submission, cache_cleared, progress,
                                          checkpoint_dir=folder / "checkpoints" / f"result_{index}")
            except (KeyboardInterrupt, engine.RunInterrupted) as interrupt:
                log.close(finished=False)
                name = getattr(interrupt, "signal_name", "SIGINT")
                say(f"run {index}: interrupted by {name}; left as {stale.name}, rerun the same command to redo it",
                    file=sys.stderr)
                return EXIT_INTERRUPTED
            written = log.close(finished=outcome.ended_by_rules)
            if not env.is_main and not outcome.ended_by_rules:  # rank 0 cannot know why this rank failed
                print(f"rank {env.rank}: run {index} {outcome.status}: {outcome.reason}", file=sys.stderr, flush=True)
            seconds = f"{outcome.seconds:.1f} s" if outcome.seconds is not None else "-"
            scored = " (the passing checkpoint's save time)" if outcome.scored_seconds is not None else ""
            say(f"run {index}: {outcome.status} ({outcome.reason}) after {outcome.epochs} {bench.unit}(s), "
                f"time to train {seconds}{scored}, {bench.metric} {quality.format(outcome.quality)}  [{written}]")
            if not outcome.ended_by_rules:
                say(f"run {index} did not end by the rules; stopping the series", file=sys.stderr)
                return EXIT_RUN_CRASHED
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    if env.is_main:
        _print_aggregate(folder, preset.ruleset)
    return 0


def _print_aggregate(folder: Path, ruleset: str) -> None:
    from mlperf_train import score

    result = score.score_folder(folder, ruleset)
    minutes = f"{result.minutes:.3f} min" if result.minutes is not None else "no score"
    print(f"aggregate: {minutes} ({result.converged} of {result.runs} runs converged"
          f"{'' if result.valid else '; ' + result.reason})")
