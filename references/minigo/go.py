"""9x9 Go rules (spec section 1): komi 7.5, area scoring from Black's view, no suicide,
simple ko, a move cap, and the game ends on two passes.

Points are flat indices ``row * N + col`` (row 0 is the top, as in SGF); ``PASS = N * N``
is the pass move (82 moves in all, the policy's layout). Boards are Python lists of
``BLACK`` (1), ``WHITE`` (-1) and ``EMPTY`` (0): in pure Python, list indexing is several
times faster than numpy element access, and a 9x9 board is copied in well under a
microsecond. Positions are immutable: ``play`` returns a new one, so search trees can share them.
The history keeps each board as 81 signed bytes, which numpy reads without a per-point
conversion when it builds the input planes. The empty points are also kept as an 81-bit
integer (bit p = point p), so that the legality mask finds the points with an empty
neighbour in a few integer operations instead of a Python loop over the board.
"""
from __future__ import annotations

from array import array
from typing import Sequence

import numpy as np

N = 9
NUM_POINTS = N * N
PASS = NUM_POINTS
NUM_MOVES = NUM_POINTS + 1
BLACK, WHITE, EMPTY = 1, -1, 0
KOMI = 7.5
MAX_MOVES_R06 = 2 * NUM_POINTS          # 162 (spec section 1, [R06])
HISTORY = 8                              # positions kept for the 17 input planes (spec section 2)

NEIGHBORS: tuple[tuple[int, ...], ...] = tuple(
    tuple(r * N + c for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
          if 0 <= r < N and 0 <= c < N)
    for row in range(N) for col in range(N))

_ALL = (1 << NUM_POINTS) - 1
_NOT_FIRST_COLUMN = sum(1 << p for p in range(NUM_POINTS) if p % N)
_NOT_LAST_COLUMN = sum(1 << p for p in range(NUM_POINTS) if p % N != N - 1)


def _next_to(bits: int) -> int:
    """The points (81-bit set) with a neighbour in ``bits``."""
    return (((bits >> 1) & _NOT_LAST_COLUMN) | ((bits << 1) & _NOT_FIRST_COLUMN)
            | (bits >> N) | ((bits << N) & _ALL))


def _empty_bits(board: Sequence[int]) -> int:
    return sum(1 << p for p, v in enumerate(board) if v == EMPTY)


class IllegalMove(ValueError):
    """A move the rules forbid: an occupied point, suicide, a ko retake, or play after the end."""


def board_bytes(board: Sequence[int]) -> bytes:
    """The board as 81 signed bytes (``numpy.frombuffer(..., numpy.int8)`` reads it back)."""
    return array("b", board).tobytes()


def _is_captured(board: Sequence[int], point: int, filled: int = -1) -> list[int] | None:
    """The chain containing ``point`` if it has no liberty (``filled``, an empty point about
    to be played, counts as none), else None. Stops at the first liberty found: a capture
    test needs no more than that."""
    color = board[point]
    stones, frontier, seen = [point], [point], {point}
    while frontier:
        for q in NEIGHBORS[frontier.pop()]:
            v = board[q]
            if v == EMPTY:
                if q != filled:
                    return None
            if v == color and q not in seen:
                seen.add(q)
                stones.append(q)
                frontier.append(q)
    return stones


def _liberties_up_to_2(board: Sequence[int], point: int) -> int:
    """The number of liberties of the chain containing ``point``, counted up to 2 (the
    legality test asks only whether a friendly chain keeps a spare one)."""
    color = board[point]
    first, frontier, seen = -1, [point], {point}
    while frontier:
        for q in NEIGHBORS[frontier.pop()]:
            v = board[q]
            if v == EMPTY:
                if first < 0:
                    first = q
                elif q != first:
                    return 2
            elif v == color and q not in seen:
                seen.add(q)
                frontier.append(q)
    return 1 if first >= 0 else 0


