"""One writer per results folder: a lock file naming the host and process that writes it.

``<folder>/.mlperf-train.lock`` holds ``{"host", "pid", "started", "refreshed", "command"}``
and an exclusive ``flock`` while a series writes the folder. A heartbeat thread rewrites
``refreshed`` every :data:`REFRESH_SECONDS`. A second invocation on the same folder gets
:class:`FolderBusy` (one line naming the holder; the CLI exits 2), so two invocations never
mix, overwrite or lose each other's runs.

A lock is stale, and is taken over, when its process is gone (same host: the kernel
dropped the ``flock`` with the process) or, for a holder on another host sharing the
filesystem (where ``flock`` may not reach), when it has not been refreshed for
:data:`STALE_SECONDS`. The series then redoes the ``.partial`` run the holder left.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from mlperf_train.errors import UsageError

LOCK_NAME = ".mlperf-train.lock"
REFRESH_SECONDS = 30.0
STALE_SECONDS = 5 * 60.0


class FolderBusy(UsageError):
    """Another live invocation writes this folder."""


def _describe(holder: dict, now: float) -> str:
    age = now - float(holder.get("refreshed", now))
    return (f"process {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"(refreshed {age:.0f} s ago: {holder.get('command', '?')})")


class FolderLock:
    """``with FolderLock(folder) as lock:`` holds the folder for this process; ``lock.taken_over``
    describes a stale holder it replaced, or is None."""

    def __init__(self, folder: Path, refresh_seconds: float = REFRESH_SECONDS,
                 stale_seconds: float = STALE_SECONDS):
        self.path = Path(folder) / LOCK_NAME
        self.refresh_seconds = refresh_seconds
        self.stale_seconds = stale_seconds
        self.taken_over: str | None = None
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._info: dict = {}

    # --- acquire -------------------------------------------------------------------------
    def acquire(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = self._read(fd)
                os.close(fd)
                raise FolderBusy(f"{self.path.parent}: in use by {_describe(holder, time.time())}; "
                                 f"wait for it to finish or give another --output") from None
            # A holder that released and unlinked between our open and flock leaves us an
            # orphaned inode: start again on the file the path names now.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        holder = self._read(fd)
        now = time.time()
        if holder and holder.get("host") != socket.gethostname() and \
                now - float(holder.get("refreshed", 0)) < self.stale_seconds:
            os.close(fd)  # a live holder on another host, where flock may not reach
            raise FolderBusy(f"{self.path.parent}: in use by {_describe(holder, now)}; "
                             f"wait for it to finish or give another --output")
        if holder:
            self.taken_over = _describe(holder, now)
        self._fd = fd
        self._info = {"host": socket.gethostname(), "pid": os.getpid(), "started": now,
                      "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]}
        self._write()
        self._thread = threading.Thread(target=self._heartbeat, name="folder-lock", daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _read(fd: int) -> dict:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, 1 << 16).decode("utf-8", "replace")
            holder = json.loads(text) if text.strip() else {}
            return holder if isinstance(holder, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write(self) -> None:
        blob = json.dumps({**self._info, "refreshed": time.time()}).encode()
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, blob)
        os.fsync(self._fd)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self._write()
            except OSError:  # a full disk must not kill the run; the lock just ages
                pass

    # --- release -------------------------------------------------------------------------
    def release(self) -> None:
        if self._fd is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            os.unlink(self.path)  # while still holding the flock: see acquire's inode check
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
