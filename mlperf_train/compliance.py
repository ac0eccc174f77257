"""mlperf_logging's compliance checker engine, run on a log as the official checker runs it.

Which configs check a log:
- a published v0.6 ``:::MLL`` log: the official ``training_0.6.0`` configs;
- a ``:::MLLOG`` log of ruleset 0.7.0: the official ``training_0.7.0`` configs;
- our ``:::MLLOG`` logs of older rulesets (NCF 0.5.0, MiniGo 9x9 0.6.0): project configs in
  the same YAML language, ``rules/<ruleset>/compliance/common.yaml`` then
  ``<division>_<benchmark>.yaml`` (mlperf_logging has none for them);
- v0.5 ``:::MLPv0.5.0`` logs: none (mlperf_logging has no parser for them).
A small preset has its own target, so its log is checked with every benchmark config
(``closed_<bench>.yaml`` and the ones it enqueues) minus its target check: the
``eval_accuracy`` ATLEAST_ONE_CHECK, dropped from a scratch copy of the official file.

Each finding names the config it comes from. The engine runs on the official parser's own
lines (``logread.scan``) and keeps a module-level queue (``enqueued_configs``); each check
starts from an empty queue, a new checker and fresh state, and writes no files.

Speed: ``score`` runs this on every file. The engine re-reads and re-parses each YAML config
for every log and compiles the config's code strings again for every log line; while it runs
here, both are done once per process (:func:`_engine_speedups`). Same loader, same code, same
globals and locals, so the same messages (a test compares them with ``mlp_compliance.main``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import re
import tempfile
from pathlib import Path

import yaml

from mlperf_train.errors import UsageError
from mlperf_train.logread import OFFICIAL_PARSER_RULESET
from mlperf_train.results import RunRecord
from mlperf_train.rules import RULES_DIR

_CONFIG_NAME = re.compile(r"(closed|open)_\w+\.yaml")
_MESSAGE_KEY = re.compile(r"(?:for|of) '?(\w+)'?")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem of one log. ``source`` says who finds it: the official checker's config,
    a project config run in the official engine, or the rules table. ``keys``: the log
    keys it is about."""

    text: str
    source: str
    keys: tuple[str, ...] = ()
    official: bool = False        # found by the official checker (its configs or parser)

    def __str__(self) -> str:
        return f"{self.text} ({self.source})"


def _one_line(message: str) -> str:
    """The checker's multi-line message (log line, state dumps) as one readable line."""
    head = message.split("current context")[0]
    lines = [l.strip() for l in head.splitlines() if l.strip() and ":::" not in l]
    return " ".join(lines) or message.strip().splitlines()[0]


def _project_config(ruleset: str, name: str) -> Path | None:
    path = RULES_DIR / ruleset / "compliance" / name
    return path if path.is_file() else None


def has_engine_configs(record: RunRecord) -> bool:
    """Whether the checker engine can check this log (official or project configs)."""
    try:
        first_configs(record)
    except UsageError:
        return False
    return True


def first_configs(record: RunRecord) -> list[str]:
    """The configs a log's check starts from: paths relative to mlperf_logging's
    compliance_checker package, or absolute paths of project configs."""
    fmt, ruleset, bench = record.log_format, record.ruleset, record.benchmark
    if fmt not in OFFICIAL_PARSER_RULESET:
        raise UsageError("mlperf_logging has no parser or checker for :::MLPv0.5.0 logs")
    if fmt == "mll":
        if ruleset != "0.6.0":
            raise UsageError(f"a :::MLL log is checked by ruleset 0.6.0, not {ruleset}")
        # v0.6 MiniGo has one standalone config; common.yaml does not admit it.
        return [f"training_0.6.0/{'minigo' if bench == 'minigo' else 'common'}.yaml"]
    if ruleset == "0.7.0":
        return ["training_0.7.0/common.yaml"]
    common = _project_config(ruleset or "", "common.yaml")
    if common is None:
        raise UsageError(f"no compliance config for {bench} logs of ruleset "
                         f"{ruleset} in :::MLLOG format (mlperf_logging has none; none under "
                         f"rules/{ruleset}/compliance/)")
    division = record.division if record.division in ("closed", "open") else "closed"
    bench_config = _project_config(ruleset, f"{division}_{bench}.yaml")
    return [str(common)] + ([str(bench_config)] if bench_config else [])


