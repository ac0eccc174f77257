"""Training on the window of golden chunks (spec section 3).

A golden chunk is one generation's self-play examples in an ``.npz`` file: ``planes``
(n, 17, 9, 9) uint8, ``pi`` (n, 82) float32 (the search's visit distribution), ``z``
(n,) float32 (the game's result from Black's view, for every position of the game).
A generation trains one pass over a random ``filter_amount`` of the last ``window_size``
chunks, each example under a random one of the 8 symmetries, with SGD and momentum on the
global-step learning rate. Loss = CE(logits, pi) + c_v * MSE(value, z) + 1e-4 * sum(w^2) / 2
over the kernels.
"""
from __future__ import annotations

import bisect
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from references.minigo import features

L2_STRENGTH = 1e-4


def records_to_chunk(records) -> dict:
    """The examples of self-play game records, as a golden chunk's arrays."""
    planes, pis, zs = [], [], []
    for record in records:
        planes += record.planes
        pis += record.pis
        zs += [float(record.result)] * len(record.planes)
    if not planes:
        return {"planes": np.zeros((0, features.NUM_PLANES, 9, 9), np.uint8), "pi": np.zeros((0, 82), np.float32),
                "z": np.zeros(0, np.float32)}
    return {"planes": np.stack(planes), "pi": np.stack(pis).astype(np.float32), "z": np.asarray(zs, np.float32)}


def concat_chunks(chunks: Sequence[dict]) -> dict:
    return {key: np.concatenate([c[key] for c in chunks]) for key in ("planes", "pi", "z")}


def write_chunk(path: Path, chunk: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **chunk)


def read_chunk(path: Path) -> dict:
    """Raises ValueError naming the file when an array is missing or mis-shaped."""
    with np.load(path) as data:
        try:
            chunk = {key: data[key] for key in ("planes", "pi", "z")}
        except KeyError as error:
            raise ValueError(f"{path}: not a golden chunk (missing array {error})") from None
    n = len(chunk["z"])
    if chunk["planes"].shape != (n, features.NUM_PLANES, 9, 9) or chunk["pi"].shape != (n, 82):
        raise ValueError(f"{path}: golden chunk arrays have shapes {chunk['planes'].shape}, {chunk['pi'].shape}")
    return chunk


def learning_rate(step: int, rates: Sequence[float], boundaries: Sequence[float]) -> float:
    """Piecewise constant on the global step: rates[i] up to boundaries[i]."""
    return float(rates[bisect.bisect_right(list(boundaries), step)])


def select_examples(chunks: Sequence[dict], keep: float, rng: np.random.Generator) -> dict:
    """A random ``keep`` fraction of the window's examples, shuffled, each under a random
    symmetry (planes and pi alike)."""
    data = concat_chunks(chunks)
    n = len(data["z"])
    order = rng.permutation(n)[:max(1, int(round(n * keep)))] if n else np.zeros(0, np.int64)
    planes, pi, z = data["planes"][order], data["pi"][order], data["z"][order]
    sym = rng.integers(0, features.NUM_SYMMETRIES, len(order))
    flat = planes.reshape(len(order), features.NUM_PLANES, -1)
    perm = features.PERMUTATIONS[sym]
    planes = np.take_along_axis(flat, perm[:, None, :].repeat(features.NUM_PLANES, 1), axis=2)
    pi = pi.copy()
    pi[:, :81] = np.take_along_axis(pi[:, :81], perm, axis=1)
    return {"planes": planes.reshape(-1, features.NUM_PLANES, 9, 9), "pi": pi, "z": z}


def loss_terms(model: torch.nn.Module, core: torch.nn.Module, planes: torch.Tensor, pi: torch.Tensor,
               z: torch.Tensor, value_weight: float):
    """(total, policy CE, value MSE) on one batch; ``core`` is the unwrapped model (L2)."""
    logits, value = model(planes)
    policy = -(pi * F.log_softmax(logits, dim=1)).sum(1).mean()
    mse = F.mse_loss(value, z)
    l2 = sum((w * w).sum() for w in core.l2_parameters()) * (L2_STRENGTH / 2)
    return policy + value_weight * mse + l2, policy.detach(), mse.detach()


def train_pass(model: torch.nn.Module, core: torch.nn.Module, optimizer: torch.optim.Optimizer, examples: dict,
               global_batch: int, rates: Sequence[float], boundaries: Sequence[float], step: int,
               value_weight: float, rank: int = 0, world_size: int = 1, progress=None) -> tuple[int, float, int]:
    """One pass over ``examples`` in global batches (the last partial batch dropped, as a
    fixed-batch input pipeline would); this rank takes its slice of each. The learning rate
    follows the global ``step``. Returns (global step after, mean loss, examples trained on
    by this rank)."""
    model.train()
    n = len(examples["z"])
    loss_sum, batches, done = 0.0, 0, 0
    for start in range(0, n - global_batch + 1, global_batch):
        share = slice(start + rank * global_batch // world_size, start + (rank + 1) * global_batch // world_size)
        planes = torch.from_numpy(examples["planes"][share]).float()
        pi = torch.from_numpy(examples["pi"][share])
        z = torch.from_numpy(examples["z"][share])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, rates, boundaries)
        optimizer.zero_grad(set_to_none=True)
        loss, _, _ = loss_terms(model, core, planes, pi, z, value_weight)
        loss.backward()
        optimizer.step()
        step += 1
        batches += 1
        done += len(z)
        loss_sum += float(loss.detach())
        if progress is not None:
            progress(done, n // world_size, loss.detach())
    return step, loss_sum / max(batches, 1), done


def games_to_chunk(games: Sequence[Sequence[int]], max_moves: int = 162) -> dict:
    """Supervised examples of recorded games: pi is the recorded move (one-hot), z the
    Tromp-Taylor result of the final board."""
    from references.minigo import go
    planes, pis, zs = [], [], []
    for moves in games:
        position = go.Position(max_moves=max(max_moves, len(moves)))
        start = len(planes)
        for move in moves:
            planes.append(features.planes(position).astype(np.uint8))
            pi = np.zeros(82, np.float32)
            pi[move] = 1.0
            pis.append(pi)
            position = position.play(move)
        zs += [float(position.result())] * (len(planes) - start)
    return {"planes": np.stack(planes), "pi": np.stack(pis), "z": np.asarray(zs, np.float32)}
