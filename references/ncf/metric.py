"""HR@10 / NDCG@10 over 1 positive + N negatives per user, vectorised."""
from __future__ import annotations

import torch


def hit_and_ndcg(pos_scores: torch.Tensor, neg_scores: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-user hit and NDCG. The positive ranks last on ties: its rank is the number of
    negatives scoring >= it (negatives are distinct items, so no duplicate rule is needed)."""
    rank = (neg_scores >= pos_scores[:, None]).sum(dim=1)
    hit = rank < k
    ndcg = torch.where(hit, 1.0 / torch.log2(rank.double() + 2.0), torch.zeros((), dtype=torch.float64))
    return hit.double(), ndcg