def _without_target_check(config: Path, folder: str) -> Path:
    """A copy of ``config`` without the eval_accuracy ATLEAST_ONE_CHECK, or ``config`` itself
    when it has none. The YAML is only re-serialised here; the engine evaluates it."""
    with open(config, encoding="utf-8") as f:
        checks = yaml.load(f, Loader=yaml.BaseLoader) or []
    changed = False
    for item in checks:
        record = item.get("KEY") if isinstance(item, dict) else None
        if isinstance(record, dict) and record.get("NAME") == "eval_accuracy":
            changed |= record.pop("ATLEAST_ONE_CHECK", None) is not None
    if not changed:
        return config
    copy = Path(folder) / f"small_{config.parent.name}_{config.name}"
    with open(copy, "w", encoding="utf-8") as f:
        yaml.safe_dump(checks, f, sort_keys=False)
    return copy


def _resolve(config: str, record: RunRecord, package_dir: str, scratch: str) -> Path:
    """The file the engine reads for an enqueued config, with the small-preset substitution."""
    path = Path(package_dir, config)   # an absolute (project) path stays as it is
    if not record.small_preset or not _CONFIG_NAME.fullmatch(path.name):
        return path
    return _without_target_check(path, scratch) if path.is_file() else path


def _source(config: str, resolved: Path) -> str:
    if os.path.isabs(config):
        name = os.path.relpath(config, RULES_DIR.parent)
        return f"{name}, a project config run in the official checker engine"
    note = " without its target check (small preset)" if resolved.name.startswith("small_") else ""
    return f"official checker: {config}{note}"


# --- speed: the engine's own work done once per process ------------------------------------
@functools.lru_cache(maxsize=None)
def _compiled(source: str, mode: str):
    return compile(source, "<string>", mode, dont_inherit=True)


def _eval(source, globals=None, locals=None):  # noqa: A002 - the builtin's signature
    return eval(_compiled(source, "eval") if isinstance(source, str) else source, globals, locals)


def _exec(source, globals=None, locals=None):  # noqa: A002
    return exec(_compiled(source, "exec") if isinstance(source, str) else source, globals, locals)


class _ParsedConfigs:
    """Stands in for the ``yaml`` module inside ``mlp_compliance``: the same ``load``, once
    per config file and version (the engine never changes what it loads)."""

    BaseLoader = yaml.BaseLoader
    _cache: dict = {}

    @classmethod
    def load(cls, stream, Loader=yaml.BaseLoader):  # noqa: N803 - yaml's signature
        name = getattr(stream, "name", None)
        if not isinstance(name, str):
            return yaml.load(stream, Loader=Loader)
        stat = os.stat(name)
        key = (os.path.abspath(name), stat.st_mtime_ns, stat.st_size, Loader)
        if key not in cls._cache:
            cls._cache[key] = yaml.load(stream, Loader=Loader)
        return cls._cache[key]


@contextlib.contextmanager
def _engine_speedups(module):
    """Module globals shadow builtins: ``eval``/``exec`` inside the engine compile each code
    string once; ``yaml.load`` parses each config once."""
    module.eval, module.exec, module.yaml = _eval, _exec, _ParsedConfigs
    try:
        yield
    finally:
        del module.eval, module.exec
        module.yaml = yaml


@contextlib.contextmanager
def _scratch(record: RunRecord):
    """A folder for a small preset's derived configs (a reference log needs none)."""
    if not record.small_preset:
        yield ""
        return
    with tempfile.TemporaryDirectory(prefix="mlperf-train-check-") as folder:
        yield folder


def _message_keys(message: str) -> tuple[str, ...]:
    match = _MESSAGE_KEY.search(message)
    return (match.group(1),) if match else ()


def run_checker(record: RunRecord) -> list[Finding]:
    """What the checker engine finds in one log, one finding per message, each naming the
    config that made it. The log must have configs (``first_configs``)."""
    from mlperf_logging.compliance_checker import mlp_compliance

    scan = record.scan
    parser = f"official parser (mlp_parser, ruleset {OFFICIAL_PARSER_RULESET[record.log_format]})"
    if scan.parser_crash:
        return [Finding(f"the official parser cannot read this log: {scan.parser_crash}", parser, official=True)]
    findings = [Finding(f"parse error: {error}: {line[:120]}", parser, official=True)
                for line, error in scan.parse_errors[:5]]
    if len(scan.parse_errors) > 5:
        findings.append(Finding(f"... and {len(scan.parse_errors) - 5} more lines the parser rejects", parser,
                                official=True))
    configs = first_configs(record)
    checker = mlp_compliance.make_checker("training", record.ruleset, quiet=True, werror=False)
    if not scan.official:
        checker.put_message("No log lines detected")
    queue = mlp_compliance.enqueued_configs
    package_dir = os.path.dirname(os.path.abspath(mlp_compliance.__file__))
    made_by: dict = {}       # message -> (source, official) of the config that produced it
    queue.clear()
    queue.extend(configs)
    source = _source(configs[0], Path(configs[0]))
    fallback = (source, not os.path.isabs(configs[0]))
    try:
        with _scratch(record) as scratch, contextlib.redirect_stdout(io.StringIO()), \
                _engine_speedups(mlp_compliance):   # config code may print
            while queue:
                name = queue.pop(0)
                config = _resolve(name, record, package_dir, scratch)
                source = _source(name, config)
                if not config.is_file():   # e.g. closed_resnet_<opt_name>.yaml for an unknown opt_name
                    checker.put_message(f"no checker config {name}")
                else:
                    checker.configured_checks(scan.official, str(config))
                for message in [*checker.overwritable.values(), *checker.not_overwritable]:
                    made_by.setdefault(message, (source, not os.path.isabs(name)))
    except Exception as error:  # the engine evaluates config code; any failure is a finding
        checker.put_message(f"checker stopped: {type(error).__name__}: {error}")
    finally:
        queue.clear()
    for key, message in checker.overwritable.items():
        source, official = made_by.get(message, fallback)
        findings.append(Finding(_one_line(message), source, (key,), official))
    for message in checker.not_overwritable:
        source, official = made_by.get(message, fallback)
        findings.append(Finding(_one_line(message), source, _message_keys(message), official))
    return findings


# --- mlperf-train check --------------------------------------------------------------------
EXIT_CLEAN, EXIT_NOT_COMPLIANT, EXIT_UNUSABLE = 0, 1, 2


def check_log(path: str, ruleset: str | None = None) -> list[str]:
    """Every finding of one log as ``text (source)``; raises UsageError when it is not a
    usable MLPerf log. The same judgement as ``score`` (``verdict.judge``)."""
    from mlperf_train import verdict

    if os.path.isdir(path):
        raise UsageError(f"{path}: a folder with no result_*.txt in it or below it")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    judged = verdict.judge(path, ruleset)
    if judged.unusable:
        raise UsageError(f"{path}: {judged.unusable}")
    return [str(f) for f in judged.findings]


def _log_files(paths) -> list[str]:
    """Files as given; a folder stands for the ``result_*.txt`` in it or in any folder below it."""
    from mlperf_train import score   # score -> verdict -> this module: imported when used

    logs = []
    for path in paths:
        if not os.path.isdir(path):
            logs.append(path)
            continue
        found = [log for folder in score.result_folders([path]) for log in score.result_files(folder)]
        logs += found or [path]   # none: reported as not a log file
    return logs


def main(args) -> int:
    """``mlperf-train check``: every finding on its own line, prefixed by the log's path;
    0 when every log is a compliant, converged run, 1 when one is not, 2 on unusable input."""
    import sys

    worst = EXIT_CLEAN
    for path in _log_files(args.logs):
        try:
            problems = check_log(path, args.ruleset)
        except UsageError as error:
            print(f"mlperf-train check: {error}", file=sys.stderr)
            worst = EXIT_UNUSABLE
            continue
        for problem in problems:
            print(f"{path}: {problem}")
        if problems:
            worst = max(worst, EXIT_NOT_COMPLIANT)
    return worst
