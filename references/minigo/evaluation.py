"""The quality of a model (spec section 5) and the GNU Go extra.

- 0.6.0: win rate against the target model (games alternate colours; argmax, no noise,
  random symmetries on every network call so that the games differ).
- 0.5.0: professional-move prediction: for each position of the pro game records that has
  a next move, in each of 2 rounds, a fresh search from that position, argmax visits;
  correct when it equals the recorded move.
- Extra of every evaluation: the win rate against GNU Go at a fixed level, each game
  scored by GNU Go's own ``final_score`` (Chinese rules, dead stones removed: the network
  may play on after GNU Go passes, and its dead stones in GNU Go's territory must not
  count for it, as a bare Tromp-Taylor count of the final board would); GNU Go's
  resignation is a win.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from references.minigo import go, mcts
from references.minigo.gtp import GnuGo
from references.minigo.play import PlayParams, _pick, _reroot


def pro_move_hits(games: Sequence[Sequence[int]], indices: Sequence[tuple[int, int]], evaluate,
                  params: PlayParams, rounds: int, rng: np.random.Generator) -> int:
    """Correct predictions over ``rounds`` rounds of the positions ``indices`` ((game, move
    number) pairs: the position before that move)."""
    positions = [go.from_moves(games[g][:k]) for g, k in indices]
    answers = [games[g][k] for g, k in indices]
    hits = 0
    for _ in range(rounds):
        roots = [mcts.Node(p) for p in positions]
        mcts.search(roots, [params.readouts] * len(roots), evaluate, params.search, [False] * len(roots), rng)
        hits += sum(_pick(root, False, 1.0, rng)[0] == answer for root, answer in zip(roots, answers))
    return hits


def prediction_positions(games: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Every (game, move number) whose position has a recorded next move."""
    return [(g, k) for g, moves in enumerate(games) for k in range(len(moves))]


def gnugo_wins(game_ids: Sequence[int], evaluate, params: PlayParams, level: int, seed: int,
               rng: np.random.Generator) -> int:
    """Wins of the network against GNU Go in games ``game_ids`` (the network is Black in
    even-numbered games). All games run at once, one GNU Go process each, so that the
    network's searches share their calls; every process ends before this returns."""
    engines = []
    try:
        for g in game_ids:
            engines.append(GnuGo(level, seed * 1000 + g))
        colors = [go.BLACK if g % 2 == 0 else go.WHITE for g in game_ids]
        positions = [go.Position(max_moves=params.max_moves) for _ in game_ids]
        roots = [mcts.Node(p) for p in positions]
        winner = [0] * len(game_ids)
        live = set(range(len(game_ids)))
        while live:
            # GNU Go moves wherever it is to play
            for i in sorted(live):
                if positions[i].to_play != colors[i]:
                    move = engines[i].genmove(positions[i].to_play)
                    if move is None:
                        winner[i] = colors[i]
                        live.discard(i)
                        continue
                    positions[i] = positions[i].play(move)
                    roots[i] = _reroot(roots[i].child(move)) if roots[i].expanded else mcts.Node(positions[i])
            for i in list(live):
                if positions[i].is_game_over():
                    winner[i] = _gnugo_winner(engines[i])
                    live.discard(i)
            ours = sorted(live)
            if not ours:
                break
            mcts.search([roots[i] for i in ours], [params.readouts] * len(ours), evaluate, params.search,
                        [False] * len(ours), rng)
            for i in ours:
                move, _ = _pick(roots[i], False, 1.0, rng)
                engines[i].play(colors[i], move)
                positions[i] = positions[i].play(move)
                roots[i] = _reroot(roots[i].child(move))
                if positions[i].is_game_over():
                    winner[i] = _gnugo_winner(engines[i])
                    live.discard(i)
        return sum(w == c for w, c in zip(winner, colors))
    finally:
        for engine in engines:
            engine.close()


def _gnugo_winner(engine: GnuGo) -> int:
    """+1 or -1 from GNU Go's ``final_score`` reply (``B+3.5``, ``W+0.5``)."""
    return go.BLACK if engine.final_score().upper().startswith("B") else go.WHITE
