"""Top-1 accuracy (spec §5): the fraction of validation images whose highest logit is the
label. With 1001 outputs the unused background logit 0 can win, and then it is a miss."""
from __future__ import annotations

import torch


def top1_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions in a batch, as a 0-d tensor (no host sync)."""
    return (logits.argmax(dim=1) == labels).sum()
