"""HR@10 and NDCG@10 of leave-one-out evaluation, vectorised over users.

Each user ranks 1 test positive among its evaluation negatives. REF scores every
candidate, keeps one score per distinct item (a dict) and takes the 10 largest with
``heapq.nlargest``, where an equal score inserted earlier wins: the positive, appended
last, loses every tie. So the positive's rank is the number of *distinct* negative items
scoring at least as much as it; hit iff that rank < 10; NDCG = 1 / log2(rank + 2) on a hit.
A model that gives every candidate the same score therefore has HR 0, not 1.
"""
from __future__ import annotations

import torch


def distinct_mask(negatives: torch.Tensor) -> torch.Tensor:
    """True at the first occurrence of each item in each row (negatives are drawn with
    replacement, so an item can appear twice; REF counts it once). Rows that are already
    sorted, as ``prepare`` writes them, take one pass; others are sorted first."""
    if negatives.shape[1] == 0 or bool((negatives[:, 1:] >= negatives[:, :-1]).all()):
        first = torch.ones_like(negatives, dtype=torch.bool)
        first[:, 1:] = negatives[:, 1:] != negatives[:, :-1]
        return first
    order = torch.sort(negatives, dim=1)
    mask = torch.empty_like(negatives, dtype=torch.bool)
    mask.scatter_(1, order.indices, distinct_mask(order.values))
    return mask


def positive_rank(pos_scores: torch.Tensor, neg_scores: torch.Tensor, neg_distinct: torch.Tensor) -> torch.Tensor:
    """Per user: how many distinct negatives score >= the positive (ties rank it last)."""
    return ((neg_scores >= pos_scores[:, None]) & neg_distinct).sum(dim=1)


def hit_and_ndcg(pos_scores: torch.Tensor, neg_scores: torch.Tensor, neg_distinct: torch.Tensor | None = None,
                 k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-user hit (0/1) and NDCG@k as float64 tensors."""
    if neg_distinct is None:
        neg_distinct = torch.ones_like(neg_scores, dtype=torch.bool)
    rank = positive_rank(pos_scores, neg_scores, neg_distinct)
    hit = rank < k
    ndcg = torch.where(hit, 1.0 / torch.log2(rank.to(torch.float64) + 2.0),
                       torch.zeros((), dtype=torch.float64, device=rank.device))
    return hit.to(torch.float64), ndcg
