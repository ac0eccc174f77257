"""``mlperf-train report FOLDER... [--output DIR]``: one HTML page and one JSON file.

For every folder of result files (ours or published; a folder holding benchmark folders,
such as ``logs/<system>``, stands for each of them):

- the ``score`` table (``score.judged_folder``: the same judgement and olympic mean);
- per run, quality against minutes since ``run_start`` at each evaluation, the target, and
  what the olympic mean did with the run (``score.olympic_roles``: kept, dropped fastest or
  slowest, not converged, not counted);
- per run, the training throughput of each unit where the log carries it
  (``mlperf_train_throughput``, or ``tracked_stats`` ``throughput`` of later MLPerf rounds);
- where the log carries FLOPs (``mlperf_train_flops_per_sample``, our logs): time to train,
  training FLOPs executed (FLOPs per sample x samples trained), achieved FLOPS (FLOPs executed
  / time to train), MFU against ``roofline.json`` in the folder or beside it
  (``<output>/<system>/roofline.json``; ``flops.py`` defines MFU) and HPC AI500's VFLOPS
  (``vflops.py``, exponent from ``rules/vflops.yaml``) of the run's last evaluation.

The page holds one figure per benchmark (quality against minutes, and throughput per unit
where any run has it), as PNGs embedded in the page, so it is one file to send; it reads at
1280 px. ``report.json`` holds the same numbers.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

from mlperf_train import quality, roofline, score, vflops
from mlperf_train.errors import UsageError
from mlperf_train.logread import marker_lines, parse_line
from mlperf_train.verdict import _target, logged_quality

FLOPS_KEY = "mlperf_train_flops_per_sample"
THROUGHPUT_KEYS = ("mlperf_train_throughput", "tracked_stats")
HTML_FILE, JSON_FILE = "report.html", "report.json"


def benchmark_folders(folders) -> list[Path]:
    """Each given folder that holds ``result_*.txt``; otherwise every folder below it that does
    (``score.result_folders``)."""
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise UsageError(f"{folder}: not a folder (give folders holding result_*.txt, or a folder above them)")
    found = [Path(path) for path in score.result_folders(folders)]
    for folder in found:
        if not score.result_files(folder):
            raise UsageError(f"{folder}: no result_*.txt in it or in any folder below it")
    return found


def _own_events(path: str) -> list:
    """The lines ``check`` does not keep: our FLOPs and throughput keys, ``tracked_stats``."""
    events = []
    with open(path, "rb") as handle:
        for line in marker_lines(handle):
            if b"mlperf_train_" in line or b"tracked_stats" in line:
                parsed = parse_line(line)
                if parsed:
                    events.append(parsed[2])
    return events


def _throughput(events) -> list[dict]:
    points = []
    for event in events:
        if event.key == THROUGHPUT_KEYS[0] and isinstance(event.value, (int, float)):
            points.append({"epoch": event.metadata.get("epoch_num"), "samples_per_second": float(event.value),
                           "samples": event.metadata.get("samples")})
        elif event.key == THROUGHPUT_KEYS[1] and isinstance(event.value, dict) and "throughput" in event.value:
            step = event.metadata.get("epoch_num", event.metadata.get("step"))
            points.append({"epoch": step, "samples_per_second": float(event.value["throughput"]), "samples": None})
    return points


def find_roofline(folder: Path) -> tuple[dict | None, str | None]:
    """``roofline.json`` in the benchmark folder or its system folder."""
    for candidate in (folder / roofline.ROOFLINE_FILE, folder.parent / roofline.ROOFLINE_FILE):
        data = roofline.load(candidate)
        if data:
            return data, str(candidate)
    return None, None


def _work(events, throughput, seconds, last_quality, target, rules, benchmark, machine) -> dict | None:
    """The FLOPs block of one run (None when the log carries no FLOPs)."""
    flops_event = next((e for e in events if e.key == FLOPS_KEY), None)
    if flops_event is None or not isinstance(flops_event.value, (int, float)):
        return None
    meta = flops_event.metadata
    samples = sum(p["samples"] or 0 for p in throughput)
    executed = float(flops_event.value) * samples
    achieved = executed / seconds if seconds else None
    world_size = int(meta.get("world_size") or 1)
    peak = roofline.peak(machine, meta.get("op_class"), meta.get("precision"), world_size)
    n = vflops.exponent(benchmark)
    ratio = vflops.quality_ratio(last_quality, target, rules.direction) if last_quality and target else None
    return {
        "train_flops_per_sample": float(flops_event.value), "eval_flops_per_sample": meta.get("eval_flops_per_sample"),
        "op_class": meta.get("op_class"), "precision": meta.get("precision"), "world_size": world_size,
        "samples_trained": samples, "time_to_train_seconds": seconds, "train_flops": executed,
        "achieved_flops": achieved, "peak_flops": peak,
        "mfu": achieved / peak if achieved is not None and peak else None,
        "quality_ratio": ratio, "vflops_exponent": n,
        "vflops": vflops.valid_flops(achieved, ratio, n) if None not in (achieved, ratio, n) else None,
    }


def _run_entry(folder: Path, verdict, role: str, machine: dict | None) -> dict:
    record, rules = verdict.record, verdict.rules
    entry = {"folder": str(folder), "file": os.path.basename(verdict.path), "converged": verdict.converged,
             "reason": verdict.reason, "minutes": verdict.minutes if verdict.converged else record.minutes,
             "olympic": role, "curve": [], "target": None, "throughput": [], "flops": None}
    if rules is None or record.start_ms is None:
        return entry
    target, _ = _target(record, rules)
    entry["target"] = target
    last = None
    for point in record.evals:
        value = logged_quality(point.value, target) if target else None
        if value is None:
            continue
        last = value
        entry["curve"].append({"minutes": (point.time_ms - record.start_ms) / 60000.0, "epoch": point.epoch,
                               "quality": value})
    events = _own_events(verdict.path)
    entry["throughput"] = _throughput(events)
    seconds = verdict.minutes * 60.0 if verdict.minutes is not None else None
    entry["flops"] = _work(events, entry["throughput"], seconds, last, target, rules, record.benchmark, machine)
    return entry


def build(folders, ruleset: str | None = None) -> dict:
    """The report's data (what ``report.json`` holds)."""
    scores, runs, rooflines = [], [], {}
    for folder in benchmark_folders(folders):
        folder_score, verdicts = score.judged_folder(folder, ruleset)
        scores.append(folder_score)
        rules = next((v.rules for v in verdicts if v.rules is not None), None)
        roles = score.olympic_roles(verdicts, rules) if rules is not None and folder_score.usable else \
            ["not counted"] * len(verdicts)
        machine, where = find_roofline(folder)
        if where:
            rooflines[str(folder)] = where
        runs += [{"benchmark": folder_score.benchmark, **_run_entry(folder, v, role, machine)}
                 for v, role in zip(verdicts, roles)]
    benchmarks = {}
    for folder_score in scores:
        name = folder_score.benchmark
        info = benchmarks.setdefault(name, {"folders": [], "vflops_exponent": vflops.exponent(name),
                                            "vflops_source": (vflops.exponents().get(name) or {}).get("source")})
        info["folders"].append(folder_score.folder)
    return {"score": [s.as_dict() for s in scores], "benchmarks": benchmarks, "runs": runs,
            "rooflines": rooflines}


