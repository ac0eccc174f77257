"""Sanity check of the evaluation code apart from the RL: the small preset's network,
trained supervised on GNU Go games, predicts held-out GNU Go moves far above chance
through the same search and argmax the 0.5.0 pro-move evaluation uses.

The 40 GNU Go 3.8 self-play games in tests/data/minigo_gnugo were made once by
``artifacts.make_gnugo_games`` (level 1, seed 7); GNU Go is not needed to run this test.
"""
from pathlib import Path

import pytest

import numpy as np
import torch

from references.minigo import artifacts, evaluation, mcts, play, sgf, train
from references.minigo.model import DualNet

GAMES = sorted((Path(__file__).parent / "data" / "minigo_gnugo").glob("*.sgf"))


@pytest.mark.slow
def test_supervised_net_predicts_held_out_gnu_go_moves_well_above_chance():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # a tiny net: more threads only contend on a busy machine
    try:
        _check_prediction()
    finally:
        torch.set_num_threads(threads)


def _check_prediction():
    games = [sgf.read_game(path) for path in GAMES]
    assert len(games) == 40
    train_games, held_out = games[:34], games[34:]
    torch.manual_seed(0)
    model = DualNet(16, 3, 32)
    artifacts.supervised(model, train.games_to_chunk(train_games), steps=1500, batch=32, lr=0.05,
                         value_weight=0.25, seed=0)
    rng = np.random.default_rng(0)
    params = play.PlayParams(readouts=8, search=mcts.SearchParams(c_puct_base=19652.0, value_init_penalty=0.2))
    positions = evaluation.prediction_positions(held_out)
    hits = evaluation.pro_move_hits(held_out, positions, play.make_evaluator(model, rng), params, 1, rng)
    accuracy = hits / len(positions)
    print(f"held-out GNU Go move prediction: {accuracy:.3f} over {len(positions)} positions")
    # a uniform legal move is right about 2 % of the time on 9x9
    assert accuracy > 0.10, accuracy
