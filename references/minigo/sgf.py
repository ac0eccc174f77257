"""Game records as SGF (FF[4], SZ[9], KM[7.5], RU[Chinese]) through ``sgfmill``.

SGF rows count from the top (``aa`` is the top-left point), as our point indices do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sgfmill import sgf

from references.minigo import go


def write_game(path: Path, moves: Sequence[int], result: int | None = None, black: str = "", white: str = "") -> None:
    game = sgf.Sgf_game(size=go.N)
    root = game.get_root()
    root.set("KM", go.KOMI)
    root.set("RU", "Chinese")
    if black:
        root.set("PB", black)
    if white:
        root.set("PW", white)
    if result is not None:
        root.set("RE", "B+" if result > 0 else "W+")
    color = "b"
    for move in moves:
        node = game.extend_main_sequence()
        # sgfmill's (row, col) counts rows from the bottom
        node.set_move(color, None if move == go.PASS else (go.N - 1 - move // go.N, move % go.N))
        color = "w" if color == "b" else "b"
    Path(path).write_bytes(game.serialise())


def read_game(path: Path) -> list[int]:
    """The main line's moves (points, ``go.PASS`` for passes). Raises ValueError naming the
    file for a board that is not 9x9 or a record that is not a plain move list."""
    game = sgf.Sgf_game.from_bytes(Path(path).read_bytes())
    if game.get_size() != go.N:
        raise ValueError(f"{path}: board size {game.get_size()}, not {go.N}")
    moves = []
    for node in game.get_main_sequence()[1:]:
        color, where = node.get_move()
        if color is None:
            continue
        moves.append(go.PASS if where is None else (go.N - 1 - where[0]) * go.N + where[1])
    return moves
