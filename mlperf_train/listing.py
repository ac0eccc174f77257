"""``mlperf-train list``: the rules of every benchmark, per ruleset, as a table."""
from __future__ import annotations

from mlperf_train.benchmark import implemented
from mlperf_train.rules import RULESETS, default_ruleset, load_suite


def _cadence(cadence) -> str:
    if cadence.at_epochs:
        return "at " + ",".join(f"{e:g}" for e in cadence.at_epochs)
    text = f"every {cadence.every_epochs}"
    if cadence.first_epoch_max and cadence.first_epoch_max != cadence.every_epochs:
        text += f" (first <= {cadence.first_epoch_max})"
    return text + ("" if cadence.on_clock else ", off clock")


def _aggregation(aggregation: dict) -> str:
    if aggregation["method"] == "first_converged_olympic":
        return f"first {aggregation['num_converged']} converged, olympic"
    return f"olympic, <= {aggregation.get('max_non_converged', 0)} non-conv."


def rows(ruleset: str | None = None) -> list[list[str]]:
    have = set(implemented())
    table = []
    for name in RULESETS if ruleset is None else (ruleset,):
        for bench, rules in load_suite(name).benchmarks.items():
            target = rules.target if not isinstance(rules.target, dict) else \
                " ".join(f"{k} {v}" for k, v in rules.target.items())
            default = rules.runnable and default_ruleset(bench) == name
            table.append([
                name, bench, rules.metric, str(target), str(rules.runs), _aggregation(rules.aggregation),
                _cadence(rules.eval), "-" if rules.reference_minutes is None else f"{rules.reference_minutes:g}",
                "yes" if bench in have and rules.runnable else "no", "*" if default else "",
            ])
    return table


def print_table(ruleset: str | None = None) -> None:
    header = ["ruleset", "benchmark", "metric", "target", "runs", "aggregation", "eval (epochs)",
              "ref. min", "runnable", "default"]
    table = [header] + rows(ruleset)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
