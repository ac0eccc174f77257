"""Default boxes and the box coding of SSD300 (spec §2 "Default boxes", §3 "Target encoding",
§5 "Post-processing").

Boxes are normalised to the image (0..1). Default boxes are ``(cx, cy, w, h)``; ground
truth comes in as ``(l, t, r, b)``. The order of the 8,732 default boxes is the reference's:
maps from large to small, and within a map (box type, y, x) - the order in which the heads'
outputs are flattened (``model.py``). torchvision's ``DefaultBoxGenerator`` makes the same
set in another order and does not clamp centres, so it is not used.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
from torchvision.ops import box_convert, box_iou

IMAGE_SIZE = 300
FEATURE_SIZES = (38, 19, 10, 5, 3, 1)
STEPS = (8, 16, 32, 64, 100, 300)
SCALES = (21, 45, 99, 153, 207, 261, 315)
ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
NUM_DEFAULT_BOXES = 8732
SCALE_XY = 0.1     # the reference's scale_xy: offsets of the centre are divided by it
SCALE_WH = 0.2     # scale_wh: log-ratios of the size are divided by it
MATCH_IOU = 0.5    # a default box whose best IoU is above this is positive


def boxes_per_cell(aspect_ratios: Sequence[Sequence[int]] = ASPECT_RATIOS) -> list[int]:
    """Default boxes per feature-map cell, per level: 2 + 2 per aspect ratio ([4, 6, 6, 6, 4, 4])."""
    return [2 + 2 * len(ratios) for ratios in aspect_ratios]


def default_boxes(image_size: int = IMAGE_SIZE, feature_sizes=FEATURE_SIZES, steps=STEPS, scales=SCALES,
                  aspect_ratios=ASPECT_RATIOS) -> torch.Tensor:
    """The default boxes, float32 ``(8732, 4)`` as ``(cx, cy, w, h)`` in [0, 1], in the
    reference's order (level; box type; row y; column x), every value clamped to [0, 1]."""
    boxes = []
    for level, size in enumerate(feature_sizes):
        fk = image_size / steps[level]
        sk, sk_next = scales[level] / image_size, scales[level + 1] / image_size
        sizes = [(sk, sk), (math.sqrt(sk * sk_next),) * 2]
        for ratio in aspect_ratios[level]:
            w, h = sk * math.sqrt(ratio), sk / math.sqrt(ratio)
            sizes += [(w, h), (h, w)]
        for w, h in sizes:
            for i, j in itertools.product(range(size), repeat=2):
                boxes.append(((j + 0.5) / fk, (i + 0.5) / fk, w, h))
    return torch.tensor(boxes, dtype=torch.float32).clamp_(0.0, 1.0)


def encode(boxes_ltrb: torch.Tensor, labels: torch.Tensor, dboxes: torch.Tensor,
           match_iou: float = MATCH_IOU) -> tuple[torch.Tensor, torch.Tensor]:
    """Match ground truth to default boxes and encode the regression targets (spec §3).

    ``boxes_ltrb`` float ``(n, 4)`` normalised, ``labels`` int64 ``(n,)`` in 1..C,
    ``dboxes`` ``(D, 4)`` cxcywh. Each ground-truth box takes its best default box; any other
    default box whose best IoU is above ``match_iou`` takes its best ground truth. Returns
    ``(offsets (D, 4) float32, labels (D,) int64)``: offsets
    ``((g_xy - d_xy) / d_wh / 0.1, log(g_wh / d_wh) / 0.2)`` where matched, 0 elsewhere;
    label 0 (background) where unmatched. With no boxes every default box is background.
    """
    num_dboxes = dboxes.shape[0]
    if boxes_ltrb.numel() == 0:
        return torch.zeros(num_dboxes, 4), torch.zeros(num_dboxes, dtype=torch.int64)
    ious = box_iou(boxes_ltrb, box_convert(dboxes, "cxcywh", "xyxy"))      # (n, D)
    best_iou, best_gt = ious.max(dim=0)
    best_dbox = ious.max(dim=1).indices                                     # (n,)
    best_iou.index_fill_(0, best_dbox, 2.0)
    # as the reference: a later ground-truth box wins a default box that two pick as best
    best_gt[best_dbox] = torch.arange(len(best_dbox))
    matched = best_iou > match_iou
    out_labels = torch.zeros(num_dboxes, dtype=torch.int64)
    out_labels[matched] = labels[best_gt[matched]]
    gt = box_convert(boxes_ltrb[best_gt[matched]], "xyxy", "cxcywh")
    d = dboxes[matched]
    offsets = torch.zeros(num_dboxes, 4)
    offsets[matched, :2] = (gt[:, :2] - d[:, :2]) / d[:, 2:] / SCALE_XY
    offsets[matched, 2:] = torch.log(gt[:, 2:] / d[:, 2:]) / SCALE_WH
    return offsets, out_labels


def decode(offsets: torch.Tensor, dboxes: torch.Tensor) -> torch.Tensor:
    """Invert :func:`encode`'s regression: ``offsets`` ``(..., D, 4)`` -> boxes ``(..., D, 4)``
    as normalised ``(l, t, r, b)`` (spec §5: ``cxcy = 0.1·p·d_wh + d_xy``, ``wh = exp(0.2·p)·d_wh``)."""
    dboxes = dboxes.to(offsets)
    xy = offsets[..., :2] * SCALE_XY * dboxes[:, 2:] + dboxes[:, :2]
    wh = torch.exp(offsets[..., 2:] * SCALE_WH) * dboxes[:, 2:]
    return torch.cat([xy - wh / 2, xy + wh / 2], dim=-1)
