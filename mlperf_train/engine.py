"""The only outer loop: one run of one benchmark, timed and logged by the rules.

Sequence (all ranks; rank 0 writes the log)::

    submission_*, cache_clear, seed, preset       (before the clock)
    init_start -> Benchmark.init -> hparams       (untimed, at most 20 minutes)
    init_stop, run_start                          (the clock starts; the dataset opens)
    Benchmark.open_data, logged_data_keys
    block_start, epoch_start -> train_epoch -> epoch_stop, ...
    eval_start -> evaluate -> eval_accuracy -> eval_stop, block_stop   (on the clock)
    run_stop status=success | aborted

The engine, not the benchmark, compares the quality with the target and decides when the
run ends. A reference never reads the clock.
"""
from __future__ import annotations

import dataclasses
import math
import signal
from pathlib import Path
from typing import Any, Mapping

from mlperf_train import clock
from mlperf_train.benchmark import Benchmark, DataNotYetAvailable, Dataset, Logged, TrainStats
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import Preset
from mlperf_train.mllog import PRESET_KEY, ResultLog
from mlperf_train.rules import BenchmarkRules, EvalCadence, target_reached

SUCCESS, ABORTED = "success", "aborted"


class RunInterrupted(BaseException):
    """SIGTERM (or SIGINT) during a run. A BaseException, like KeyboardInterrupt, so that a
    reference's ``except Exception`` cannot swallow it."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


def raise_on_signal(signum, frame):  # installed by the series for SIGTERM
    raise RunInterrupted(signal.Signals(signum).name)


@dataclasses.dataclass(frozen=True)
class Submission:
    """The ``submission_*`` keys of every log."""

    org: str
    platform: str
    division: str
    status: str = "onprem"


@dataclasses.dataclass
class RunOutcome:
    status: str                  # "success" or "aborted"
    reason: str                  # why the run ended, in words
    ended_by_rules: bool         # target reached or epoch cap: the result file is final
    epochs: int = 0
    quality: float | Mapping[str, float] | None = None
    run_start_ms: int | None = None
    run_stop_ms: int | None = None
    init_seconds: float | None = None
    train_samples_per_second: float | None = None

    @property
    def seconds(self) -> float | None:
        if self.run_start_ms is None or self.run_stop_ms is None:
            return None
        return (self.run_stop_ms - self.run_start_ms) / 1000.0


class Progress:
    """Callbacks for a progress display (``progress.py``); the engine calls them on every
    rank, the display decides whether to show anything. This base shows nothing."""

    def on_epoch(self, epoch: int, max_epochs: int, stats: TrainStats, seconds: float) -> None:
        pass

    def on_eval(self, epoch: int, quality: Any, target: Any) -> None:
        pass


def cadence_for(preset: Preset, rules: BenchmarkRules) -> EvalCadence:
    """A small preset may set its own cadence; a reference preset only picks the offset of
    the first evaluation where the rules allow one (``hparams.py`` checks it)."""
    if not preset.eval:
        return rules.eval
    if not preset.is_small:
        return dataclasses.replace(rules.eval, first_eval_epoch=preset.eval["first_eval_epoch"])
    return EvalCadence(**{**preset.eval, "at_epochs": tuple(preset.eval.get("at_epochs", ()))})


def _log_value(log: ResultLog, key: str, value: Any, time_ms: int | None = None) -> None:
    if isinstance(value, Logged):
        log.event(key, value.value, metadata=dict(value.metadata), time_ms=time_ms)
    else:
        log.event(key, value, time_ms=time_ms)


def _scaled(quality, scale: float):
    if isinstance(quality, Mapping):
        return {name: value * scale for name, value in quality.items()}
    return quality * scale


def run_once(benchmark: Benchmark, preset: Preset, rules: BenchmarkRules, env: RunEnv,
             log: ResultLog, seed: int, data_root: Path, submission: Submission,
             cache_cleared: bool, progress: Progress | None = None,
             init_limit_seconds: float = clock.INIT_LIMIT_SECONDS) -> RunOutcome:
    """One run, from ``init_start`` to ``run_stop``. Never raises for a run that fails:
    the outcome says how it ended. ``KeyboardInterrupt``/``RunInterrupted`` end the run
    with ``run_stop`` aborted and are then re-raised so the series stops."""
    progress = progress or Progress()
    cadence = cadence_for(preset, rules)
    outcome = RunOutcome(status=ABORTED, reason="not started", ended_by_rules=False)

    log.event("submission_org", submission.org, time_ms=clock.now_ms())
    log.event("submission_platform", submission.platform)
    log.event("submission_division", submission.division)
    log.event("submission_status", submission.status)
    log.event("submission_benchmark", benchmark.name)
    log.event(PRESET_KEY, preset.name, metadata={
        "ruleset": preset.ruleset, "target": preset.target, "hparams_file": preset.path,
        "small": preset.is_small})
    log.event("cache_clear", cache_cleared)

    env.dataset = Dataset(data_root)

    def start_clock(time_ms: int) -> None:
        log.end("init_stop", time_ms=time_ms)
        log.start("run_start", time_ms=time_ms)
        outcome.run_start_ms = time_ms

    try:
        init_start_ms = clock.synced_now_ms(env)
        log.start("init_start", time_ms=init_start_ms)
        log.event("seed", seed)
        env.seed_everything(seed)
        with clock.InitWatchdog(init_limit_seconds, start_clock):
            state = benchmark.init(preset, env)
            logged = {"global_batch_size": preset.hparams["global_batch_size"], **preset.hparams,
                      **benchmark.logged_hparams(preset, env)}
            for key, value in logged.items():
                _log_value(log, key, value)
        if outcome.run_start_ms is None:
            start_clock(clock.synced_now_ms(env))
        else:  # the watchdog started the clock; the ranks meet here before the data opens
            env.barrier()
        outcome.init_seconds = (outcome.run_start_ms - init_start_ms) / 1000.0
        env.dataset._open_for_run()
        benchmark.open_data(state, env.dataset)
        for key, value in benchmark.logged_data_keys(state).items():
            _log_value(log, key, value, time_ms=clock.now_ms())
        _train_until_done(benchmark, state, preset, rules, cadence, env, log, progress, outcome)
    except (KeyboardInterrupt, RunInterrupted) as interrupt:
        name = getattr(interrupt, "signal_name", "SIGINT")
        outcome.status, outcome.reason, outcome.ended_by_rules = ABORTED, f"interrupted by {name}", False
        _stop(log, env, outcome, synced=False)
        raise
    except DataNotYetAvailable as error:
        outcome.status, outcome.reason, outcome.ended_by_rules = ABORTED, f"rule violation: {error}", False
    except Exception as error:  # a crash in the reference: end this run cleanly, keep the others
        outcome.status, outcome.ended_by_rules = ABORTED, False
        outcome.reason = describe_error(error, env)
    _stop(log, env, outcome, synced=outcome.ended_by_rules)
    return outcome


# What a collective raises when another rank has died or stopped answering (gloo says
# "Connection closed by peer", NCCL and the store time out).
_PEER_LOST = ("connection closed by peer", "connection reset by peer", "timed out", "timeout",
              "broken pipe", "socket closed")


def describe_error(error: Exception, env: RunEnv) -> str:
    """One line for the log and the terminal; a lost peer is named as such."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    if env.is_distributed and any(mark in first_line.lower() for mark in _PEER_LOST):
        return (f"another rank failed or stopped answering (rank {env.rank} of {env.world_size} saw "
                f"{type(error).__name__}: {first_line[:160]})")
    return f"error: {type(error).__name__}: {first_line[:300]}"


