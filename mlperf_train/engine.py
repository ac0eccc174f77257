"""The only outer loop: one run of one benchmark, timed and logged by the rules.

Sequence (all ranks; rank 0 writes the log)::

    submission_*, preset, cache_clear                         (before the clock)
    init_start -> Benchmark.init -> hparams, artifacts, FLOPs (untimed, at most 20 minutes; flops.py)
    init_stop, run_start                                      (the clock starts; the dataset opens)
    Benchmark.open_data, logged_data_keys
    block_start, epoch_start -> train_epoch -> [events, save_model] -> epoch_stop, ...
    eval_start -> evaluate -> eval_accuracy, extras -> eval_stop, block_stop   (on the clock)
    run_stop status=success | aborted
    [FLOPs, where the model needs the data: off the clock]
    Benchmark.close                                           (every exit path)

The engine, not the benchmark, compares the quality with the target and decides when the
run ends. A reference never reads the clock: every event is stamped here, with
``clock.now_ms``.

Where the rules take evaluation off the clock (``eval.on_clock: false``, MiniGo from
0.6.0), each unit's checkpoint is saved and timestamped on the training clock, evaluated
off it, and the run's scored time is the first passing checkpoint's save time
(``eval_result``; see :class:`_OffClock`).
"""
from __future__ import annotations

import dataclasses
import math
import signal
from pathlib import Path
from typing import Any, Mapping

from mlperf_train import clock, flops, quality
from mlperf_train.benchmark import (ARTIFACTS_DIR, OWN_KEY_PREFIX, Artifacts, Benchmark, DataNotYetAvailable,
                                    Dataset, EvalResult, ExampleNeedsData, Logged, TrainStats, no_progress)
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import Preset
from mlperf_train.mllog import PRESET_KEY, ResultLog
from mlperf_train.rules import BenchmarkRules, EvalCadence

SUCCESS, ABORTED = "success", "aborted"
ARTIFACT_KEY = OWN_KEY_PREFIX + "artifact"
# Measured work (flops.py): training FLOPs per sample, with the evaluation's and the op
# class and precision in metadata; and each unit's training throughput (samples/s, all ranks).
FLOPS_KEY = OWN_KEY_PREFIX + "flops_per_sample"
THROUGHPUT_KEY = OWN_KEY_PREFIX + "throughput"


