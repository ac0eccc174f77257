"""The network's input (spec section 2) and the 8 symmetries of the board.

Input: 17 planes of 9x9, float32: for the last 8 positions (newest first), the side to
move's stones then the opponent's (interleaved), and one plane that is 1 when Black is to
move. Positions before the game's start are empty boards.
"""
from __future__ import annotations

import numpy as np

from references.minigo.go import BLACK, HISTORY, N, NUM_POINTS, Position

NUM_PLANES = 2 * HISTORY + 1


def planes(position: Position, symmetry: int = 0) -> np.ndarray:
    """(17, 9, 9) float32 input planes of ``position``, transformed by ``symmetry`` (0: none;
    the same as ``apply_to_planes`` afterwards, but it permutes 8 boards of bytes instead of
    17 planes of floats)."""
    out = np.zeros((NUM_PLANES, NUM_POINTS), dtype=np.float32)
    me = position.to_play
    h = len(position.history)
    history = np.frombuffer(b"".join(position.history), dtype=np.int8).reshape(h, NUM_POINTS)  # newest first
    if symmetry:
        history = history[:, PERMUTATIONS[symmetry]]
    out[0:2 * h:2] = history == me
    out[1:2 * h:2] = history == -me
    if me == BLACK:
        out[-1] = 1.0
    return out.reshape(NUM_PLANES, N, N)


def _symmetry_permutations() -> np.ndarray:
    """(8, 81): ``perm[s]`` maps a transformed board's point to the original point, so
    that ``transformed = flat[..., perm[s]]``. 0 is the identity."""
    grid = np.arange(NUM_POINTS).reshape(N, N)
    perms = []
    for flip in (False, True):
        g = grid.T if flip else grid
        for k in range(4):
            perms.append(np.rot90(g, k).reshape(-1))
    return np.stack(perms)


PERMUTATIONS = _symmetry_permutations()
INVERSE = np.argsort(PERMUTATIONS, axis=1)
NUM_SYMMETRIES = 8


def apply_to_planes(x: np.ndarray, symmetry: int) -> np.ndarray:
    """Transform planes of shape (..., 9, 9) by ``symmetry``."""
    flat = x.reshape(*x.shape[:-2], NUM_POINTS)
    return flat[..., PERMUTATIONS[symmetry]].reshape(x.shape)


def apply_to_policy(p: np.ndarray, symmetry: int) -> np.ndarray:
    """Transform a policy over 82 moves (..., 82) like the planes (pass stays)."""
    out = p.copy()
    out[..., :NUM_POINTS] = p[..., PERMUTATIONS[symmetry]]
    return out


def invert_policy(p: np.ndarray, symmetry: int) -> np.ndarray:
    """Undo ``apply_to_policy``: a policy the net gave on transformed planes, back in the
    original coordinates."""
    out = p.copy()
    out[..., :NUM_POINTS] = p[..., INVERSE[symmetry]]
    return out
