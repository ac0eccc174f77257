"""``mlperf-train check``: mlperf_logging's compliance checker engine, as a library.

Official configs where mlperf_logging has them (training_0.6.0, training_0.7.0); project
configs in the same YAML language under ``rules/<ruleset>/compliance/`` where it has none
(v0.5 NCF in MLLOG format, small presets, which must pass everything but the target). Then
the logged hyperparameters go through the whitelist. One line per problem; exit 0 clean,
1 not compliant, 2 unusable input.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from mlperf_train import whitelist
from mlperf_train.errors import UsageError
from mlperf_train.results import read_run
from mlperf_train.rules import RULES_DIR

# Parsers of mlperf_logging by log format (it has none for v0.5's :::MLPv0.5.0 lines).
_PARSER_RULESET = {"mll": "0.6.0", "mllog": "0.7.0"}
# Keys that describe the run, not a hyperparameter: never sent to the whitelist.
_NOT_HPARAMS = re.compile(r"^(submission_|init_|run_|block_|epoch_|eval_|cache_clear|"
                          r"mlperf_train_|train_samples|eval_samples|save_model|weights_)")


def _one_line(message: str) -> str:
    """The checker's multi-line message (log line, state dumps) as one readable line."""
    head = message.split("current context")[0]
    lines = [l.strip() for l in head.splitlines() if l.strip() and ":::" not in l]
    return " ".join(lines) or message.strip().splitlines()[0]


def _project_config(ruleset: str, name: str) -> Path | None:
    path = RULES_DIR / ruleset / "compliance" / name
    return path if path.is_file() else None


def _first_config(record) -> str:
    """The checker config a log starts from (absolute path or one relative to the package)."""
    if record.ruleset in ("0.6.0", "0.7.0") and record.log_format in _PARSER_RULESET:
        return f"training_{record.ruleset}/common.yaml"
    for name in ("common.yaml", f"{record.benchmark}.yaml"):
        path = _project_config(record.ruleset or "", name)
        if path:
            return str(path)
    raise UsageError(f"{record.path}: no compliance config for ruleset {record.ruleset} "
                     f"({record.log_format} format); allowed: MLLOG/MLL logs of 0.6.0, 0.7.0 "
                     f"or a project config under rules/<ruleset>/compliance/")


def _substitute(config: str, record) -> str:
    """Small presets: the benchmark config without the target check (a project copy)."""
    if record.preset in (None, "reference"):
        return config
    match = re.fullmatch(r"training_0\.7\.0/closed_(\w+)\.yaml", config)
    if match:
        path = _project_config("0.7.0", f"small_closed_{match.group(1)}.yaml")
        if path:
            return str(path)
    return config


def run_checker(path: str, record) -> list[str]:
    """Problems the checker engine finds in one log, one line each."""
    from mlperf_logging.compliance_checker import mlp_compliance, mlp_parser

    loglines, errors = mlp_parser.parse_file(path, ruleset=_PARSER_RULESET[record.log_format])
    problems = [f"parse error: {error}: {line.strip()[:120]}" for line, error in errors]
    checker = mlp_compliance.make_checker("training", record.ruleset, quiet=True, werror=False)
    queue = mlp_compliance.enqueued_configs
    queue.clear()
    queue.append(_first_config(record))
    package_dir = os.path.dirname(os.path.abspath(mlp_compliance.__file__))
    try:
        while queue:
            config = os.path.join(package_dir, _substitute(queue.pop(0), record))
            if not os.path.exists(config):
                checker.put_message(f"no checker config {config}")
                continue
            checker.configured_checks(loglines, config)
    except Exception as error:  # the engine evals config code; any failure is a finding
        checker.put_message(f"checker stopped: {type(error).__name__}: {error}")
    finally:
        queue.clear()
    messages = [*checker.overwritable.values(), *checker.not_overwritable]
    return problems + [_one_line(m) for m in messages]


def logged_hparams(path: str) -> tuple[dict, str]:
    """(hyperparameter key -> value, division) from a :::MLLOG / :::MLL log."""
    from mlperf_train.results import parse_line

    hparams, division = {}, "closed"
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parsed = parse_line(line) if ":::" in line else None
            if parsed is None:
                continue
            event = parsed[2]
            if event.key == "submission_division":
                division = str(event.value)
            elif not _NOT_HPARAMS.match(event.key) and event.value is not None:
                hparams.setdefault(event.key, event.value)
    return hparams, division


def _whitelist_keys(benchmark: str, ruleset: str) -> set | None:
    path = RULES_DIR / ruleset / "whitelist" / f"{benchmark}.yaml"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return set((yaml.safe_load(f) or {}).get("keys") or {})


def check_hparams(path: str, record) -> list[str]:
    """Whitelist violations of the logged hyperparameters (unknown keys are ignored)."""
    hparams, division = logged_hparams(path)
    if division not in ("closed", "open"):
        return []
    check_logged = getattr(whitelist, "check_logged", None)
    if check_logged is None:  # until whitelist.check_logged lands: only whitelisted keys
        known = _whitelist_keys(record.benchmark, record.ruleset)
        if known is None:
            return []
        hparams = {k: v for k, v in hparams.items() if k in known}
        violations = whitelist.check(hparams, record.benchmark, record.ruleset, division)
    else:
        violations = check_logged(hparams, record.benchmark, record.ruleset, division)
    return [f"hparam {getattr(v, 'key', '?')} = {getattr(v, 'value', '?')!r}: "
            f"{getattr(v, 'rule', v)}" for v in violations]


def check_log(path: str, ruleset: str | None = None) -> list[str]:
    """All problems of one log; raises UsageError when it is not a usable MLPerf log."""
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    record = read_run(path)
    if record.log_format is None:
        raise UsageError(f"{path}: {record.reason}")
    if record.log_format not in _PARSER_RULESET:
        raise UsageError(f"{path}: v0.5 :::MLPv0.5.0 logs have no checker in mlperf_logging")
    if ruleset:
        record.ruleset = ruleset
    if not record.benchmark:
        raise UsageError(f"{path}: no submission_benchmark key")
    return run_checker(path, record) + check_hparams(path, record)


def main(args) -> int:
    worst = 0
    for path in args.logs:
        try:
            problems = check_log(path, args.ruleset)
        except UsageError as error:
            print(f"{error}")
            worst = 2
            continue
        for problem in problems:
            print(f"{path}: {problem}")
        if problems:
            worst = max(worst, 1)
    return worst
