"""Batched beam search with a length penalty, in the manner of the MLPerf Transformer
reference (spec transformer.md §2, "Eval decode").

Per step, each of the ``beam_size`` alive sequences is extended by every token; the
``2 * beam_size`` best extensions are split into those that end with EOS (candidates for
the finished set, scored by log-probability / length penalty) and the others (the new
alive set, kept by raw log-probability). The search stops at ``max_decode_length`` or when
the best alive sequence, even at the largest length penalty, cannot beat the worst
finished one. A batch entry with no finished sequence returns its best alive one.

The model is reached only through ``step_fn(last_ids, step, cache) -> log_probs`` on
flattened ``[batch * beam]`` rows; ``cache`` is a dict of tensors whose first dimension is
``batch * beam`` and that the search reorders as beams are chosen.
"""
from __future__ import annotations

from typing import Callable

import torch

# A large finite number, as in the reference: -INF * 0 stays 0 where -inf would give NaN.
INF = 1.0e7


def length_penalty(length: int | torch.Tensor, alpha: float):
    """((5 + length) / 6) ** alpha (Wu et al. 2016), used by both translation references."""
    return ((5.0 + length) / 6.0) ** alpha


def _gather_beams(tensor: torch.Tensor, beam_indices: torch.Tensor) -> torch.Tensor:
    """tensor [B, K, ...], beam_indices [B, N] -> [B, N, ...]."""
    index = beam_indices.view(*beam_indices.shape, *([1] * (tensor.dim() - 2))).expand(
        *beam_indices.shape, *tensor.shape[2:])
    return torch.gather(tensor, 1, index)


def beam_search(step_fn: Callable, cache: dict, batch_size: int, beam_size: int, max_decode_length: int,
                alpha: float, eos_id: int, start_id: int = 0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (best sequences [B, T] without the start id, their scores [B]).

    ``cache`` tensors must already be laid out as ``[batch * beam, ...]`` (row b*K + k is
    beam k of batch entry b)."""
    B, K = batch_size, beam_size
    alive_seq = torch.full((B, K, 1), start_id, dtype=torch.long, device=device)
    alive_log_probs = torch.zeros(B, K, device=device)
    alive_log_probs[:, 1:] = -INF  # all beams start identical: only the first one counts
    finished_seq = torch.zeros_like(alive_seq)
    finished_scores = torch.full((B, K), -INF, device=device)
    finished_flags = torch.zeros(B, K, dtype=torch.bool, device=device)
    batch_offsets = (torch.arange(B, device=device) * K)[:, None]
    max_penalty = length_penalty(float(max_decode_length), alpha)

    for step in range(max_decode_length):
        log_probs = step_fn(alive_seq[:, :, -1].reshape(B * K), step, cache)
        vocab_size = log_probs.shape[-1]
        log_probs = log_probs.view(B, K, vocab_size) + alive_log_probs[:, :, None]
        topk_log_probs, topk_flat = log_probs.view(B, K * vocab_size).topk(2 * K, dim=1)
        topk_beams, topk_ids = topk_flat // vocab_size, topk_flat % vocab_size
        topk_seq = torch.cat([_gather_beams(alive_seq, topk_beams), topk_ids[:, :, None]], dim=2)
        ends = topk_ids == eos_id

        # New alive set: the best K extensions that did not end.
        alive_scores, keep = (topk_log_probs - ends.float() * INF).topk(K, dim=1)
        alive_seq = _gather_beams(topk_seq, keep)
        alive_log_probs = alive_scores
        rows = (batch_offsets + torch.gather(topk_beams, 1, keep)).view(-1)
        for name, value in cache.items():
            cache[name] = value.index_select(0, rows)

        # New finished set: the best K among the old finished and the extensions that ended.
        new_scores = topk_log_probs / length_penalty(float(step + 1), alpha) - (~ends).float() * INF
        finished_seq = torch.cat([finished_seq, torch.zeros_like(finished_seq[:, :, :1])], dim=2)
        pool_seq = torch.cat([finished_seq, topk_seq], dim=1)
        pool_scores = torch.cat([finished_scores, new_scores], dim=1)
        pool_flags = torch.cat([finished_flags, ends], dim=1)
        finished_scores, pick = pool_scores.topk(K, dim=1)
        finished_seq = _gather_beams(pool_seq, pick)
        finished_flags = torch.gather(pool_flags, 1, pick)

        # Stop when no alive sequence can still beat the worst finished one.
        best_alive = alive_log_probs[:, 0] / max_penalty
        lowest_finished = (finished_scores * finished_flags.float()).min(dim=1).values
        lowest_finished = lowest_finished - (~finished_flags.any(dim=1)).float() * INF
        if bool((lowest_finished > best_alive).all()):
            break

    use_finished = finished_flags.any(dim=1)
    seq = torch.where(use_finished[:, None], finished_seq[:, 0], alive_seq[:, 0])
    scores = torch.where(use_finished, finished_scores[:, 0], alive_log_probs[:, 0])
    return seq[:, 1:], scores
