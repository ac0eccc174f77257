"""Self-play throughput of the small preset's network and search: games/s, moves/s and
readouts/s with 1 and with 2 worker processes, and where one process's time goes (cProfile).

    python perf/minigo_selfplay_speed.py [--games 32] [--readouts 32] [--profile]

The same games (seeded) on each side; the 2-process number divided by the 1-process one
is the scaling ratio. Timings depend on the machine's load: say so when quoting them.
"""
import argparse
import cProfile
import pstats
import time

import numpy as np
import torch

from references.minigo import mcts, play, selfplay
from references.minigo.model import DualNet

KWARGS = {"filters": 16, "blocks": 3, "value_fc": 32, "bn_decay": 0.95, "conv_bias": False}


def params(readouts):
    return play.PlayParams(readouts=readouts, search=mcts.SearchParams(c_puct_base=19652.0, value_init_penalty=0.2),
                           resign_disabled_fraction=1.0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--games", type=int, default=32)
    parser.add_argument("--readouts", type=int, default=32)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    state = DualNet(**KWARGS).state_dict()
    for workers in (0, 2):
        pool = selfplay.SelfPlayPool(workers)
        try:
            if workers:   # warm the workers (imports) before timing
                pool.play(KWARGS, state, params(2), workers, 1, 1)
            start = time.perf_counter()
            chunk, counts = pool.play(KWARGS, state, params(args.readouts), args.games, 0, args.games)
            seconds = time.perf_counter() - start
        finally:
            pool.close()
        label = "1 process (in-process)" if workers == 0 else f"{workers} worker processes"
        print(f"{label}: {counts['games']} games, {counts['moves']} moves in {seconds:.1f} s: "
              f"{counts['games'] / seconds:.2f} games/s, {counts['moves'] / seconds:.1f} moves/s, "
              f"{counts['moves'] * args.readouts / seconds:.0f} readouts/s")
    if args.profile:
        torch.set_num_threads(1)
        model = DualNet(**KWARGS)
        rng = np.random.default_rng(0)
        evaluate = play.make_evaluator(model, rng)
        profile = cProfile.Profile()
        profile.enable()
        play.play_games(8, evaluate, evaluate, params(args.readouts), rng, selfplay=True)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
