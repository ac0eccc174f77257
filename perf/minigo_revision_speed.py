"""Self-play speed of this tree's MiniGo rules and search against an earlier revision's,
side by side in one process, and whether the two play the same games.

    PYTHONPATH=. /work/bin/heavy python perf/minigo_revision_speed.py --against 9e0587c \
        [--checkpoint DATA/artifacts/bootstrap.pt] [--games 16] [--readouts 64] [--pairs 5]

The revision's ``references/minigo`` is read with ``git show`` into a temporary package
(``rev_minigo``, its imports pointed at itself), so both versions run in this process on
the same network weights (``--checkpoint``, a MiniGo model file such as the small preset's
bootstrap, whose games end by passing as a run's do; else a freshly initialised network of
the small preset's size, whose games run to the move cap): each pair plays the same
self-play games (same seed) once with each version, the order alternating from pair to pair. It prints each side's seconds, the
median of the per-pair ratios (this tree / the revision; below 1: faster), and whether every
game's moves, result and training examples are identical, which is what a speed-up that
keeps the small preset's calibrated runs valid must show.
"""
import argparse
import hashlib
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from minigo_selfplay_speed import KWARGS as SMALL   # the small preset's network (perf/ is on sys.path)

MODULES = ("go", "features", "mcts", "model", "play")


def load_revision(revision: str, folder: Path) -> dict:
    """The revision's modules, imported as the package ``rev_minigo`` from ``folder``."""
    package = folder / "rev_minigo"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in MODULES:
        text = subprocess.run(["git", "show", f"{revision}:references/minigo/{name}.py"], check=True,
                              capture_output=True, text=True).stdout
        (package / f"{name}.py").write_text(text.replace("references.minigo", "rev_minigo"))
    sys.path.insert(0, str(folder))
    return {name: importlib.import_module(f"rev_minigo.{name}") for name in MODULES}


def current() -> dict:
    return {name: importlib.import_module(f"references.minigo.{name}") for name in MODULES}


def play_once(mods: dict, kwargs: dict, state: dict, games: int, readouts: int, seed: int) -> tuple[float, str, int]:
    """(seconds, digest of the games, moves) of ``games`` self-play games at once."""
    model = mods["model"].DualNet(**kwargs)
    model.load_state_dict(state)
    rng = np.random.default_rng(seed)
    evaluate = mods["play"].make_evaluator(model, rng)
    params = mods["play"].PlayParams(readouts=readouts, search=mods["mcts"].SearchParams(
        c_puct_base=19652.0, value_init_penalty=0.2))
    start = time.perf_counter()
    records = mods["play"].play_games(games, evaluate, evaluate, params, rng, selfplay=True)
    seconds = time.perf_counter() - start
    digest = hashlib.sha256()
    for r in records:
        digest.update(repr((r.moves, r.result, r.resigned)).encode())
        digest.update(np.stack(r.planes).tobytes() + np.stack(r.pis).tobytes())
    return seconds, digest.hexdigest(), sum(len(r.moves) for r in records)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", required=True, help="the git revision to compare with")
    parser.add_argument("--checkpoint", type=Path, help="a MiniGo model file (default: a fresh network)")
    parser.add_argument("--games", type=int, default=16)
    parser.add_argument("--readouts", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        sides = {"this tree": current(), args.against: load_revision(args.against, Path(folder))}
        if args.checkpoint:
            from references.minigo import artifacts
            model, _ = artifacts.load_model(args.checkpoint)
            kwargs = artifacts.model_kwargs_of(model)
        else:
            torch.manual_seed(0)
            kwargs = SMALL
            model = sides["this tree"]["model"].DualNet(**kwargs)
        state = model.state_dict()
        ratios, same = [], True
        for pair in range(args.pairs):
            order = list(sides) if pair % 2 == 0 else list(sides)[::-1]
            results = {name: play_once(sides[name], kwargs, state, args.games, args.readouts, seed=pair) for name in order}
            (ours, digest, moves), (theirs, their_digest, _) = results["this tree"], results[args.against]
            same &= digest == their_digest
            ratios.append(ours / theirs)
            print(f"pair {pair}: {moves} moves; this tree {ours:.1f} s, {args.against} {theirs:.1f} s, "
                  f"ratio {ours / theirs:.3f}, same games: {digest == their_digest}", flush=True)
    print(f"this tree / {args.against}, seconds: median {statistics.median(ratios):.3f} over {len(ratios)} pairs "
          f"({', '.join(f'{r:.3f}' for r in ratios)}); every game identical: {same}")


if __name__ == "__main__":
    main()
