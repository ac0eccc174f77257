"""Win rate of one MiniGo model file against another (and optionally against GNU Go),
at the evaluation's settings: games alternate colours, argmax, no noise, random symmetries.

    python perf/minigo_strength.py A.pt B.pt [--games 100] [--readouts 32] [--gnugo-games 0]

Used to calibrate the small preset: the bootstrap must win at most 30 % against the target
(issue 16), measured over at least 100 games.
"""
import argparse
import math

import numpy as np
import torch

from references.minigo import artifacts, evaluation, mcts, play


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("--readouts", type=int, default=32)
    parser.add_argument("--gnugo-games", type=int, default=0)
    parser.add_argument("--gnugo-level", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    a, _ = artifacts.load_model(args.a)
    b, _ = artifacts.load_model(args.b)
    params = play.PlayParams(readouts=args.readouts, search=mcts.SearchParams(c_puct_base=19652.0,
                                                                              value_init_penalty=0.2))
    wins, records = play.match(args.games, play.make_evaluator(a, rng), play.make_evaluator(b, rng), params, rng)
    rate = wins / args.games
    half = 1.96 * math.sqrt(rate * (1 - rate) / args.games)
    lengths = [len(r.moves) for r in records]
    print(f"{args.a} vs {args.b}: {wins}/{args.games} = {rate:.3f} (95% +-{half:.3f}); "
          f"moves per game median {int(np.median(lengths))}, distinct games {len({tuple(r.moves) for r in records})}")
    for name, model in (("a", a), ("b", b)):
        if args.gnugo_games:
            won = evaluation.gnugo_wins(list(range(args.gnugo_games)), play.make_evaluator(model, rng), params,
                                        args.gnugo_level, args.seed, rng)
            print(f"{name} vs GNU Go level {args.gnugo_level}: {won}/{args.gnugo_games}")


if __name__ == "__main__":
    main()
