"""The one contract between the harness and a reference implementation.

A reference lives in ``references/<name>/`` and exposes, in its ``benchmark.py``, a
module-level ``BENCHMARK`` object: an instance of a subclass of :class:`Benchmark`.
The harness finds it through :data:`REGISTRY` and imports it lazily, so importing the
harness never imports torchvision, a model or a dataset.

What a reference owns: its model, its data pipeline, its metric, the MLPerf keys it logs
about itself. What it never does: read a clock, log ``run_start``/``run_stop`` or any
``*_start``/``*_stop`` event, decide that the target is reached, or open its data before
the harness hands it the :class:`Dataset` (the handle refuses until the clock runs).

Order of calls in one run (all on every rank; see ``engine.py``)::

    settings = BENCHMARK.Settings(**preset.settings)      # validated by hparams.py
    state = BENCHMARK.init(preset, env)                   # untimed: init_start..init_stop
    BENCHMARK.open_data(state, dataset)                   # timed: after run_start
    BENCHMARK.logged_data_keys(state)                     # logged once, on the clock
    for epoch in 1, 2, ...:
        BENCHMARK.train_epoch(state, epoch)               # timed
        if the ruleset's cadence says so:
            quality = BENCHMARK.evaluate(state, epoch)    # timed
            BENCHMARK.eval_extras(state)                  # logged beside eval_accuracy
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, Mapping

# Name -> module path. Names are the MLPerf log names (``submission_benchmark``).
REGISTRY: dict[str, str] = {
    "resnet": "references.resnet.benchmark",
    "ssd": "references.ssd.benchmark",
    "maskrcnn": "references.maskrcnn.benchmark",
    "gnmt": "references.gnmt.benchmark",
    "transformer": "references.transformer.benchmark",
    "ncf": "references.ncf.benchmark",
    "minigo": "references.minigo.benchmark",
}


class DataNotYetAvailable(RuntimeError):
    """Raised when a reference touches its dataset before ``run_start``."""


class Dataset:
    """The only way a reference reaches its data directory.

    The engine creates it closed and opens it right after logging ``run_start``, so a
    reference cannot read data on the untimed side of the clock, by mistake or otherwise.
    """

    def __init__(self, root: Path):
        self._root = Path(root)
        self._open = False

    def _open_for_run(self) -> None:  # called by the engine only
        self._open = True

    @property
    def root(self) -> Path:
        if not self._open:
            raise DataNotYetAvailable(
                "the dataset was touched before run_start: the rules put all data access on the clock"
            )
        return self._root


@dataclasses.dataclass(frozen=True)
class Logged:
    """A value from ``logged_hparams`` or ``logged_data_keys`` that is logged with MLLOG
    metadata, e.g. ``Logged(256, {"method": "discard"})`` for ``max_sequence_length``."""

    value: Any
    metadata: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class TrainStats:
    """What ``train_epoch`` reports: work done (for throughput) and the mean loss."""

    num_samples: int
    loss: float = float("nan")


class Benchmark:
    """Base class of every reference. Subclasses set the class attributes and override
    the methods below; the docstrings are the contract."""

    #: MLPerf log name, also the registry key and ``submission_benchmark``.
    name: str = ""
    #: Human name of the quality metric, for tables and progress ("top-1", "BLEU", "HR@10").
    metric: str = ""
    #: A frozen dataclass of the benchmark's own settings (model size, data options).
    #: Its defaults are the reference values. Fields whose ``metadata`` has
    #: ``{"closed": True}`` must keep their default in a closed-division run of the
    #: reference preset; small presets may change them (and are logged as small).
    Settings: type = None  # type: ignore[assignment]

    # --- data that exists before any run (untimed, never on the clock) -------------------
    def prepare(self, source: Path, data_dir: Path, settings: Any) -> None:
        """Turn the real downloaded dataset at ``source`` into ``data_dir``, doing only the
        one-time preprocessing the rules allow before the clock. ``mlperf-train prepare``."""
        raise NotImplementedError

    def generate_small(self, data_dir: Path, settings: Any, seed: int) -> None:
        """Write a small dataset *in the real on-disk format* (what ``prepare`` consumes)
        and then run ``prepare`` on it, so ``data_dir`` looks exactly like a prepared real
        dataset. Must be deterministic in ``seed``. The harness caches the result."""
        raise NotImplementedError

    # --- one run -------------------------------------------------------------------------
    def init(self, preset: Any, env: Any) -> Any:
        """Build model, optimizer and schedules from ``preset`` (an ``hparams.Preset``;
        ``preset.hparams`` holds the whitelisted keys, ``preset.settings`` the Settings
        instance). Seed with ``env.seed``; place tensors on ``env.device``; wrap the model
        with ``env.wrap_model``. No data access. Returns an opaque state object that the
        harness passes back to the other methods."""
        raise NotImplementedError

    def open_data(self, state: Any, dataset: Dataset) -> None:
        """Open the data (loaders, index files) under ``dataset.root``; called just after
        ``run_start``, so this work is timed. Each rank reads its own shard of the training
        data (``env.rank`` of ``env.world_size``)."""
        raise NotImplementedError

    def train_epoch(self, state: Any, epoch: int) -> TrainStats:
        """Train one epoch (1-based ``epoch``). Return :class:`TrainStats` for this rank."""
        raise NotImplementedError

    def evaluate(self, state: Any, epoch: int) -> float | Mapping[str, float]:
        """Evaluate on the whole evaluation set (sharded across ranks and reduced with
        ``env.all_reduce_sum``) and return the quality value, identical on every rank: a
        float, or a mapping of named values for multi-metric benchmarks (Mask R-CNN:
        ``{"BBOX": ..., "SEGM": ...}``)."""
        raise NotImplementedError

    def logged_hparams(self, preset: Any, env: Any) -> dict[str, Any]:
        """MLPerf keys and values this benchmark logs once, before ``run_start``, besides
        ``preset.hparams`` (which the harness logs itself): ``train_samples``,
        ``eval_samples``, ``model_bn_span``, fixed reference values, and so on.
        ``global_batch_size`` is logged by the harness from ``preset.hparams``. A key that
        is also in ``preset.hparams`` replaces it (logged once); a :class:`Logged` value
        carries metadata."""
        return {}

    def logged_data_keys(self, state: Any) -> dict[str, Any]:
        """MLPerf keys whose values are known only once the data is open (``train_samples``
        and ``eval_samples`` of a generated or filtered dataset). Called right after
        ``open_data``, on the clock; logged once. A key must not be returned by both this
        and ``logged_hparams``."""
        return {}

    def eval_extras(self, state: Any) -> dict[str, float]:
        """Other values of the evaluation that just ran, logged as events beside
        ``eval_accuracy`` with the same ``epoch_num`` (NCF: NDCG@10). They never decide
        anything: only the value ``evaluate`` returns is compared with the target."""
        return {}


def get(name: str) -> Benchmark:
    """Import the reference named ``name`` and return its ``BENCHMARK`` object."""
    if name not in REGISTRY:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(REGISTRY))}")
    try:
        module = importlib.import_module(REGISTRY[name])
    except ModuleNotFoundError as error:
        if error.name and REGISTRY[name].startswith(error.name):
            raise KeyError(f"benchmark {name!r} has no implementation yet") from None
        raise
    return module.BENCHMARK


def implemented() -> list[str]:
    """Names whose reference package exists on disk (without importing them)."""
    root = Path(__file__).resolve().parents[1] / "references"
    return [name for name in REGISTRY if (root / name / "benchmark.py").exists()]