class RunInterrupted(BaseException):
    """SIGTERM (or SIGINT) during a run. A BaseException, like KeyboardInterrupt, so that a
    reference's ``except Exception`` cannot swallow it."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


def raise_on_signal(signum, frame):  # installed by the series for SIGTERM
    raise RunInterrupted(signal.Signals(signum).name)


class ContractViolation(RuntimeError):
    """A reference returned something the contract does not allow (``benchmark.py``)."""


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
    ended_by_rules: bool         # target reached or unit cap: the result file is final
    epochs: int = 0              # units trained
    quality: Mapping[str, float] | None = None   # the last evaluation's
    run_start_ms: int | None = None
    run_stop_ms: int | None = None
    init_seconds: float | None = None
    train_samples_per_second: float | None = None
    scored_seconds: float | None = None   # off-clock evaluation: the passing checkpoint's time

    @property
    def seconds(self) -> float | None:
        """Time to train as the rules score it."""
        if self.scored_seconds is not None:
            return self.scored_seconds
        if self.run_start_ms is None or self.run_stop_ms is None:
            return None
        return (self.run_stop_ms - self.run_start_ms) / 1000.0


class Progress:
    """Callbacks for a progress display (``progress.py``); the engine calls them on every
    rank, the display decides whether to show anything. This base shows nothing."""

    def epoch_started(self, epoch: int, max_epochs: int):
        """Returns the ``progress(done, total, loss=None)`` callback for this unit."""
        return no_progress

    def on_epoch(self, epoch: int, max_epochs: int, stats: TrainStats, seconds: float) -> None:
        pass

    def on_eval(self, epoch: int, quality_value: Mapping[str, float], target: Mapping[str, float],
                scored_seconds: float | None = None) -> None:
        pass


def cadence_for(preset: Preset, rules: BenchmarkRules) -> EvalCadence:
    """A small preset may set its own cadence (never the clock: ``on_clock`` stays the
    rules'); a reference preset only picks the offset of the first evaluation where the
    rules allow one (``hparams.py`` checks it)."""
    if not preset.eval:
        return rules.eval
    if not preset.is_small:
        return dataclasses.replace(rules.eval, first_eval_epoch=preset.eval["first_eval_epoch"])
    return EvalCadence(**{**preset.eval, "at_epochs": tuple(preset.eval.get("at_epochs", ())),
                          "on_clock": rules.eval.on_clock})


def _cadence_metadata(cadence: EvalCadence) -> dict:
    """The evaluation schedule this run keeps, so ``check`` can judge a small preset's log
    by its own cadence (``schedule.py``)."""
    fields = dataclasses.asdict(cadence)
    fields["at_epochs"] = list(fields["at_epochs"])
    return {name: value for name, value in fields.items() if value not in (None, [])}


def _log_value(log: ResultLog, key: str, value: Any, time_ms: int, metadata: Mapping | None = None) -> None:
    if isinstance(value, Logged):
        log.event(key, value.value, metadata={**value.metadata, **(metadata or {})}, time_ms=time_ms)
    else:
        log.event(key, value, metadata=dict(metadata) if metadata else None, time_ms=time_ms)


def run_once(benchmark: Benchmark, preset: Preset, rules: BenchmarkRules, env: RunEnv,
             log: ResultLog, seed: int, data_root: Path, submission: Submission,
             cache_cleared: bool, progress: Progress | None = None,
             init_limit_seconds: float = clock.INIT_LIMIT_SECONDS,
             checkpoint_dir: Path | None = None) -> RunOutcome:
    """One run, from ``init_start`` to ``run_stop``. Never raises for a run that fails:
    the outcome says how it ended. ``KeyboardInterrupt``/``RunInterrupted`` end the run
    with ``run_stop`` aborted and are then re-raised so the series stops. ``close(state)``
    runs on every exit path. ``checkpoint_dir``: where off-clock checkpoints go."""
    progress = progress or Progress()
    cadence = cadence_for(preset, rules)
    outcome = RunOutcome(status=ABORTED, reason="not started", ended_by_rules=False)

    header_ms = clock.now_ms()
    for key, value in (("submission_org", submission.org), ("submission_platform", submission.platform),
                       ("submission_division", submission.division), ("submission_status", submission.status),
                       ("submission_benchmark", benchmark.name)):
        log.event(key, value, time_ms=header_ms)
    log.event(PRESET_KEY, preset.name, time_ms=header_ms, metadata={
        "ruleset": preset.ruleset, "target": quality.logged_value(preset.target), "hparams_file": preset.path,
        "small": preset.is_small, "unit": benchmark.unit, "eval": _cadence_metadata(cadence)})
    log.event("cache_clear", cache_cleared, time_ms=header_ms)

    env.dataset = Dataset(data_root)
    artifacts = Artifacts(Path(data_root) / ARTIFACTS_DIR)
    state = None
    counted = False

    def start_clock(time_ms: int) -> None:
        log.end("init_stop", time_ms=time_ms)
        log.start("run_start", time_ms=time_ms)
        outcome.run_start_ms = time_ms

    try:
        try:
            init_start_ms = clock.synced_now_ms(env)
            log.start("init_start", time_ms=init_start_ms)
            log.event("seed", seed, time_ms=init_start_ms)
            env.seed_everything(seed)
            with clock.InitWatchdog(init_limit_seconds, start_clock):
                state = benchmark.init(preset, env, artifacts)
                if not isinstance(state, benchmark.State):
                    raise ContractViolation(f"init() returned {type(state).__name__}, not {benchmark.State.__name__}")
                logged = {"global_batch_size": preset.hparams["global_batch_size"], **preset.hparams,
                          **benchmark.logged_hparams(preset, env)}
                hparams_ms = clock.now_ms()
                for key, value in logged.items():
                    _log_value(log, key, value, time_ms=hparams_ms)
                for name, sha256 in artifacts.used.items():
                    log.event(ARTIFACT_KEY, name, metadata={"sha256": sha256}, time_ms=hparams_ms)
                counted = _log_flops(benchmark, state, env, log)   # untimed; the state is put back
            if outcome.run_start_ms is None:
                start_clock(clock.synced_now_ms(env))
            else:  # the watchdog started the clock; the ranks meet here before the data opens
                env.barrier()
            outcome.init_seconds = (outcome.run_start_ms - init_start_ms) / 1000.0
            env.dataset._open_for_run()
            benchmark.open_data(state, env.dataset)
            data_ms = clock.now_ms()
            for key, value in benchmark.logged_data_keys(state).items():
                _log_value(log, key, value, time_ms=data_ms)
            _Loop(benchmark, state, preset, rules, cadence, env, log, progress, outcome, checkpoint_dir).run()
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
        if not counted and outcome.ended_by_rules:   # the model needed the data: count off the clock now
            _log_flops(benchmark, state, env, log)
        return outcome
    finally:
        if state is not None:
            _close(benchmark, state)


def _log_flops(benchmark: Benchmark, state: Any, env: RunEnv, log: ResultLog) -> bool:
    """Counts the reference's work on its example batches (every rank: a step may
    all-reduce) and logs it; False when the model exists only once the data is open. A
    count that fails is reported and leaves the run as it is: it measures, it never decides."""
    try:
        counted = flops.count(benchmark, state)
    except ExampleNeedsData:
        return False
    except Exception as error:  # noqa: BLE001 - the measurement must not end a run
        if env.is_main:
            print(f"warning: {benchmark.name}: FLOPs not counted: {type(error).__name__}: {error}", flush=True)
        return True
    value, metadata = counted.logged(env.world_size, env.device.type)
    log.event(FLOPS_KEY, value, metadata=metadata, time_ms=clock.now_ms())
    return True


def _close(benchmark: Benchmark, state: Any) -> None:
    """``close`` must not raise; if it does anyway, the run's outcome stands."""
    try:
        benchmark.close(state)
    except Exception as error:  # noqa: BLE001 - reported, never fatal after the run ended
        print(f"warning: {benchmark.name}.close() failed: {type(error).__name__}: {error}", flush=True)


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


