"""Self-play in worker processes: each worker plays its share of a generation's games with
its own copy of the network and returns the golden-chunk arrays. The pool starts in
``init`` (untimed) and ends in ``close`` on every exit path.
"""
from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
import torch

from references.minigo import play, train
from references.minigo.model import DualNet


def play_share(model_kwargs: dict, state_dict: dict, params: play.PlayParams, num_games: int, seed: int,
               parallel_games: int) -> tuple[dict, dict]:
    """Play ``num_games`` self-play games, ``parallel_games`` at a time. Returns (chunk
    arrays, counts: games, moves, resigned, black_wins)."""
    torch.set_num_threads(1)
    model = DualNet(**model_kwargs)
    model.load_state_dict(state_dict)
    rng = np.random.default_rng(seed)
    evaluate = play.make_evaluator(model, rng)
    records = []
    for start in range(0, num_games, parallel_games):
        records += play.play_games(min(parallel_games, num_games - start), evaluate, evaluate, params, rng,
                                   selfplay=True)
    counts = {"games": len(records), "moves": sum(len(r.moves) for r in records),
              "resigned": sum(r.resigned for r in records), "black_wins": sum(r.result > 0 for r in records)}
    return train.records_to_chunk(records), counts


class SelfPlayPool:
    """``workers`` processes (0: play in this process)."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 0 else None

    def play(self, model_kwargs: dict, state_dict: dict, params: play.PlayParams, num_games: int, seed: int,
             parallel_games: int) -> tuple[dict, dict]:
        if self._pool is None:
            return play_share(model_kwargs, state_dict, params, num_games, seed, parallel_games)
        shares = [num_games // self.workers + (i < num_games % self.workers) for i in range(self.workers)]
        jobs = [(model_kwargs, state_dict, params, n, seed * 1009 + i, parallel_games)
                for i, n in enumerate(shares) if n]
        results = self._pool.starmap(play_share, jobs)
        counts: dict[str, Any] = {key: sum(r[1][key] for r in results) for key in results[0][1]}
        return train.concat_chunks([r[0] for r in results]), counts

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
