"""How strong the small preset's target model is for a given ``target_steps``: the bootstrap
against the bootstrap trained N more steps on the target's GNU Go games, for several N.

    python perf/minigo_target_steps.py ARTIFACTS --steps 50,100,120,200 [--games 200] [--seed 0]

ARTIFACTS: the ``artifacts/`` folder ``generate_small`` made (the harness caches it under
``$MLPERF_TRAIN_CACHE/data/minigo-*``): its ``bootstrap.pt`` and ``gnugo/target_*.sgf``.
The targets are trained by ``artifacts.supervised`` with ``generate_small``'s own batch,
rate and seed, so N here is the ``target_steps`` setting that reproduces that model; each
is written to ``--out`` for ``perf/minigo_strength.py``. Matches are the evaluation's:
32 readouts, argmax, alternating colours, random symmetries (issue 16: the bootstrap must
win at most 30 % against the target, over at least 100 games). One thread; prints one line
per N with the 95 % interval.
"""
import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from references.minigo import artifacts, mcts, play, sgf, train
from references.minigo.benchmark import MinigoSettings

DATA_SEED = 0   # mlperf_train.datacache: generate_small runs with this seed; the target uses seed + 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--steps", default="50,100,120,200")
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--readouts", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="the matches' symmetry seed")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    torch.set_num_threads(1)
    defaults = MinigoSettings()
    bootstrap, _ = artifacts.load_model(args.artifacts / artifacts.BOOTSTRAP)
    games = [sgf.read_game(path) for path in sorted((args.artifacts / artifacts.GNUGO_DIR).glob("target_*.sgf"))]
    chunk = train.games_to_chunk(games, defaults.max_moves)
    print(f"{len(games)} GNU Go games, {len(chunk['z'])} positions")
    params = play.PlayParams(readouts=args.readouts, search=mcts.SearchParams(
        c_puct_base=defaults.c_puct_base, value_init_penalty=defaults.value_init_penalty))
    for steps in (int(n) for n in args.steps.split(",")):
        target, _ = artifacts.load_model(args.artifacts / artifacts.BOOTSTRAP)
        artifacts.supervised(target, chunk, steps, artifacts.SUPERVISED_BATCH, artifacts.SUPERVISED_LR,
                             defaults.value_weight, DATA_SEED + 1)
        artifacts.save_model(args.out / f"target_{steps}.pt", target, artifacts.model_kwargs_of(target), steps)
        rng = np.random.default_rng(args.seed)
        start = time.perf_counter()
        wins, records = play.match(args.games, play.make_evaluator(bootstrap, rng), play.make_evaluator(target, rng),
                                   params, rng)
        rate = wins / args.games
        print(f"target_steps {steps}: bootstrap wins {wins}/{args.games} = {rate:.3f} "
              f"(95% +-{1.96 * math.sqrt(rate * (1 - rate) / args.games):.3f}); median moves "
              f"{int(np.median([len(r.moves) for r in records]))}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