class Position:
    """A game state: board, side to move, ko point, move count, consecutive passes and the
    last ``HISTORY`` boards (newest first, for the input planes)."""

    __slots__ = ("board", "to_play", "ko", "num_moves", "passes", "history", "max_moves", "empty", "_legal",
                 "_area")

    def __init__(self, board=None, to_play: int = BLACK, ko: int | None = None, num_moves: int = 0,
                 passes: int = 0, history: tuple = (), max_moves: int = MAX_MOVES_R06, empty: int | None = None):
        self.board = list(board) if board is not None else [EMPTY] * NUM_POINTS
        self.to_play, self.ko, self.num_moves, self.passes = to_play, ko, num_moves, passes
        self.history = history or (board_bytes(self.board),)
        self.max_moves = max_moves
        self.empty = _empty_bits(self.board) if empty is None else empty    # bit p set: point p is empty
        self._legal = None
        self._area = None     # area score before komi, cached: terminal leaves are scored many times

    def is_game_over(self) -> bool:
        """Two consecutive passes, or the move cap."""
        return self.passes >= 2 or self.num_moves >= self.max_moves

    def legal_mask(self) -> np.ndarray:
        """Legality of each of the 82 moves for the side to move: a read-only (82,) bool
        array (pass is always legal until the game is over). Cached: positions never change."""
        if self._legal is not None:
            return self._legal
        legal = 0
        if not self.is_game_over():
            empty = self.empty
            free = empty & _next_to(empty)      # an empty neighbour: legal (but for ko)
            legal = free | (1 << PASS)
            crowded = empty & ~free
            board, me = self.board, self.to_play
            while crowded:
                # no empty neighbour: legal iff it joins a chain with a spare liberty or captures
                low = crowded & -crowded
                crowded ^= low
                p = low.bit_length() - 1
                for q in NEIGHBORS[p]:
                    if _liberties_up_to_2(board, q) > 1 if board[q] == me else _is_captured(board, q, p) is not None:
                        legal |= low
                        break
            if self.ko is not None:
                legal &= ~(1 << self.ko)
        mask = np.unpackbits(np.frombuffer(legal.to_bytes(11, "little"), dtype=np.uint8), count=NUM_MOVES,
                             bitorder="little").view(bool)
        mask.flags.writeable = False
        self._legal = mask
        return mask

    def play(self, move: int) -> "Position":
        """The position after ``move`` by the side to move. Raises :class:`IllegalMove`."""
        if self.is_game_over():
            raise IllegalMove("the game is over")
        me = self.to_play
        if move == PASS:
            return Position(self.board, -me, None, self.num_moves + 1, self.passes + 1,
                            self.history[:1] + self.history[:HISTORY - 1], self.max_moves, self.empty)
        if not 0 <= move < NUM_POINTS or self.board[move] != EMPTY:
            raise IllegalMove(f"point {move} is occupied or off the board")
        if move == self.ko:
            raise IllegalMove(f"point {move} retakes a ko")
        board = self.board[:]
        board[move] = me
        captured: list[int] = []
        empty_bits = self.empty ^ (1 << move)
        for q in NEIGHBORS[move]:
            if board[q] == -me:
                stones = _is_captured(board, q)
                if stones:
                    for s in stones:
                        board[s] = EMPTY
                        empty_bits |= 1 << s
                    captured += stones
        empty = friends = 0
        for q in NEIGHBORS[move]:
            v = board[q]
            if v == EMPTY:
                empty += 1
            elif v == me:
                friends += 1
        if not empty and _is_captured(board, move):
            raise IllegalMove(f"point {move} is suicide")
        # Simple ko: a single stone that captured a single stone and now has one liberty
        # (the captured point) may not be retaken at once.
        ko = captured[0] if len(captured) == 1 and not friends and empty == 1 else None
        return Position(board, -me, ko, self.num_moves + 1, 0,
                        (board_bytes(board),) + self.history[:HISTORY - 1], self.max_moves, empty_bits)

    def area_score(self, komi: float = KOMI) -> float:
        """Tromp-Taylor area score from Black's view: stones plus empty regions that reach
        only one colour, minus komi. Positive: Black wins."""
        if self._area is None:
            self._area = self._area_before_komi()
        return self._area - komi

    def _area_before_komi(self) -> int:
        # An empty region counts for a colour when it touches that colour only, that is:
        # when its points are reached from that colour's stones through empty points, and
        # not from the other's. Both reaches grow by one step per pass until they stop.
        empty = self.empty
        black = sum(1 << p for p, v in enumerate(self.board) if v == BLACK)
        white = _ALL & ~empty & ~black
        reach = []
        for stones in (black, white):
            grown = stones
            while True:
                more = grown | (_next_to(grown) & empty)
                if more == grown:
                    break
                grown = more
            reach.append(grown & empty)
        black_area = black.bit_count() + (reach[0] & ~reach[1]).bit_count()
        white_area = white.bit_count() + (reach[1] & ~reach[0]).bit_count()
        return black_area - white_area

    def result(self, komi: float = KOMI) -> int:
        """+1 if Black wins, -1 if White wins (komi 7.5 leaves no draws)."""
        return 1 if self.area_score(komi) > 0 else -1


def from_moves(moves: Sequence[int], max_moves: int = MAX_MOVES_R06) -> Position:
    position = Position(max_moves=max_moves)
    for move in moves:
        position = position.play(move)
    return position


def from_stones(black: Sequence[int], white: Sequence[int], to_play: int = BLACK) -> Position:
    """A set-up position (for tests and puzzles): stones placed, no history, no ko."""
    board = [EMPTY] * NUM_POINTS
    for p in black:
        board[p] = BLACK
    for p in white:
        board[p] = WHITE
    return Position(board, to_play)


def point(row: int, col: int) -> int:
    return row * N + col


def to_gtp(move: int) -> str:
    """GTP vertex: columns A-J skipping I, rows counted from the bottom (spec section 9)."""
    if move == PASS:
        return "pass"
    row, col = divmod(move, N)
    return "ABCDEFGHJ"[col] + str(N - row)


def from_gtp(vertex: str) -> int:
    vertex = vertex.strip().upper()
    if vertex == "PASS":
        return PASS
    col = "ABCDEFGHJ".index(vertex[0])
    return point(N - int(vertex[1:]), col)
