"""9x9 Go rules (spec section 1): komi 7.5, area scoring from Black's view, no suicide,
simple ko, a move cap, and the game ends on two passes.

Points are flat indices ``row * N + col`` (row 0 is the top, as in SGF); ``PASS = N * N``
is the pass move (82 moves in all, the policy's layout). Boards are Python lists of
``BLACK`` (1), ``WHITE`` (-1) and ``EMPTY`` (0): in pure Python, list indexing is several
times faster than numpy element access, and a 9x9 board is copied in well under a
microsecond. Positions are immutable: ``play`` returns a new one, so search trees can share them.
"""
from __future__ import annotations

from typing import Sequence

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


class IllegalMove(ValueError):
    """A move the rules forbid: an occupied point, suicide, a ko retake, or play after the end."""


def group_and_liberties(board: Sequence[int], point: int) -> tuple[list[int], set[int]]:
    """The chain of stones containing ``point`` and its liberties (flood fill)."""
    color = board[point]
    stones, liberties, frontier, seen = [point], set(), [point], {point}
    while frontier:
        p = frontier.pop()
        for q in NEIGHBORS[p]:
            v = board[q]
            if v == EMPTY:
                liberties.add(q)
            elif v == color and q not in seen:
                seen.add(q)
                stones.append(q)
                frontier.append(q)
    return stones, liberties


class Position:
    """A game state: board, side to move, ko point, move count, consecutive passes and the
    last ``HISTORY`` boards (newest first, for the input planes)."""

    __slots__ = ("board", "to_play", "ko", "num_moves", "passes", "history", "max_moves", "_legal")

    def __init__(self, board=None, to_play: int = BLACK, ko: int | None = None, num_moves: int = 0,
                 passes: int = 0, history: tuple = (), max_moves: int = MAX_MOVES_R06):
        self.board = list(board) if board is not None else [EMPTY] * NUM_POINTS
        self.to_play, self.ko, self.num_moves, self.passes = to_play, ko, num_moves, passes
        self.history = history or (tuple(self.board),)
        self.max_moves = max_moves
        self._legal = None

    def is_game_over(self) -> bool:
        """Two consecutive passes, or the move cap."""
        return self.passes >= 2 or self.num_moves >= self.max_moves

    def legal_mask(self) -> list[bool]:
        """Legality of each of the 82 moves for the side to move (pass is always legal
        until the game is over). Cached: positions never change."""
        if self._legal is not None:
            return self._legal
        board, me = self.board, self.to_play
        if self.is_game_over():
            self._legal = [False] * NUM_MOVES
            return self._legal
        libs: dict[int, int] = {}   # liberty count per stone, filled one chain at a time
        legal = [False] * NUM_MOVES
        legal[PASS] = True
        for p in range(NUM_POINTS):
            if board[p] != EMPTY or p == self.ko:
                continue
            ok = False
            for q in NEIGHBORS[p]:
                if board[q] == EMPTY:
                    ok = True
                    break
            if not ok:  # no empty neighbour: legal iff it connects to a chain with a spare liberty or captures
                for q in NEIGHBORS[p]:
                    n = libs.get(q)
                    if n is None:
                        stones, liberties = group_and_liberties(board, q)
                        n = len(liberties)
                        for s in stones:
                            libs[s] = n
                    if (n > 1) if board[q] == me else (n == 1):
                        ok = True
                        break
            legal[p] = ok
        self._legal = legal
        return legal

    def play(self, move: int) -> "Position":
        """The position after ``move`` by the side to move. Raises :class:`IllegalMove`."""
        if self.is_game_over():
            raise IllegalMove("the game is over")
        me = self.to_play
        if move == PASS:
            return Position(self.board, -me, None, self.num_moves + 1, self.passes + 1,
                            (tuple(self.board),) + self.history[:HISTORY - 1], self.max_moves)
        if not 0 <= move < NUM_POINTS or self.board[move] != EMPTY:
            raise IllegalMove(f"point {move} is occupied or off the board")
        if move == self.ko:
            raise IllegalMove(f"point {move} retakes a ko")
        board = self.board[:]
        board[move] = me
        captured: list[int] = []
        for q in NEIGHBORS[move]:
            if board[q] == -me:
                stones, liberties = group_and_liberties(board, q)
                if not liberties:
                    for s in stones:
                        board[s] = EMPTY
                    captured += stones
        stones, liberties = group_and_liberties(board, move)
        if not liberties:
            raise IllegalMove(f"point {move} is suicide")
        # Simple ko: a single stone that captured a single stone and now has one liberty
        # (the captured point) may not be retaken at once.
        ko = captured[0] if len(captured) == 1 and len(stones) == 1 and len(liberties) == 1 else None
        return Position(board, -me, ko, self.num_moves + 1, 0,
                        (tuple(board),) + self.history[:HISTORY - 1], self.max_moves)

    def area_score(self, komi: float = KOMI) -> float:
        """Tromp-Taylor area score from Black's view: stones plus empty regions that reach
        only one colour, minus komi. Positive: Black wins."""
        board = self.board
        score = sum(board)
        seen = [False] * NUM_POINTS
        for p in range(NUM_POINTS):
            if board[p] != EMPTY or seen[p]:
                continue
            region, frontier, borders = 0, [p], set()
            seen[p] = True
            while frontier:
                x = frontier.pop()
                region += 1
                for q in NEIGHBORS[x]:
                    v = board[q]
                    if v == EMPTY:
                        if not seen[q]:
                            seen[q] = True
                            frontier.append(q)
                    else:
                        borders.add(v)
            if len(borders) == 1:
                score += region * borders.pop()
        return score - komi

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
