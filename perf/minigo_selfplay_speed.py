"""Self-play throughput of the small preset's network and search: games/s, moves/s and
readouts/s with 1 and with 2 worker processes, and where one process's time goes (cProfile).

    python perf/minigo_selfplay_speed.py [--games 32] [--readouts 32] [--pairs 3] [--profile]

Each pair times one process and then 2 workers (the order alternates from pair to pair, so
that drift in the machine's load falls on both sides); the scaling figure is the median of
the per-pair ratios of readouts/s (games differ between the sides: workers draw their own
seeds). Timings depend on the machine's load: say so when quoting them.
"""
import argparse
import cProfile
import pstats
import statistics
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
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    state = DualNet(**KWARGS).state_dict()
    pools = {0: selfplay.SelfPlayPool(0), 2: selfplay.SelfPlayPool(2)}
    ratios = []
    try:
        pools[2].play(KWARGS, state, params(2), 2, 1, 1)     # warm the workers (imports) before timing
        for pair in range(args.pairs):
            rates = {}
            for workers in ((0, 2) if pair % 2 == 0 else (2, 0)):
                start = time.perf_counter()
                _, counts = pools[workers].play(KWARGS, state, params(args.readouts), args.games, pair, args.games)
                seconds = time.perf_counter() - start
                rates[workers] = counts["moves"] * args.readouts / seconds
                label = "1 process (in-process)" if workers == 0 else f"{workers} worker processes"
                print(f"pair {pair} {label}: {counts['games']} games, {counts['moves']} moves in {seconds:.1f} s: "
                      f"{counts['games'] / seconds:.2f} games/s, {counts['moves'] / seconds:.1f} moves/s, "
                      f"{rates[workers]:.0f} readouts/s", flush=True)
            ratios.append(rates[2] / rates[0])
    finally:
        for pool in pools.values():
            pool.close()
    print(f"2 workers / 1 process, readouts/s: median {statistics.median(ratios):.2f} "
          f"over {len(ratios)} pairs ({', '.join(f'{r:.2f}' for r in ratios)})")
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