class _OffClock:
    """The training clock of a run whose evaluation the rules take off the clock.

    The reference scored every saved, timestamped model after training (MiniGo v0.6
    ``eval_models.py``), so no evaluation ever delayed training. Here each checkpoint is
    evaluated right after its save, and that time is paused: a checkpoint's scored time is
    its save time since ``run_start`` minus all earlier off-clock evaluations.
    """

    def __init__(self, run_start_ms: int):
        self.run_start_ms = run_start_ms
        self.paused_ms = 0

    def scored_ms(self, wall_ms: int) -> int:
        return wall_ms - self.run_start_ms - self.paused_ms

    def pause(self, duration_ms: int) -> None:
        self.paused_ms += duration_ms


class _Loop:
    """The units of one run: train, (save), evaluate, decide."""

    def __init__(self, benchmark, state, preset, rules, cadence, env, log, progress, outcome, checkpoint_dir):
        self.benchmark, self.state, self.preset, self.rules = benchmark, state, preset, rules
        self.cadence, self.env, self.log, self.progress, self.outcome = cadence, env, log, progress, outcome
        self.off_clock = None if cadence.on_clock else _OffClock(outcome.run_start_ms)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.num_samples = 0
        self.train_ms = 0
        self.last_loss = None

    def run(self) -> None:
        preset, outcome = self.preset, self.outcome
        block_first_epoch = None
        for epoch in range(1, preset.max_epochs + 1):
            if block_first_epoch is None:
                block_first_epoch = epoch
                self.log.start("block_start", time_ms=clock.now_ms(), metadata={
                    "first_epoch_num": epoch,
                    "epoch_count": min(self.cadence.epochs_until_next_eval(epoch), preset.max_epochs - epoch + 1)})
            saved_ms = self.train(epoch)
            if self.diverged(epoch):
                self.log.end("block_stop", time_ms=clock.now_ms(), metadata={"first_epoch_num": block_first_epoch})
                return
            # Only at scheduled points: a run may stop, and be judged converged, only there
            # (an extra evaluation at the unit cap could declare success off the schedule).
            if self.cadence.is_eval_epoch(epoch) or self.off_clock:
                reached = self.evaluate(epoch, saved_ms)
                self.log.end("block_stop", time_ms=clock.now_ms(), metadata={"first_epoch_num": block_first_epoch})
                block_first_epoch = None
                if reached:
                    outcome.status, outcome.reason, outcome.ended_by_rules = SUCCESS, "target reached", True
                    return
        if block_first_epoch is not None:
            self.log.end("block_stop", time_ms=clock.now_ms(), metadata={"first_epoch_num": block_first_epoch})
        outcome.status, outcome.ended_by_rules = ABORTED, True
        outcome.reason = f"target not reached in {preset.max_epochs} {self.benchmark.unit}s"

    def train(self, epoch: int) -> int | None:
        """One unit; returns the checkpoint's scored time (ms) when the rules want one."""
        log, env = self.log, self.env
        start_ms = clock.now_ms()
        log.start("epoch_start", time_ms=start_ms, metadata={"epoch_num": epoch})
        stats = self.benchmark.train_epoch(self.state, epoch, self.progress.epoch_started(epoch, self.preset.max_epochs))
        if not isinstance(stats, TrainStats):
            raise ContractViolation(f"train_epoch() returned {type(stats).__name__}, not TrainStats")
        events_ms = clock.now_ms()
        for event in stats.events:
            log.event(event.key, event.value, metadata={**event.metadata, "epoch_num": epoch}, time_ms=events_ms)
        saved_ms = self.save_checkpoint(epoch) if self.off_clock else None
        stop_ms = clock.now_ms()
        log.end("epoch_stop", time_ms=stop_ms, metadata={"epoch_num": epoch})
        self.outcome.epochs = epoch
        unit_samples = stats.num_samples * env.world_size
        self.num_samples += unit_samples
        self.train_ms += stop_ms - start_ms
        self.outcome.train_samples_per_second = self.num_samples / max(self.train_ms, 1) * 1000.0
        log.event(THROUGHPUT_KEY, unit_samples / max(stop_ms - start_ms, 1) * 1000.0, time_ms=stop_ms,
                  metadata={"epoch_num": epoch, "samples": unit_samples})
        self.progress.on_epoch(epoch, self.preset.max_epochs, stats, (stop_ms - start_ms) / 1000.0)
        self.last_loss = stats.loss
        return saved_ms

    def diverged(self, epoch: int) -> bool:
        """A NaN or infinite training loss does not come back: the run is aborted after this
        unit instead of training on to the unit cap. Rank 0 decides, so every rank stops
        at the same unit."""
        loss = self.last_loss
        bad = loss is not None and not math.isfinite(float(loss))
        if not self.env.broadcast_object(bad):
            return False
        self.outcome.status, self.outcome.ended_by_rules = ABORTED, True
        self.outcome.reason = f"training diverged: loss {loss} in {self.benchmark.unit} {epoch}"
        return True

    def save_checkpoint(self, epoch: int) -> int:
        """Save this unit's model (every rank: the reference decides who writes), stamp it
        on the training clock and log ``save_model`` as the rules name it."""
        if self.checkpoint_dir is None:
            raise ContractViolation("off-clock evaluation needs a checkpoint folder (series.py gives one)")
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.benchmark.save_checkpoint(self.state, self.checkpoint_dir / f"{self.benchmark.unit}_{epoch}.pt")
        saved_ms = clock.synced_now_ms(self.env)
        scored_ms = self.off_clock.scored_ms(saved_ms)
        self.log.event("save_model", {"iteration": epoch}, time_ms=saved_ms,
                       metadata={"epoch_num": epoch, "timestamp": scored_ms / 1000.0})
        return scored_ms

    def evaluate(self, epoch: int, saved_ms: int | None) -> bool:
        log, env, rules = self.log, self.env, self.rules
        start_ms = clock.now_ms()
        off_clock = {"on_clock": False} if self.off_clock else {}
        log.start("eval_start", time_ms=start_ms, metadata={"epoch_num": epoch, **off_clock})
        result = self.benchmark.evaluate(self.state, epoch)
        if not isinstance(result, EvalResult):
            raise ContractViolation(f"evaluate() returned {type(result).__name__}, not EvalResult")
        values = quality.check(result.quality, self.preset.target)   # loud: other names abort the run
        now = clock.now_ms()
        log.event("eval_accuracy", quality.logged_value(values, rules.logged_scale), time_ms=now,
                  metadata={"epoch_num": epoch})
        for key, value in result.extras.items():
            _log_value(log, key, value, time_ms=now, metadata={"epoch_num": epoch})
        stop_ms = clock.now_ms()
        log.end("eval_stop", time_ms=stop_ms, metadata={"epoch_num": epoch, **off_clock})
        self.outcome.quality = values
        # rank 0 decides so that every rank stops at the same step
        reached = env.broadcast_object(quality.reached(values, self.preset.target, rules.direction))
        if self.off_clock:
            self.off_clock.pause(stop_ms - start_ms)
            if reached:
                self.outcome.scored_seconds = saved_ms / 1000.0
                log.event("eval_result", None, time_ms=stop_ms,
                          metadata={"iteration": epoch, "timestamp": saved_ms / 1000.0})
        self.progress.on_eval(epoch, values, self.preset.target,
                              saved_ms / 1000.0 if self.off_clock else None)
        return reached
