"""What several test files need: the repository root, a log's events, and the CLI run as a
user runs it (a subprocess, optionally under torchrun)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_events(path) -> list[dict]:
    """The ``:::MLLOG`` events of a result file, in order."""
    return [json.loads(line.split(":::MLLOG ", 1)[1]) for line in Path(path).read_text().splitlines()
            if ":::MLLOG " in line]


def run_one_block_log(bench, preset, folder, data_root, seed: int):
    """One run of ``preset`` through the engine in this process, its log closed as ``run``
    closes it; returns ``(outcome, path of result_0.txt)``."""
    from mlperf_train import engine
    from mlperf_train.distributed import RunEnv
    from mlperf_train.mllog import ResultLog
    from mlperf_train.rules import benchmark_rules

    log = ResultLog(Path(folder) / "result_0.txt")
    outcome = engine.run_once(bench, preset, benchmark_rules(bench.name), RunEnv(), log, seed=seed,
                              data_root=data_root, submission=engine.Submission("test", "1xcpu", "closed"),
                              cache_cleared=False)
    return outcome, log.close(finished=outcome.ended_by_rules)


def run_cli(*args, nproc: int = 1, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``mlperf-train ARGS`` in a fresh process (``torchrun --nproc_per_node=N -m mlperf_train``
    when ``nproc`` > 1, one intra-op thread per rank: the ranks share the cores, and
    oversubscribed OpenMP threads stall each other)."""
    env = {**os.environ, "MLPERF_TRAIN_DROP_CACHES": "0", **(env or {})}
    launcher = [sys.executable]
    if nproc > 1:
        env["OMP_NUM_THREADS"] = "1"
        launcher += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--rdzv_backend=c10d",
                     "--rdzv_endpoint=localhost:0"]
    command = [*launcher, "-m", "mlperf_train", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def child_pids() -> list[int]:
    """The live child processes of this process (Linux /proc), zombies excluded."""
    pids = []
    for children in Path("/proc/self/task").glob("*/children"):
        pids += [int(p) for p in children.read_text().split()]
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive
