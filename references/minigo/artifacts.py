"""The 0.6.0 protocol's artifacts, made untimed: a bootstrap checkpoint with its golden
chunk, and a target model of fixed strength (spec sections 1 and 3). Our documented formats:

- ``bootstrap.pt``, ``target.pt``: ``torch.save`` of ``{"model": {DualNet keyword
  arguments}, "state_dict": ..., "global_step": int}``. The bootstrap: with
  ``bootstrap_gnugo_games`` = 0, the reference's way (trained on self-play games of a
  random network at ``bootstrap_readouts``); else (the small preset) a weak supervised
  start on that many GNU Go games, which are then its golden chunk. The target: the
  bootstrap trained ``target_steps`` further on ``target_gnugo_games`` other GNU Go games;
- ``bootstrap_chunk.npz``: a golden chunk (``train.py``);
- ``gnugo/*.sgf``: GNU Go self-play game records (``sgf.py``), the target's training games.

A user may put their own files of the same format into the data folder's ``artifacts/``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from references.minigo import gtp, mcts, play, selfplay, sgf, train
from references.minigo.model import DualNet

BOOTSTRAP, BOOTSTRAP_CHUNK, TARGET = "bootstrap.pt", "bootstrap_chunk.npz", "target.pt"
GNUGO_DIR = "gnugo"
# supervised steps of the bootstrap and the target: SGD momentum 0.9 at this rate and batch
# (tests/test_minigo_supervised.py: 1500 such steps on 34 GNU Go games predict 13-18 % of
# held-out GNU Go moves; fewer than a few hundred barely leave chance)
SUPERVISED_LR, SUPERVISED_BATCH = 0.05, 32


def model_kwargs(settings) -> dict:
    return {"filters": settings.filters, "blocks": settings.blocks, "value_fc": settings.value_fc,
            "bn_decay": settings.bn_decay, "conv_bias": settings.conv_bias}


def save_model(path: Path, model: DualNet, kwargs: dict, global_step: int) -> None:
    torch.save({"model": kwargs, "state_dict": model.state_dict(), "global_step": global_step}, path)


def load_model(path: Path) -> tuple[DualNet, int]:
    """The model of an artifact file and its global step. Raises ValueError naming the file."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = DualNet(**saved["model"])
        model.load_state_dict(saved["state_dict"])
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        raise ValueError(f"{path}: not a MiniGo model file ({type(error).__name__}: {str(error)[:120]})") from None
    return model, int(saved.get("global_step", 0))


def supervised(model: DualNet, chunk: dict, steps: int, batch: int, lr: float, value_weight: float,
               seed: int) -> None:
    """``steps`` SGD steps (momentum 0.9) on ``chunk``, passes repeated as needed."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    done = 0
    while done < steps:
        examples = train.select_examples([chunk], 1.0, rng)
        n = min(len(examples["z"]), (steps - done) * batch)
        part = {k: v[:n] for k, v in examples.items()}
        done, _, _ = train.train_pass(model, model, optimizer, part, batch, [lr], [], done, value_weight)
        if n < batch:
            break


def make_gnugo_games(folder: Path, count: int, level: int, seed: int, prefix: str = "target") -> list[list[int]]:
    """``count`` GNU Go self-play games as SGF files (kept: a rerun reads them back)."""
    folder.mkdir(parents=True, exist_ok=True)
    games = []
    offset = 0 if prefix == "target" else 500_000   # the two sets never share a seed
    for i in range(count):
        path = folder / f"{prefix}_{i:04d}.sgf"
        if not path.exists():
            moves = gtp.gnugo_game(level, seed * 10007 + offset + i)
            sgf.write_game(path, moves, None, f"GNU Go level {level}", f"GNU Go level {level}")
        games.append(sgf.read_game(path))
    return games


def make_all(out: Path, settings, seed: int) -> dict:
    """Write the artifacts into ``out`` (cached per file). Returns facts for the README."""
    out.mkdir(parents=True, exist_ok=True)
    kwargs = model_kwargs(settings)
    facts = {}
    if not (out / BOOTSTRAP).exists():
        torch.manual_seed(seed)
        model = DualNet(**kwargs)
        if settings.bootstrap_gnugo_games:
            # a weak supervised start: a few GNU Go games, a few steps; they are its golden chunk
            games = make_gnugo_games(out / GNUGO_DIR, settings.bootstrap_gnugo_games, settings.target_gnugo_level,
                                     seed, prefix="bootstrap")
            chunk = train.games_to_chunk(games, settings.max_moves)
            facts["bootstrap_games"] = {"gnugo_games": len(games), "positions": len(chunk["z"])}
        else:
            # the reference's way: self-play of the random network at few readouts
            params = play.PlayParams(readouts=settings.bootstrap_readouts, search=mcts.SearchParams(
                c_puct=settings.c_puct, c_puct_base=settings.c_puct_base,
                value_init_penalty=settings.value_init_penalty, virtual_losses=8),
                softpick_moves=settings.softpick_moves, softpick_power=settings.softpick_power,
                resign_threshold=settings.resign_threshold, resign_disabled_fraction=1.0,
                max_moves=settings.max_moves)
            chunk, counts = selfplay.play_share(kwargs, model.state_dict(), params, settings.bootstrap_games, seed,
                                                settings.parallel_games)
            facts["bootstrap_games"] = counts
        train.write_chunk(out / BOOTSTRAP_CHUNK, chunk)
        supervised(model, chunk, settings.bootstrap_steps, SUPERVISED_BATCH, SUPERVISED_LR, settings.value_weight,
                   seed)
        save_model(out / BOOTSTRAP, model, kwargs, 0)
    if not (out / TARGET).exists():
        # the target learns from GNU Go's games; with none (a stand-in for tests, no GNU Go
        # needed), from the bootstrap's own games, longer
        if settings.target_gnugo_games:
            games = make_gnugo_games(out / GNUGO_DIR, settings.target_gnugo_games, settings.target_gnugo_level, seed)
            chunk = train.games_to_chunk(games, settings.max_moves)
        else:
            chunk = train.read_chunk(out / BOOTSTRAP_CHUNK)
        model, _ = load_model(out / BOOTSTRAP)
        supervised(model, chunk, settings.target_steps, SUPERVISED_BATCH, SUPERVISED_LR, settings.value_weight,
                   seed + 1)
        save_model(out / TARGET, model, kwargs, settings.target_steps)
    return facts


def model_kwargs_of(model: DualNet) -> dict:
    """The keyword arguments that rebuild ``model``'s architecture."""
    return {"filters": model.stem[0].out_channels, "blocks": len(model.trunk), "value_fc": model.value_fc1.out_features,
            "bn_decay": round(1.0 - model.stem[1].momentum, 6), "conv_bias": model.stem[0].bias is not None}
