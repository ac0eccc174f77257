"""GNU Go over GTP (spec section 9): Debian's ``gnugo`` 3.8, binary ``/usr/games/gnugo``
(not on ``PATH``). Used for the small preset's game records, the strength extra of every
evaluation, and rules tests against a second implementation.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from mlperf_train.errors import UsageError
from references.minigo import go

INSTALL_HINT = "GNU Go is missing: install it with `apt-get install -y gnugo` (Debian/Ubuntu; binary /usr/games/gnugo)"


def find_gnugo() -> str | None:
    """The GNU Go binary: ``$GNUGO`` when set (and then only it), else ``gnugo`` on PATH or
    Debian's /usr/games/gnugo."""
    chosen = os.environ.get("GNUGO")
    for candidate in (chosen,) if chosen else (shutil.which("gnugo"), "/usr/games/gnugo"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_gnugo() -> str:
    """The binary, or a one-line ``UsageError`` (exit 2) saying how to install it."""
    path = find_gnugo()
    if path is None:
        raise UsageError(INSTALL_HINT)
    return path


class GnuGo:
    """One GNU Go process speaking GTP on a 9x9 board with komi 7.5 and Chinese (area)
    rules. Use as a context manager, or call ``close``: the process never outlives it."""

    def __init__(self, level: int = 1, seed: int = 0):
        binary = require_gnugo()
        self.process = subprocess.Popen(
            [binary, "--mode", "gtp", "--chinese-rules", "--level", str(level), "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.command("boardsize 9")
        self.command(f"komi {go.KOMI}")
        self.command("clear_board")

    def command(self, line: str) -> str:
        """Send one GTP command; returns the reply's text. Raises RuntimeError on '?'."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        lines = []
        while True:
            out = self.process.stdout.readline()
            if out == "":
                raise RuntimeError(f"gnugo ended during {line!r}")
            if out.strip() == "" and lines:
                break
            if out.strip():
                lines.append(out.strip())
        reply = " ".join(lines)
        if reply.startswith("?"):
            raise RuntimeError(f"gnugo refused {line!r}: {reply}")
        return reply.lstrip("=").strip()

    def clear(self) -> None:
        self.command("clear_board")

    def play(self, color: int, move: int) -> None:
        self.command(f"play {'black' if color == go.BLACK else 'white'} {go.to_gtp(move)}")

    def genmove(self, color: int) -> int | None:
        """GNU Go's move for ``color``; None when it resigns."""
        reply = self.command(f"genmove {'black' if color == go.BLACK else 'white'}")
        if reply.lower() == "resign":
            return None
        return go.from_gtp(reply)

    def final_score(self) -> str:
        return self.command("final_score")

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def gnugo_game(level: int, seed: int, max_moves: int = go.MAX_MOVES_R06) -> list[int]:
    """One GNU Go self-play game (``genmove`` for both sides until two passes or the move
    cap; a resignation ends it too). Returns the moves."""
    moves: list[int] = []
    position = go.Position(max_moves=max_moves)
    with GnuGo(level, seed) as engine:
        while not position.is_game_over():
            move = engine.genmove(position.to_play)
            if move is None:
                break
            moves.append(move)
            position = position.play(move)
    return moves
