"""GNMT's beam search (spec gnmt.md §2 "Beam search"), with the reference's semantics:

- every live hypothesis proposes its ``beam`` best next tokens; a sentence keeps the
  ``beam`` best of those ``beam**2`` candidates by summed log-probability (at the first
  step only beam 0 is expanded, the others being copies of it);
- a hypothesis that emitted EOS is frozen: it proposes itself (log-probability 0) once and
  nothing else, and its length stops growing;
- once all ``beam`` hypotheses of a sentence have ended, every one of them is scored once:
  divided by the length normalisation ((5 + len) / 6) ** alpha (``len`` counts BOS and
  EOS), plus ``coverage_factor`` * sum over source positions of log(min(attention sum, 1)),
  with log 0 taken as 0. A sentence still open at ``max_length`` gets neither;
- the attention sums are kept per beam *slot* and are not reordered when hypotheses move
  between slots, as in the reference's ``accu_attn_scores``;
- finished sentences leave the batch, so the model only runs on open ones.

This is not the Transformer's search (``references/seq2seq/beam_search.py``: alive and
finished sets, 2K candidates); only the length penalty formula is shared.
"""
from __future__ import annotations

from typing import Callable

import torch

from references.seq2seq.beam_search import length_penalty


def length_normalization(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    """((5 + len) / 6) ** alpha, float; ``len`` counts BOS and EOS as the reference does."""
    return length_penalty(lengths.float(), alpha)


def coverage_penalty(attention_sums: torch.Tensor, factor: float) -> torch.Tensor:
    """factor * sum_src log(min(sum_t attention, 1)), log 0 read as 0. attention_sums (n, t_src)."""
    logs = attention_sums.clamp(0, 1).log()
    return factor * logs.masked_fill(torch.isneginf(logs), 0.0).sum(dim=-1)


def _select_state(state, rows: torch.Tensor):
    return [(h.index_select(1, rows), c.index_select(1, rows)) for h, c in state]


def beam_search(step: Callable, static: dict, batch_size: int, beam: int, max_length: int, bos_id: int,
                eos_id: int, alpha: float, coverage_factor: float, source_length: int,
                device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``batch_size`` sentences. ``static``: tensors whose first dimension is the
    batch, repeated here per beam; ``step(words (n,), static, state) -> (log_probs (n, V),
    attention (n, source_length), state)`` with ``state`` a list of LSTM (h, c) pairs of
    shape (1, n, h), or None at the start. Returns (best hypothesis per sentence
    (batch_size, max_length) starting with BOS, its length counting BOS and EOS)."""
    K, N = beam, batch_size * beam
    translation = torch.zeros(N, max_length, dtype=torch.long, device=device)
    translation[:, 0] = bos_id
    lengths = torch.ones(N, dtype=torch.long, device=device)
    scores = torch.zeros(N, device=device)
    attention_sums = torch.zeros(N, source_length, device=device)
    frozen_fill = torch.tensor([0.0] + [float("-inf")] * (K - 1), device=device)
    rows = torch.arange(N, device=device)                  # open rows, K per open sentence
    words = torch.full((N,), bos_id, dtype=torch.long, device=device)
    static = {name: value.repeat_interleave(K, 0) for name, value in static.items()}
    state = None
    for position in range(1, max_length):
        if rows.numel() == 0:
            break
        ended = (words == eos_id).view(-1, K)
        finishing = ended.all(dim=1)                       # every beam of the sentence has ended
        lengths[rows[~ended.view(-1)]] += 1
        log_probs, attention, state = step(words, static, state)
        attention_sums[rows] += attention.float().masked_fill(ended.view(-1, 1), 0.0)
        top_log_probs, top_words = log_probs.float().topk(K, dim=1)
        top_words = top_words.view(-1, K, K).masked_fill(ended.unsqueeze(2), eos_id)
        top_log_probs = top_log_probs.view(-1, K, K)
        top_log_probs[ended] = frozen_fill
        candidates = scores[rows].view(-1, K, 1) + top_log_probs
        if position == 1:
            candidates[:, 1:, :] = float("-inf")
        best, index = candidates.view(-1, K * K).topk(K, dim=1)
        scores[rows] = best.view(-1)
        words = top_words.view(-1, K * K).gather(1, index).view(-1)
        source = (index // K + torch.arange(0, rows.numel(), K, device=device).unsqueeze(1)).view(-1)
        translation[rows] = translation[rows[source]]
        translation[rows, position] = words
        lengths[rows] = lengths[rows[source]]
        state = _select_state(state, source)
        if finishing.any():
            done = rows.view(-1, K)[finishing]
            scores[done] = scores[done] / length_normalization(lengths[done], alpha) + \
                coverage_penalty(attention_sums[done], coverage_factor)
            keep = torch.nonzero((~finishing).repeat_interleave(K)).view(-1)
            rows, words = rows[keep], words[keep]
            static = {name: value.index_select(0, keep) for name, value in static.items()}
            state = _select_state(state, keep)
    best = scores.view(batch_size, K).argmax(dim=1) + torch.arange(0, N, K, device=device)
    return translation[best], lengths[best]