# --- the page -------------------------------------------------------------------------------
def _curve_value(point_quality: dict, target: dict) -> float:
    """One number per evaluation: the value for one target, the smallest ratio for several."""
    if len(target) == 1:
        return next(iter(point_quality.values()))
    return quality.ratio(point_quality, target)


def figure(benchmark: str, runs: list[dict]) -> str:
    """Base64 PNG: quality against minutes (one line per run, the target, olympic marks) and,
    where any run has it, throughput per unit."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    with_throughput = any(r["throughput"] for r in runs)
    fig, axes = plt.subplots(1, 2 if with_throughput else 1, figsize=(12, 4.2), dpi=100, squeeze=False)
    ax = axes[0][0]
    folders = list(dict.fromkeys(r["folder"] for r in runs))
    palette = plt.get_cmap("tab10")

    def colours(index_of_run: int, run: dict):   # one folder: a colour per run; several: per folder
        return palette((index_of_run if len(folders) == 1 else folders.index(run["folder"])) % 10)

    targets = set()
    for number, run in enumerate(runs):
        if not run["curve"] or not run["target"]:
            continue
        target = run["target"]
        targets.add(1.0 if len(target) > 1 else next(iter(target.values())))
        xs = [p["minutes"] for p in run["curve"]]
        ys = [_curve_value(p["quality"], target) for p in run["curve"]]
        dropped = run["olympic"].startswith("dropped")
        style = ":" if not run["converged"] else ("--" if dropped else "-")
        label = f"{Path(run['folder']).name}/{run['file']}" + (f" ({run['olympic']})" if run["olympic"] != "kept" else "")
        ax.plot(xs, ys, style, marker="x" if dropped else "o", markersize=4, linewidth=1.2,
                color=colours(number, run), label=label)
    for value in targets:
        ax.axhline(value, color="red", linewidth=1.0, label=f"target {value:g}")
    multi = any(r["target"] and len(r["target"]) > 1 for r in runs)
    ax.set_xlabel("minutes since run_start")
    ax.set_ylabel("min(value / target) over " + ", ".join(next(r["target"] for r in runs if r["target"]))
                  if multi else "quality")
    ax.set_title(f"{benchmark}: quality at each evaluation (dashed, x: dropped by the olympic mean; dotted: not converged)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    if len(runs) <= 12:
        ax.legend(fontsize=7)
    if with_throughput:
        ax2 = axes[0][1]
        for number, run in enumerate(runs):
            points = [p for p in run["throughput"] if p["epoch"] is not None]
            if points:
                ax2.plot([p["epoch"] for p in points], [p["samples_per_second"] for p in points], marker=".",
                         color=colours(number, run), linewidth=1.0)
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True))   # units are whole epochs / generations
        ax2.set_xlabel("unit (epoch_num)")
        ax2.set_ylabel("training samples / s")
        ax2.set_title(f"{benchmark}: training throughput per unit", fontsize=9)
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(data: dict) -> str:
    """The self-contained page."""
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>mlperf-train report</title><style>",
             "body{font-family:sans-serif;max-width:1240px;margin:auto;padding:0 12px;font-size:14px}",
             "table{border-collapse:collapse;margin:8px 0;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;"
             "text-align:left;vertical-align:top}img{max-width:100%}code{font-size:12px}",
             "</style></head><body><h1>mlperf-train report</h1><h2>Score</h2>"]
    columns = ["folder", "benchmark", "round", "runs", "converged", "minutes", "valid", "normalized", "preset", "reason"]
    def cell(row, column):
        if column == "preset" and row["preset"] not in (None, "reference"):
            return _fmt(f"{row['preset']} (not a result)")
        return _fmt(row[column])
    parts.append(_table(columns, [[cell(s, c) for c in columns] for s in data["score"]]))
    not_counted = [f"{html.escape(os.path.join(s['folder'], line))}" for s in data["score"] for line in s["not_counted"]]
    if not_counted:
        parts.append("<p>Runs that do not count:</p><ul>" + "".join(f"<li>{line}</li>" for line in not_counted) + "</ul>")
    for name, info in data["benchmarks"].items():
        runs = [r for r in data["runs"] if r["benchmark"] == name]
        parts.append(f"<h2>{html.escape(str(name))}</h2>")
        parts.append(f"<img data-benchmark='{html.escape(str(name))}' alt='{html.escape(str(name))}: quality "
                     f"against minutes' src='data:image/png;base64,{figure(name, runs)}'>")
        worked = [r for r in runs if r["flops"]]
        if worked:
            header = ["run", "time to train (s)", "olympic", "train FLOPs/sample", "eval FLOPs/sample", "FLOPs trained",
                      "achieved FLOPS", "op class", "precision", "peak FLOPS", "MFU", "quality ratio",
                      f"VFLOPS (n = {info['vflops_exponent']})"]
            rows = [[html.escape(f"{Path(r['folder']).name}/{r['file']}"), _fmt(w["time_to_train_seconds"], ".1f"),
                     r["olympic"],
                     _fmt(w["train_flops_per_sample"]), _fmt(w["eval_flops_per_sample"]), _fmt(w["train_flops"]),
                     _fmt(w["achieved_flops"]), _fmt(w["op_class"]), _fmt(w["precision"]), _fmt(w["peak_flops"]),
                     _fmt(w["mfu"]), _fmt(w["quality_ratio"], ".4f"), _fmt(w["vflops"])]
                    for r in worked for w in [r["flops"]]]
            parts.append(_table(header, rows))
            parts.append(f"<p>VFLOPS = achieved FLOPS x (quality / target)<sup>n</sup>; n: "
                         f"{html.escape(str(info['vflops_source']))}. MFU = achieved FLOPS / the roofline's peak of "
                         f"the op class and precision (x ranks on CUDA), from "
                         f"{html.escape(', '.join(sorted(set(data['rooflines'].get(f, '-') for f in info['folders']))))}"
                         f".</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def main(args) -> int:
    data = build(args.folders)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / JSON_FILE).write_text(json.dumps(data, indent=1, default=str) + "\n")
    (output / HTML_FILE).write_text(render(data), encoding="utf-8")
    print(f"wrote {output / HTML_FILE} and {output / JSON_FILE} ({len(data['score'])} folder(s), "
          f"{len(data['runs'])} run(s))")
    return 0
