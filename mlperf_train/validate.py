"""``mlperf-train validate``: hparams files against the ruleset's whitelist.

Every violation of every file is printed, one line each (``file: key = value: rule``);
exit 0 when all files are clean, 2 otherwise. ``run`` applies the same checks before a
run starts (``hparams.load_preset``).
"""
from __future__ import annotations

from pathlib import Path

from mlperf_train import benchmark as registry
from mlperf_train.errors import UsageError
from mlperf_train.hparams import check_file, read_yaml


def _settings_class(path: Path) -> type | None:
    """The benchmark's Settings dataclass when its reference exists, so ``settings:`` is
    checked too; None (settings unchecked) for a benchmark with no reference yet."""
    doc, problems = read_yaml(path)
    name = doc.get("benchmark") if isinstance(doc, dict) and not problems else None
    if name not in registry.implemented():
        return None
    return registry.get(name).Settings


def validate_file(path: Path, ruleset: str | None, division: str) -> list[str]:
    """One line per violation; empty when ``path`` is clean."""
    _, violations = check_file(path, ruleset, division, _settings_class(path))
    return [str(v) for v in violations]


def main(args) -> int:
    clean = True
    for name in args.files:
        try:
            problems = validate_file(Path(name), args.ruleset, args.division)
        except UsageError as error:  # a broken rules file: still one line per problem
            problems = [f"{name}: {error}"]
        for line in problems:
            print(line)
        if problems:
            clean = False
        else:
            print(f"{name}: ok ({args.division} division)")
    return 0 if clean else 2