def _stop(log: ResultLog, env: RunEnv, outcome: RunOutcome, synced: bool) -> None:
    if outcome.run_start_ms is None:  # failed during init: the clock never ran
        start = clock.now_ms()
        log.end("init_stop", time_ms=start)
        log.start("run_start", time_ms=start)
        outcome.run_start_ms = start
    # Only a run that ended by the rules can sync; after a crash or signal another rank
    # may be gone, and a collective would wait for it.
    outcome.run_stop_ms = clock.synced_now_ms(env) if synced else clock.now_ms()
    log.end("run_stop", time_ms=outcome.run_stop_ms,
            metadata={"status": outcome.status, "reason": outcome.reason})


def _train_until_done(benchmark, state, preset: Preset, rules: BenchmarkRules, cadence: EvalCadence,
                      env: RunEnv, log: ResultLog, progress: Progress, outcome: RunOutcome) -> None:
    num_samples, train_ms = 0, 0
    block_first_epoch = None
    for epoch in range(1, preset.max_epochs + 1):
        if block_first_epoch is None:
            block_first_epoch = epoch
            log.start("block_start", time_ms=clock.now_ms(), metadata={
                "first_epoch_num": epoch,
                "epoch_count": min(cadence.epochs_until_next_eval(epoch), preset.max_epochs - epoch + 1)})
        epoch_start_ms = clock.now_ms()
        log.start("epoch_start", time_ms=epoch_start_ms, metadata={"epoch_num": epoch})
        stats = benchmark.train_epoch(state, epoch)
        epoch_stop_ms = clock.now_ms()
        log.end("epoch_stop", time_ms=epoch_stop_ms, metadata={"epoch_num": epoch})
        outcome.epochs = epoch
        num_samples += stats.num_samples * env.world_size
        train_ms += epoch_stop_ms - epoch_start_ms
        outcome.train_samples_per_second = num_samples / max(train_ms, 1) * 1000.0
        progress.on_epoch(epoch, preset.max_epochs, stats, (epoch_stop_ms - epoch_start_ms) / 1000.0)

        if cadence.is_eval_epoch(epoch) or epoch == preset.max_epochs:
            log.start("eval_start", time_ms=clock.now_ms(), metadata={"epoch_num": epoch})
            quality = benchmark.evaluate(state, epoch)
            _check_quality(quality)
            log.event("eval_accuracy", _scaled(quality, rules.logged_scale), time_ms=clock.now_ms(),
                      metadata={"epoch_num": epoch})
            for key, value in benchmark.eval_extras(state).items():
                log.event(key, value, time_ms=clock.now_ms(), metadata={"epoch_num": epoch})
            log.end("eval_stop", time_ms=clock.now_ms(), metadata={"epoch_num": epoch})
            log.end("block_stop", time_ms=clock.now_ms(), metadata={"first_epoch_num": block_first_epoch})
            block_first_epoch = None
            outcome.quality = quality
            # rank 0 decides so that every rank stops at the same step
            reached = env.broadcast_object(target_reached(preset.target, quality, rules.direction))
            progress.on_eval(epoch, quality, preset.target)
            if reached:
                outcome.status, outcome.reason, outcome.ended_by_rules = SUCCESS, "target reached", True
                return
    if block_first_epoch is not None:
        log.end("block_stop", time_ms=clock.now_ms(), metadata={"first_epoch_num": block_first_epoch})
    outcome.status, outcome.ended_by_rules = ABORTED, True
    outcome.reason = f"target not reached in {preset.max_epochs} epochs"


def _check_quality(quality) -> None:
    values = quality.values() if isinstance(quality, Mapping) else [quality]
    for value in values:
        if not isinstance(value, (int, float)) or math.isnan(value):
            raise TypeError(f"evaluate() must return a number or a mapping of numbers, got {quality!r}")
