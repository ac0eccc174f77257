"""Games: self-play that writes training examples, and matches between two networks
(gating, and the 0.6.0 evaluation against the target model). Many games run at once so
that one network call evaluates the leaves of every tree (the reference's C++ self-play
plays 2048 games in parallel for the same reason).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from references.minigo import features, mcts
from references.minigo.go import BLACK, PASS, Position


def make_evaluator(model: torch.nn.Module, rng: np.random.Generator, symmetries: bool = True):
    """An ``mcts.Evaluator`` on ``model`` (CPU, no gradients), with a random one of the 8
    symmetries per position, inverted on the policy (spec section 3, network eval)."""
    model.eval()

    def evaluate(positions):
        sym = rng.integers(0, features.NUM_SYMMETRIES, len(positions)) if symmetries else \
            np.zeros(len(positions), dtype=np.int64)
        x = np.stack([features.planes(p, s) for p, s in zip(positions, sym.tolist())])
        with torch.inference_mode():
            logits, values = model(torch.from_numpy(x))
            probs = torch.softmax(logits, dim=1).numpy()
        out = probs.copy()
        out[:, :81] = np.take_along_axis(probs[:, :81], features.INVERSE[sym], axis=1)
        return out, values.numpy()
    return evaluate


@dataclasses.dataclass(frozen=True)
class PlayParams:
    """How moves are chosen (spec section 3)."""

    readouts: int
    search: mcts.SearchParams
    softpick_moves: int = 6           # soft-pick (sample by visits) during the first moves
    softpick_power: float = 0.98      # counts ** power for the pick and for pi ([R06])
    resign_threshold: float = -0.99   # resign when the root's Q for the mover is below
    resign_disabled_fraction: float = 0.1
    max_moves: int = 162


@dataclasses.dataclass
class GameRecord:
    moves: list
    result: int                 # +1 Black won, -1 White won
    resigned: bool
    planes: list = dataclasses.field(default_factory=list)    # (17, 9, 9) uint8 per move
    pis: list = dataclasses.field(default_factory=list)       # (82,) float32 per move


def _reroot(node: mcts.Node) -> mcts.Node:
    """Make ``node`` a root, dropping the rest of the old tree (memory)."""
    holder = mcts._Root()
    holder.child_N[0], holder.child_W[0] = node.N, node.W
    node.parent, node.move = holder, 0
    return node


def _pick(root: mcts.Node, soft: bool, power: float, rng: np.random.Generator) -> tuple[int, np.ndarray]:
    """The move and the training target pi (over all 82 moves, pass included). Soft-pick
    samples among the 81 points only, as both references do ([R05] ``cdf /= cdf[-2]``,
    [R06] ``PickMove``): a pass is never drawn at random early in the game, only played
    when it has all the visits."""
    counts = root.child_N.astype(np.float64)
    if soft:
        weights = counts ** power
        pi = weights / weights.sum()
        points = weights[:PASS]
        if points.sum() <= 0:
            return PASS, pi.astype(np.float32)
        return int(rng.choice(PASS, p=points / points.sum())), pi.astype(np.float32)
    pi = counts / counts.sum()
    best = np.flatnonzero(counts == counts.max())
    return int(rng.choice(best)), pi.astype(np.float32)


def play_games(num_games: int, black_eval, white_eval, params: PlayParams, rng: np.random.Generator,
               selfplay: bool) -> list[GameRecord]:
    """Play ``num_games`` games at once. Self-play (``selfplay``): one network for both
    sides with root noise, soft-pick, resignation (disabled in a fraction of games) and
    the training examples recorded. A match: argmax, no noise, no resignation, no examples;
    ``black_eval`` plays Black in every game (callers alternate colours)."""
    positions = [Position(max_moves=params.max_moves) for _ in range(num_games)]
    trees = [[mcts.Node(p), mcts.Node(p)] for p in positions]  # one tree per colour (matches)
    records = [GameRecord([], 0, False) for _ in range(num_games)]
    may_resign = [selfplay and rng.random() >= params.resign_disabled_fraction for _ in range(num_games)]
    live = list(range(num_games))
    while live:
        for side, evaluate in ((BLACK, black_eval), (-BLACK, white_eval)):
            if not selfplay and evaluate is None:
                continue
            movers = [g for g in live if (selfplay or positions[g].to_play == side)
                      and not positions[g].is_game_over() and not records[g].resigned]
            if not movers:
                continue
            roots = [trees[g][0 if selfplay or side == BLACK else 1] for g in movers]
            mcts.search(roots, [params.readouts] * len(roots), evaluate, params.search,
                        [selfplay] * len(roots), rng)
            for g, root in zip(movers, roots):
                position, record = positions[g], records[g]
                if may_resign[g] and root.Q * position.to_play < params.resign_threshold:
                    record.result, record.resigned = -position.to_play, True
                    continue
                soft = selfplay and position.num_moves < params.softpick_moves
                move, pi = _pick(root, soft, params.softpick_power, rng)
                if selfplay:
                    record.planes.append(features.planes(position).astype(np.uint8))
                    record.pis.append(pi)
                record.moves.append(move)
                positions[g] = position.play(move)
                if selfplay:
                    trees[g][0] = _reroot(root.child(move))
                else:
                    trees[g] = [_reroot(t.child(move)) if t.expanded else mcts.Node(positions[g]) for t in trees[g]]
            if selfplay:
                break
        for g in list(live):
            if records[g].resigned or positions[g].is_game_over():
                if not records[g].resigned:
                    records[g].result = positions[g].result()
                live.remove(g)
    return records


def match(num_games: int, eval_a, eval_b, params: PlayParams, rng: np.random.Generator) -> tuple[int, list]:
    """Games of A against B, colours alternating by game index (A is Black in even games).
    Returns (A's wins, the records)."""
    a_black = (num_games + 1) // 2
    first = play_games(a_black, eval_a, eval_b, params, rng, selfplay=False) if a_black else []
    second = play_games(num_games - a_black, eval_b, eval_a, params, rng, selfplay=False) \
        if num_games - a_black else []
    wins = sum(r.result == BLACK for r in first) + sum(r.result != BLACK for r in second)
    return wins, first + second
