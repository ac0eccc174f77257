"""The one contract between the harness and a reference implementation.

A reference lives in ``references/<name>/`` and exposes, in its ``benchmark.py``, a
module-level ``BENCHMARK`` object: an instance of a subclass of :class:`Benchmark`, an
abstract base class. A subclass that leaves out a method or a class attribute fails when
it is defined (at import), not in the middle of a run. The harness finds references
through :data:`REGISTRY` and imports them lazily, so importing the harness never imports
torchvision, a model or a dataset.

What a reference owns: its model, its data pipeline, its metric, the MLPerf keys it logs
about itself. What it never does: read a clock, log any event itself, decide that the
target is reached, or open its data before the harness hands it the :class:`Dataset` (the
handle refuses until the clock runs). Everything it reports comes back as return values:
:class:`TrainStats` (with events to log), :class:`EvalResult` (quality and extras).

Order of calls in one run (all on every rank; see ``engine.py``)::

    BENCHMARK.required_artifacts(preset)          # checked before the first run
    state = BENCHMARK.init(preset, env, artifacts)    # untimed: init_start..init_stop
    BENCHMARK.logged_hparams(preset, env)         # logged before the clock
    BENCHMARK.open_data(state, dataset)           # timed: after run_start
    BENCHMARK.logged_data_keys(state)             # logged once, on the clock
    for unit in 1, 2, ...:                        # epochs, or MiniGo's generations
        BENCHMARK.train_epoch(state, unit, progress)      # timed; calls train_step
        [BENCHMARK.save_checkpoint(state, path)]  # rules with off-clock evaluation only
        if the cadence says so:
            BENCHMARK.evaluate(state, unit)       # timed (off the clock where the rules say)
    BENCHMARK.close(state)                        # every exit path: success, abort, crash, signal

Outside a run, ``example_batch``, ``train_step`` and ``eval_step`` let ``perf/`` scripts
and FLOP counting drive the real training step on batches of the real shapes without
touching the data.
"""
from __future__ import annotations

import abc
import dataclasses
import hashlib
import importlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mlperf_train.errors import UsageError

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
# What ``epoch_num`` may count; progress lines and reports show the word.
UNITS = ("epoch", "generation")
# Prefix of the keys this project adds to MLPerf's (the official checker ignores them).
OWN_KEY_PREFIX = "mlperf_train_"
ARTIFACTS_DIR = "artifacts"


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


class ExampleNeedsData(RuntimeError):
    """Raised by ``example_batch`` when the model exists only once the data is open (NCF:
    its tables are the data's size). The harness then counts FLOPs after ``run_stop``."""


class ArtifactMissing(UsageError):
    """A required init input is not where it must be (one line: which file, where, why)."""


