"""``mlperf-train list``: the rules of every benchmark, per ruleset, as a table."""
from __future__ import annotations

from mlperf_train import quality
from mlperf_train.benchmark import implemented
from mlperf_train.rules import RULESETS, default_ruleset, load_suite


def _cadence(cadence) -> str:
    if cadence.at_epochs:
        return "at " + ",".join(f"{e:g}" for e in cadence.at_epochs)
    text = f"every {cadence.every_epochs}"
    if cadence.first_epoch_max and cadence.first_epoch_max != cadence.every_epochs:
        text += f" (first <= {cadence.first_epoch_max})"
    return text + ("" if cadence.on_clock else ", off clock (timestamped checkpoints)")


def _aggregation(aggregation: dict) -> str:
    if aggregation["method"] == "first_converged_olympic":
        return f"first {aggregation['num_converged']} converged, olympic"
    return f"olympic, <= {aggregation.get('max_non_converged', 0)} non-conv."


def _why_not(bench: str, rules, have: set[str]) -> str | None:
    """Why ``run`` cannot run this entry, or None when it can."""
    if rules.not_runnable:
        return rules.not_runnable
    if bench not in have:
        return "no reference implementation yet"
    return None


def rows(ruleset: str | None = None) -> list[list[str]]:
    """One row per benchmark and ruleset; the last cell is why it is not runnable ("")."""
    have = set(implemented())
    table = []
    for name in RULESETS if ruleset is None else (ruleset,):
        for bench, rules in load_suite(name).benchmarks.items():
            target = " ".join(f"{k} {v:g}" for k, v in rules.target.items()) if len(rules.target) > 1 \
                else f"{quality.logged_value(rules.target):g}"
            default = rules.runnable and default_ruleset(bench) == name
            why_not = _why_not(bench, rules, have)
            table.append([
                name, bench, rules.metric, target, str(rules.runs), _aggregation(rules.aggregation),
                _cadence(rules.eval), "-" if rules.reference_minutes is None else f"{rules.reference_minutes:g}",
                "no" if why_not else "yes", "*" if default else "", why_not or "",
            ])
    return table


def print_table(ruleset: str | None = None) -> None:
    header = ["ruleset", "benchmark", "metric", "target", "runs", "aggregation", "eval (epochs)",
              "ref. min", "runnable", "default"]
    body = rows(ruleset)
    table = [header] + [row[:-1] for row in body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    reasons = [(row[0], row[1], row[-1]) for row in body if row[-1]]
    if reasons:
        print("\nnot runnable:")
        for ruleset_name, bench, why in reasons:
            print(f"  {ruleset_name} {bench}: {why}")
