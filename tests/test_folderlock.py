"""One results folder, one writer at a time: a second invocation exits 2 naming the first;
a stale lock (dead process, or another host silent for minutes) is taken over and its
``.partial`` run redone."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from helpers import ROOT
from mlperf_train.folderlock import LOCK_NAME, FolderBusy, FolderLock


def test_a_second_holder_is_refused_with_the_first_named(tmp_path):
    with FolderLock(tmp_path) as first:
        assert first.taken_over is None
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        code = ("import sys; from mlperf_train.folderlock import FolderLock, FolderBusy\n"
                "try:\n    FolderLock(sys.argv[1]).acquire()\nexcept FolderBusy as e:\n    print(e); sys.exit(2)")
        other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
        assert other.returncode == 2
        assert f"in use by process {os.getpid()} on host {socket.gethostname()}" in other.stdout
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_heartbeat_refreshes_the_lock(tmp_path):
    with FolderLock(tmp_path, refresh_seconds=0.05):
        first = json.loads((tmp_path / LOCK_NAME).read_text())["refreshed"]
        time.sleep(0.3)
        assert json.loads((tmp_path / LOCK_NAME).read_text())["refreshed"] > first


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout),
                                                  "refreshed": time.time(), "command": "mlperf-train run ncf"}))
    with FolderLock(tmp_path) as lock:
        assert f"process {int(dead.stdout)} on host" in lock.taken_over


@pytest.mark.parametrize("age, busy", [(10.0, True), (600.0, False)])
def test_a_lock_of_another_host_is_stale_once_it_stops_being_refreshed(tmp_path, age, busy):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "node7", "pid": 4242, "refreshed": time.time() - age,
                                                  "command": "mlperf-train run resnet"}))
    if busy:
        with pytest.raises(FolderBusy, match="in use by process 4242 on host node7"):
            FolderLock(tmp_path).acquire()
    else:
        with FolderLock(tmp_path) as lock:
            assert "node7" in lock.taken_over


def test_two_invocations_at_once_never_mix_or_lose_runs(tmp_path):
    """Two `mlperf-train run` on one folder, started together: one writes the runs, the
    other exits 2 at once with one line naming the writer (or, if the first was done before
    the second reached the folder, finds every run finished)."""
    env = {**os.environ, "MLPERF_TRAIN_DROP_CACHES": "0", "OMP_NUM_THREADS": "1",
           "MLPERF_TRAIN_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "mlperf_train", "run", "ncf", "--hparams", "hparams/ncf/tiny.yaml",
               "--runs", "2", "--seed", "1", "--output", str(tmp_path / "logs"), "--system", "s"]
    # generate the data first, so that both invocations race for the folder, not the cache
    subprocess.run([*command[:-4], "--output", str(tmp_path / "warm"), "--system", "s", "--runs", "1"],
                   cwd=ROOT, env=env, capture_output=True, timeout=300, check=True)
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    codes = sorted(code for _, _, code in results)
    assert codes in ([0, 2], [0, 0]), results
    if codes == [0, 2]:
        refused = next(err for _, err, code in results if code == 2)
        assert len(refused.strip().splitlines()) == 1 and "in use by process" in refused
        assert "Traceback" not in refused
    else:  # serialised: the later one only skipped finished runs
        assert any(out.count("already finished") == 2 for out, _, _ in results), results
    folder = tmp_path / "logs" / "s" / "ncf"
    assert sorted(p.name for p in folder.iterdir()) == ["result_0.txt", "result_1.txt"]
    for path in folder.iterdir():
        assert path.read_text().count('"key": "run_start"') == 1