class Artifacts:
    """The read-only init inputs of a run: pretrained weights, a bootstrap checkpoint, a
    target model. They live in ``artifacts/`` inside the ``--data`` folder (a small preset's
    cached folder, where ``generate_small`` makes them untimed) and may be read by ``init``
    before the clock. Every file handed out is logged with its sha256 (engine), so a result
    says exactly which weights it started from. A reference never writes here.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._used: dict[str, str] = {}

    def path(self, name: str, what: str = "") -> Path:
        """The file ``artifacts/<name>``; raises :class:`ArtifactMissing` naming where it must
        be and ``what`` it is. Records it (with its sha256) for the log."""
        path = self.folder / name
        if not path.is_file():
            raise ArtifactMissing(missing_artifact_message(self.folder, name, what))
        if name not in self._used:
            self._used[name] = _sha256(path)
        return path

    @property
    def used(self) -> dict[str, str]:
        """{name: sha256} of every file handed out so far, in order."""
        return dict(self._used)


def missing_artifact_message(folder: Path, name: str, what: str) -> str:
    return f"{Path(folder) / name}: missing{': ' + what if what else ''}; put the file there (the data folder's {ARTIFACTS_DIR}/)"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Logged:
    """A value from ``logged_hparams`` or ``logged_data_keys`` that is logged with MLLOG
    metadata, e.g. ``Logged(256, {"method": "discard"})`` for ``max_sequence_length``."""

    value: Any
    metadata: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class LogEvent:
    """An event a reference asks the engine to log, e.g. MiniGo's per-generation
    ``save_model``. The engine stamps it with its own clock when ``train_epoch`` returns and
    adds ``epoch_num`` to its metadata."""

    key: str
    value: Any = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainStats:
    """What ``train_epoch`` reports for this rank: the work done (samples, for
    throughput), the mean loss (None: not reported; NaN or infinite: the training diverged,
    and the engine aborts the run), and events to log."""

    num_samples: int
    loss: float | None = None
    events: Sequence[LogEvent] = ()


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """What ``evaluate`` reports, identical on every rank.

    ``quality``: ``{name: value}`` named as the target (``mlperf_train/quality.py``): the
    ruleset's ``metric`` (``top1_accuracy``, ``hr_at_10``, ``mAP``, ``bleu_uncased``, ...) or
    Mask R-CNN's ``BBOX`` and ``SEGM``; in the benchmark's native unit (BLEU points). The
    engine compares it with the target and refuses other names.
    ``extras``: other values of the same evaluation, logged as events beside
    ``eval_accuracy`` (NCF ``eval_ndcg``, ``eval_loss``, MiniGo's win rate against GNU Go).
    They never decide anything.
    """

    quality: Mapping[str, float]
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ExampleBatch:
    """One batch of the real shapes, made without the dataset: what ``train_step`` (or
    ``eval_step``) takes, and how many samples it holds (for FLOPs per sample)."""

    data: Any
    num_samples: int


#: ``progress(done, total, loss=None)``: samples done so far in this unit on this rank, out
#: of ``total``; ``loss`` may be a device tensor (the display reads it only when it redraws,
#: so a reference never has to synchronise for it).
Progress = Callable[..., None]


def no_progress(done: int, total: int, loss: Any = None) -> None:
    """The progress callback outside a run (tests, ``perf/`` scripts)."""


class Benchmark(abc.ABC):
    """Base class of every reference. Subclasses set the class attributes and implement the
    abstract methods; the docstrings are the contract."""

    #: MLPerf log name, also the registry key and ``submission_benchmark``.
    name: str = ""
    #: Human label of the quality for progress lines ("top-1", "BLEU", "HR@10", "mAP").
    metric: str = ""
    #: What ``epoch_num`` counts: "epoch", or "generation" (MiniGo). Progress shows it.
    unit: str = "epoch"
    #: A frozen dataclass of the benchmark's own settings (model size, data options). Its
    #: defaults are the reference values; fields are declared with
    #: ``mlperf_train.settings.setting`` (constraints, closed values per ruleset).
    Settings: type = None  # type: ignore[assignment]
    #: The typed dataclass ``init`` returns and every other method receives.
    State: type = None  # type: ignore[assignment]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if any(getattr(getattr(cls, method, None), "__isabstractmethod__", False)
               for method in Benchmark.__abstractmethods__):
            return  # abstract still: instantiating it (``BENCHMARK = ...``, at import) fails
        problems = []
        if not (isinstance(cls.name, str) and cls.name):
            problems.append("`name` must be the MLPerf benchmark name")
        if cls.unit not in UNITS:
            problems.append(f"`unit` must be one of {UNITS}, not {cls.unit!r}")
        for attribute in ("Settings", "State"):
            value = getattr(cls, attribute)
            if not (isinstance(value, type) and dataclasses.is_dataclass(value)):
                problems.append(f"`{attribute}` must be a dataclass")
        if isinstance(cls.Settings, type) and dataclasses.is_dataclass(cls.Settings) and \
                not cls.Settings.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            problems.append("`Settings` must be a frozen dataclass")
        if problems:
            raise TypeError(f"{cls.__name__} breaks the Benchmark contract: {'; '.join(problems)}")

    # --- data that exists before any run (untimed, never on the clock) -------------------
    @abc.abstractmethod
    def prepare(self, source: Path, data_dir: Path, settings: Any) -> None:
        """Turn the real downloaded dataset at ``source`` into ``data_dir``, doing only the
        one-time preprocessing the rules allow before the clock (``mlperf-train prepare``).
        Raises ``UsageError`` (one line: file, what is wrong) for unusable input.
        Returns None."""

    @abc.abstractmethod
    def generate_small(self, data_dir: Path, settings: Any, seed: int) -> None:
        """Write a small dataset *in the real on-disk format* (what ``prepare`` consumes),
        run ``prepare`` on it, and make the artifacts the small preset starts from (in
        ``data_dir / "artifacts"``, in the real artifact's file format: e.g. a backbone
        pretrained on generated images). Deterministic in ``seed``; untimed; the harness
        caches the result by settings (``datacache.py``). Returns None."""

    def required_artifacts(self, preset: Any) -> dict[str, str]:
        """The artifact files ``init`` will read for ``preset``: ``{name under artifacts/:
        what it is and where it comes from}``. The series refuses to start, in one line
        naming where to put a missing file, before the first run. Returns {} by default."""
        return {}

    def world_size_problems(self, preset: Any, world_size: int) -> list[tuple[str, Any, str]]:
        """What ``preset`` asks that ``world_size`` processes cannot honour (ResNet's
        ``model_bn_span`` is one rank's batch), as ``(key, value, rule)`` with keys written as
        in the file (``hparams.model_bn_span``). The series reports them like validation
        errors before the first run; ``init`` never rejects a setting. Returns [] by default."""
        return []

    # --- one run -------------------------------------------------------------------------
    @abc.abstractmethod
    def init(self, preset: Any, env: Any, artifacts: Artifacts) -> Any:
        """Build model, optimizer and schedules (untimed) from ``preset`` (an
        ``hparams.Preset``: ``preset.hparams`` the whitelisted keys, ``preset.settings`` the
        validated Settings instance, ``preset.ruleset``) and from ``artifacts`` only. Seeded
        from ``env.seed``; tensors on ``env.device``; the model wrapped with
        ``env.wrap_model``. No data access, no clock, and no rejected settings (they were
        validated already). Returns an instance of ``self.State``."""

    @abc.abstractmethod
    def open_data(self, state: Any, dataset: Dataset) -> None:
        """Open the data (loaders, index files) under ``dataset.root``; called just after
        ``run_start``, so this work is timed. Each rank reads its own shard of the training
        data (``env.rank`` of ``env.world_size``). Returns None."""

    @abc.abstractmethod
    def train_epoch(self, state: Any, epoch: int, progress: Progress) -> TrainStats:
        """Train one unit (1-based ``epoch``: an epoch, or a MiniGo generation) by calling
        ``train_step`` on each global batch; call ``progress(done, total, loss)`` as samples
        are done (cheap; never synchronise for it). Returns :class:`TrainStats` for this rank,
        with any events the rules want logged in this unit."""

    @abc.abstractmethod
    def train_step(self, state: Any, batch: Any) -> Any:
        """One optimizer step on one global batch (this rank's share of it). Returns the
        loss as a device tensor (reading it would make the host wait for the device)."""

    @abc.abstractmethod
    def example_batch(self, state: Any, split: str = "train") -> ExampleBatch:
        """One batch of the real shapes for ``split`` ("train": what ``train_step`` takes,
        one global batch's share on this rank; "eval": what ``eval_step`` takes), made
        without touching the dataset (generated content). Returns :class:`ExampleBatch`.
        Raises :class:`ExampleNeedsData` when the model is built only in ``open_data``.
        The harness counts FLOPs on it before the clock and puts the state back afterwards
        (``flops.restored``): weights, optimizer, generators and scalar fields."""

    @abc.abstractmethod
    def eval_step(self, state: Any, batch: Any) -> Any:
        """The model's evaluation work on one batch from ``example_batch(state, "eval")``
        (forward pass and any decoding the metric needs; no gradients), for FLOP counting and
        ``perf/`` scripts. Returns the raw outputs."""

    @abc.abstractmethod
    def evaluate(self, state: Any, epoch: int) -> EvalResult:
        """Evaluate on the whole evaluation set, sharded across ranks and reduced exactly
        (``env.all_reduce_sum`` of sufficient statistics, or ``env.all_gather_object`` of
        predictions for COCO). Returns :class:`EvalResult`, identical on every rank, whose
        ``quality`` keys are the target's."""

    def save_checkpoint(self, state: Any, path: Path) -> None:
        """Save the current model to ``path`` (rules with off-clock evaluation, MiniGo from
        0.6.0: the engine times the save and evaluates that checkpoint off the clock).
        Benchmarks whose rules never ask for it need not implement it. Returns None."""
        raise NotImplementedError(f"{self.name} does not save checkpoints")

    def close(self, state: Any) -> None:
        """End what the run started: loader workers, self-play pools, engine subprocesses.
        Called on every rank on every exit path (success, abort, crash, SIGTERM), at most
        once per run; must not raise. Returns None."""

    # --- what the log says about the run -------------------------------------------------
    @abc.abstractmethod
    def logged_hparams(self, preset: Any, env: Any) -> dict[str, Any]:
        """MLPerf keys and values logged once, before ``run_start``, besides
        ``preset.hparams`` (which the harness logs itself): fixed reference values, model
        and optimizer keys the checker wants. ``global_batch_size`` is logged by the harness.
        A key that is also in ``preset.hparams`` replaces it (logged once); a
        :class:`Logged` value carries metadata. Returns {key: value}."""

    def logged_data_keys(self, state: Any) -> dict[str, Any]:
        """MLPerf keys whose values are known only once the data is open (``train_samples``
        and ``eval_samples`` of a generated or filtered dataset). Called right after
        ``open_data``, on the clock; logged once. Disjoint from ``logged_hparams`` and from
        the evaluation's extras. Returns {key: value}."""
        return {}


def get(name: str) -> Benchmark:
    """Import the reference named ``name`` and return its ``BENCHMARK`` object. Raises
    ``KeyError`` for an unknown name or one without an implementation."""
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
