"""torchrun with 2 CPU processes (gloo): equivalence with 1 process, one log, stopping together."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKERS = Path(__file__).resolve().parent / "dist_workers.py"


def torchrun(nproc: int, *args, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLPERF_TRAIN_COLLECTIVE_TIMEOUT_S": "20",
           "MLPERF_TRAIN_DROP_CACHES": "0"}
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--master_port=0" if nproc == 1 else "--rdzv_endpoint=localhost:0", "--rdzv_backend=c10d",
               "--monitor_interval=0.2", str(WORKERS), *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_ranks_with_half_batches_follow_the_one_rank_trajectory(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    for nproc, out in ((1, one), (2, two)):
        result = torchrun(nproc, "equivalence", out)
        assert result.returncode == 0, result.stderr[-2000:]
    losses_one, losses_two = json.loads(one.read_text()), json.loads(two.read_text())
    assert len(losses_one) == 12 and losses_one[-1] < losses_one[0]
    assert losses_two == pytest.approx(losses_one, rel=1e-5, abs=1e-7)


def test_two_ranks_write_one_log_and_stop_together_at_the_target(tmp_path):
    result = torchrun(2, "series", tmp_path, "success")
    assert result.returncode == 0, result.stderr[-2000:]
    files = sorted(p.name for p in (tmp_path / "sys" / "toy").iterdir())
    assert files == ["result_0.txt"]
    log = (tmp_path / "sys" / "toy" / "result_0.txt").read_text()
    assert log.count('"key": "run_stop"') == 1 and '"status": "success"' in log
    assert log.count('"key": "epoch_start"') == 3


@pytest.mark.parametrize("fault", ["sigterm-rank1", "crash-rank1", "exit-rank1"])
def test_a_fault_on_one_rank_aborts_the_run_without_hanging(tmp_path, fault):
    """SIGTERM, an exception or a sudden death on rank 1: rank 0 must log run_stop aborted
    and the launch must end well within the collective timeout, never hang."""
    started = time.monotonic()
    result = torchrun(2, "series", tmp_path, fault, timeout=90)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 60, "the other rank must not hang"
    partial = tmp_path / "sys" / "toy" / "result_0.txt.partial"
    assert not (tmp_path / "sys" / "toy" / "result_0.txt").exists()
    text = partial.read_text()
    assert '"key": "run_stop"' in text and '"status": "aborted"' in text
    # rank 0 names what happened: its own signal, or the lost peer
    assert "interrupted by SIGTERM" in text or "another rank failed or stopped answering" in text
    if fault == "crash-rank1":
        assert "rank 1: run 0 aborted: error: RuntimeError: the toy crashed" in result.stderr


def test_two_nodes_meet_at_one_rendezvous_endpoint(tmp_path):
    """The multi-node launch of the README (``--nnodes=2`` and a c10d rendezvous endpoint),
    both "nodes" on this machine: one log, written by global rank 0, stopping at the target."""
    import socket

    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLPERF_TRAIN_COLLECTIVE_TIMEOUT_S": "20",
           "MLPERF_TRAIN_DROP_CACHES": "0"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
               "--rdzv_backend=c10d", f"--rdzv_endpoint=localhost:{port}", "--rdzv_id=test-two-nodes",
               str(WORKERS), "series", str(tmp_path), "success"]
    nodes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [node.communicate(timeout=120)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert sorted(p.name for p in (tmp_path / "sys" / "toy").iterdir()) == ["result_0.txt"]
    log = (tmp_path / "sys" / "toy" / "result_0.txt").read_text()
    assert log.count('"key": "run_stop"') == 1 and '"status": "success"' in log
    assert sum("2 process(es)" in output for output in outputs) == 1  # only global rank 0 speaks
