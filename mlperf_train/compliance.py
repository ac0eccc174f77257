"""``mlperf-train check``: mlperf_logging's compliance checker engine, as a library.

Which configs check a log:
- a published v0.6 ``:::MLL`` log: the official ``training_0.6.0`` configs;
- a ``:::MLLOG`` log of ruleset 0.7.0: the official ``training_0.7.0`` configs;
- our ``:::MLLOG`` logs of older rulesets (v0.5 NCF): project configs in the same YAML
  language, ``rules/<ruleset>/compliance/common.yaml`` then ``<division>_<benchmark>.yaml``.
A small preset has its own target, so its log is checked with every benchmark config
(``closed_<bench>.yaml`` and the ones it enqueues) minus its target check: the
``eval_accuracy`` ATLEAST_ONE_CHECK, dropped from a scratch copy of the official file.
Then the logged hyperparameters go through the whitelist (``whitelist.check_logged``).

One line per problem; ``main`` exits 0 clean, 1 not compliant, 2 unusable input.
The engine keeps a module-level queue (``enqueued_configs``) and evaluates config code; each
check starts from an empty queue, a new checker and fresh state, and writes no files.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path

import yaml

from mlperf_train import whitelist
from mlperf_train.errors import UsageError
from mlperf_train.results import RunRecord, iter_lines, parse_line, read_run
from mlperf_train.rules import RULES_DIR, RULESETS, load_suite

EXIT_CLEAN, EXIT_NOT_COMPLIANT, EXIT_UNUSABLE = 0, 1, 2
# The mlperf_logging parser of each log format (it has none for v0.5's :::MLPv0.5.0 lines).
_PARSER_RULESET = {"mll": "0.6.0", "mllog": "0.7.0"}
_CONFIG_NAME = re.compile(r"(closed|open)_\w+\.yaml")


def _one_line(message: str) -> str:
    """The checker's multi-line message (log line, state dumps) as one readable line."""
    head = message.split("current context")[0]
    lines = [l.strip() for l in head.splitlines() if l.strip() and ":::" not in l]
    return " ".join(lines) or message.strip().splitlines()[0]


def _project_config(ruleset: str, name: str) -> Path | None:
    path = RULES_DIR / ruleset / "compliance" / name
    return path if path.is_file() else None


def first_configs(record: RunRecord) -> list[str]:
    """The configs a log's check starts from: paths relative to mlperf_logging's
    compliance_checker package, or absolute paths of project configs."""
    fmt, ruleset, bench = record.log_format, record.ruleset, record.benchmark
    if fmt == "mll":
        if ruleset != "0.6.0":
            raise UsageError(f"{record.path}: a :::MLL log is checked by ruleset 0.6.0, not {ruleset}")
        # v0.6 MiniGo has one standalone config; common.yaml does not admit it.
        return [f"training_0.6.0/{'minigo' if bench == 'minigo' else 'common'}.yaml"]
    if ruleset == "0.7.0":
        return ["training_0.7.0/common.yaml"]
    common = _project_config(ruleset or "", "common.yaml")
    if common is None:
        raise UsageError(f"{record.path}: no compliance config for {bench} logs of ruleset "
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
    if record.preset in (None, "reference") or not _CONFIG_NAME.fullmatch(path.name):
        return path
    return _without_target_check(path, scratch) if path.is_file() else path


def run_checker(path: str, record: RunRecord) -> list[str]:
    """Problems the checker engine finds in one log, one line each."""
    from mlperf_logging.compliance_checker import mlp_compliance, mlp_parser

    try:
        loglines, errors = mlp_parser.parse_file(path, ruleset=_PARSER_RULESET[record.log_format])
    except Exception as error:  # the official parser raises KeyError etc. on odd lines
        return [f"the checker cannot parse this log: {type(error).__name__}: {error}"]
    problems = [f"parse error: {error}: {line.strip()[:120]}" for line, error in errors]
    checker = mlp_compliance.make_checker("training", record.ruleset, quiet=True, werror=False)
    queue = mlp_compliance.enqueued_configs
    package_dir = os.path.dirname(os.path.abspath(mlp_compliance.__file__))
    queue.clear()
    queue.extend(first_configs(record))
    try:
        with tempfile.TemporaryDirectory(prefix="mlperf-train-check-") as scratch, \
                contextlib.redirect_stdout(io.StringIO()):   # config code may print
            while queue:
                name = queue.pop(0)
                config = _resolve(name, record, package_dir, scratch)
                if not config.is_file():   # e.g. closed_resnet_<opt_name>.yaml for an unknown opt_name
                    checker.put_message(f"no checker config {name}")
                    continue
                checker.configured_checks(loglines, str(config))
    except Exception as error:  # the engine evaluates config code; any failure is a finding
        checker.put_message(f"checker stopped: {type(error).__name__}: {error}")
    finally:
        queue.clear()
    messages = [*checker.overwritable.values(), *checker.not_overwritable]
    return problems + [_one_line(m) for m in messages]


def logged_hparams(path: str) -> dict:
    """Key -> first logged value, from a :::MLLOG / :::MLL log. Every key with a value: the
    whitelist picks its own keys and ignores the rest (run events, submission_*, ...)."""
    hparams = {}
    with open(path, "rb") as f:
        for line in iter_lines(f):
            parsed = parse_line(line) if b":::" in line else None
            if parsed is None:
                continue
            event = parsed[2]
            if event.value is not None:
                hparams.setdefault(event.key, event.value)
    return hparams


def check_hparams(path: str, record: RunRecord) -> list[str]:
    """Whitelist violations of the logged hyperparameters (keys it does not know are ignored)."""
    division = record.division or "closed"
    if division not in ("closed", "open"):
        return [f"submission_division {division!r}: allowed: closed, open"]
    violations = whitelist.check_logged(logged_hparams(path), record.benchmark,
                                        record.ruleset, division)
    return [f"hparam {v.key} = {v.value!r}: {v.rule}" for v in violations]


def check_log(path: str, ruleset: str | None = None) -> list[str]:
    """All problems of one log; raises UsageError when it is not a usable MLPerf log."""
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    record = read_run(path)
    if not record.usable:
        raise UsageError(f"{path}: {record.reason}")
    if record.log_format not in _PARSER_RULESET:
        raise UsageError(f"{path}: v0.5 :::MLPv0.5.0 logs cannot be checked: mlperf_logging "
                         f"has no parser or checker for that format")
    if not record.benchmark:
        raise UsageError(f"{path}: no submission_benchmark key")
    if ruleset:
        record.ruleset = ruleset
    if record.ruleset not in RULESETS or record.benchmark not in load_suite(record.ruleset).benchmarks:
        raise UsageError(f"{path}: {record.benchmark} is not a benchmark of ruleset {record.ruleset} "
                         f"(give --ruleset)")
    return run_checker(path, record) + check_hparams(path, record)


def main(args) -> int:
    """``mlperf-train check``: every problem on its own line, prefixed by the log's path."""
    worst = EXIT_CLEAN
    for path in args.logs:
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
