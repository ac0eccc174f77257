"""MiniGo's Go rules (references/minigo/go.py) on hand-made positions and real games,
against sgfmill's board (a second implementation) and GNU Go's own scoring over GTP."""
import os

import numpy as np
import pytest
from sgfmill import boards

from references.minigo import go, gtp, sgf
from references.minigo.go import BLACK, PASS, WHITE, IllegalMove, from_moves, from_stones, point

PRO_GAMES = sorted((go.__file__.rsplit("/", 1)[0] + "/benchmark_sgf/" + name)
                   for name in ("9x9_pro_YKSH.sgf", "9x9_pro_IYMD.sgf", "9x9_pro_YSIY.sgf", "9x9_pro_IYHN.sgf"))


def need_gnugo():
    """GNU Go or a reason: tests that need it fail under CI, skip elsewhere."""
    if gtp.find_gnugo() is None:
        if os.environ.get("CI") == "true":
            pytest.fail(gtp.INSTALL_HINT)
        pytest.skip(gtp.INSTALL_HINT)


def test_a_stone_and_a_chain_are_captured():
    corner = from_stones(black=[point(0, 1)], white=[point(0, 0)])
    assert corner.play(point(1, 0)).board[point(0, 0)] == go.EMPTY
    chain = from_stones(black=[point(0, 2), point(1, 1)], white=[point(0, 0), point(0, 1)])
    assert chain.play(point(8, 8)).board[point(0, 0)] == WHITE     # a move elsewhere captures nothing
    done = chain.play(point(1, 0))
    assert done.board[point(0, 0)] == done.board[point(0, 1)] == go.EMPTY
    assert done.board[point(1, 0)] == BLACK


def test_suicide_is_illegal_but_a_capturing_fill_is_not():
    eye = from_stones(black=[point(0, 1), point(1, 0)], white=[], to_play=WHITE)
    assert not eye.legal_mask()[point(0, 0)]
    with pytest.raises(IllegalMove):
        eye.play(point(0, 0))
    # the same point is legal when it captures: White's fill takes Black's last liberty
    capture = from_stones(black=[point(0, 1)], white=[point(0, 2), point(1, 1), point(1, 0)], to_play=WHITE)
    assert capture.legal_mask()[point(0, 0)]
    assert capture.play(point(0, 0)).board[point(0, 1)] == go.EMPTY


def test_ko_cannot_be_retaken_at_once():
    # White's (2, 1) sits in Black's mouth; Black takes it at (2, 2), a single stone with the
    # captured point as its only liberty: White may not retake there at once
    position = from_stones(black=[point(1, 1), point(2, 0), point(3, 1)],
                           white=[point(2, 1), point(1, 2), point(3, 2), point(2, 3)], to_play=BLACK)
    taken = position.play(point(2, 2))
    assert taken.board[point(2, 1)] == go.EMPTY and taken.ko == point(2, 1)
    assert not taken.legal_mask()[point(2, 1)]
    with pytest.raises(IllegalMove):
        taken.play(point(2, 1))
    later = taken.play(point(8, 8)).play(point(0, 8))          # a ko threat and an answer
    assert later.legal_mask()[point(2, 1)]
    retaken = later.play(point(2, 1))
    assert retaken.board[point(2, 2)] == go.EMPTY


def test_two_passes_and_the_move_cap_end_the_game():
    position = go.Position().play(PASS)
    assert not position.is_game_over()
    assert position.play(PASS).is_game_over()
    capped = go.Position(max_moves=3).play(point(0, 0)).play(point(8, 8)).play(point(4, 4))
    assert capped.is_game_over() and not any(capped.legal_mask())


def test_area_score_agrees_with_sgfmill_on_hand_made_positions():
    cases = [
        ([point(r, 4) for r in range(9)], [point(r, 5) for r in range(9)]),      # split board
        ([point(r, 3) for r in range(9)], [point(r, 6) for r in range(9)]),      # a neutral middle
        ([point(0, 0), point(4, 4)], [point(8, 8)]),
    ]
    for black, white in cases:
        position = from_stones(black, white)
        board = boards.Board(9)
        for p in black:
            board.play(8 - p // 9, p % 9, "b")
        for p in white:
            board.play(8 - p // 9, p % 9, "w")
        assert position.area_score(0.0) == board.area_score()
        assert position.area_score() == board.area_score() - go.KOMI


def _sgfmill_board(moves):
    board, color = boards.Board(9), "b"
    for move in moves:
        if move != PASS:
            board.play(8 - move // 9, move % 9, color)
        color = "w" if color == "b" else "b"
    return board


def test_random_games_and_pro_games_agree_with_sgfmill_move_by_move():
    rng = np.random.default_rng(0)
    games = [sgf.read_game(path) for path in PRO_GAMES]
    for _ in range(6):
        position, moves = go.Position(), []
        while not position.is_game_over():
            legal = np.flatnonzero(position.legal_mask()[:81])
            move = int(rng.choice(legal)) if len(legal) and rng.random() > 0.02 else PASS
            moves.append(move)
            position = position.play(move)
        games.append(moves)
    for moves in games:
        position = go.Position()
        for k, move in enumerate(moves):
            # every move the mask calls legal plays; every other point raises
            mask = position.legal_mask()
            for candidate in rng.choice(81, 12, replace=False):
                if mask[candidate]:
                    position.play(int(candidate))
                else:
                    with pytest.raises(IllegalMove):
                        position.play(int(candidate))
            position = position.play(move)
            reference = _sgfmill_board(moves[:k + 1])
            ours = [[position.board[(8 - row) * 9 + col] for col in range(9)] for row in range(9)]
            theirs = [[{None: 0, "b": 1, "w": -1}[reference.get(row, col)] for col in range(9)] for row in range(9)]
            assert ours == theirs, f"boards differ after move {k + 1}"
            if k % 5 == 0:  # area scores of unfinished boards too: open regions, dame, lone stones
                assert position.area_score(0.0) == reference.area_score(), f"scores differ after move {k + 1}"
        assert position.area_score(0.0) == reference.area_score()


HAND_MADE = [
    ([point(r, 4) for r in range(9)], [point(r, 5) for r in range(9)]),                      # B+1.5
    ([point(r, 3) for r in range(9)], [point(r, 4) for r in range(9)]),                      # W+16.5
    ([point(r, 4) for r in range(9)] + [point(2, 1)], [point(r, 5) for r in range(9)] + [point(6, 7)]),
]


@pytest.mark.parametrize("black, white", HAND_MADE)
def test_area_score_agrees_with_gnu_go_on_hand_made_positions(black, white):
    """Positions without dead stones or neutral points (GNU Go would count those as filled
    by alternate play), where area scoring has one answer; GNU Go scores
    them with ``final_score`` under Chinese rules."""
    need_gnugo()
    position = from_stones(black, white)
    with gtp.GnuGo(level=1, seed=0) as engine:
        for p in black:
            engine.play(BLACK, p)
        for p in white:
            engine.play(WHITE, p)
        reply = engine.final_score()
    expected = 0.0 if reply == "0" else float(reply[2:]) * (1 if reply[0].upper() == "B" else -1)
    assert position.area_score() == expected, reply


def test_gtp_coordinates_round_trip_and_skip_i():
    assert go.to_gtp(point(0, 0)) == "A9" and go.to_gtp(point(8, 8)) == "J1"
    assert all(go.from_gtp(go.to_gtp(p)) == p for p in range(82))
