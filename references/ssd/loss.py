"""The SSD loss of the reference (spec §3 "Loss").

Per image: Smooth-L1 (β = 1) summed over the 4 coordinates of the positive default boxes,
plus softmax cross-entropy over the positives and the hard negatives (the 3·num_pos
background boxes of highest cross-entropy, at most all boxes); divided by that image's
number of positives (an image without positives contributes 0); then the mean over the
batch. torchvision's ``SSD`` divides by the batch's positives instead, so it is not used.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NEGATIVES_PER_POSITIVE = 3


def ssd_loss(locs: torch.Tensor, scores: torch.Tensor, target_offsets: torch.Tensor,
             target_labels: torch.Tensor) -> torch.Tensor:
    """``locs`` (N, 4, D) and ``scores`` (N, C, D) from the model; ``target_offsets`` (N, D, 4)
    and ``target_labels`` (N, D) int64 from ``boxes.encode`` (0 = background). Returns the
    scalar loss (mean over the batch of each image's loss / its positives)."""
    positive = target_labels > 0                                          # (N, D)
    num_pos = positive.sum(dim=1)                                         # (N,)
    box_loss = F.smooth_l1_loss(locs, target_offsets.transpose(1, 2), reduction="none", beta=1.0).sum(dim=1)
    box_loss = (box_loss * positive).sum(dim=1)
    ce = F.cross_entropy(scores, target_labels, reduction="none")         # (N, D)
    # hard negatives: rank the background boxes by their cross-entropy (positives count 0)
    negative_ce = ce.masked_fill(positive, 0.0)
    rank = negative_ce.argsort(dim=1, descending=True).argsort(dim=1)
    num_neg = torch.clamp(NEGATIVES_PER_POSITIVE * num_pos, max=positive.shape[1]).unsqueeze(1)
    hard_negative = rank < num_neg
    class_loss = (ce * (positive.float() + hard_negative.float())).sum(dim=1)
    has_pos = (num_pos > 0).float()
    return ((box_loss + class_loss) * has_pos / num_pos.float().clamp(min=1e-6)).mean()
