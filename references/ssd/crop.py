"""The reference's IoU-mode random crop (spec §1 step 2).

torchvision's ``RandomIoUCrop`` accepts a crop when *any* box meets the IoU and makes 40
tries; the reference needs *every* box to meet it and makes ``max_samples`` tries per mode
(1 in REF, 50 also allowed), so this is written out.
"""
from __future__ import annotations

import random

import torch
from torchvision.ops import box_iou

# None keeps the image; a number is the minimum IoU every box must exceed; -inf: no IoU bound.
MODES = (None, 0.1, 0.3, 0.5, 0.7, 0.9, float("-inf"))


def crop_window(boxes: torch.Tensor, max_samples: int, rng: random.Random, modes=MODES):
    """Draw a crop for normalised ``(l, t, r, b)`` ``boxes`` (n ≥ 1, float). Returns ``None``
    (keep the whole image) or ``(left, top, right, bottom, keep)``: the window as fractions
    of the image and the bool mask (n,) of boxes whose centre lies strictly inside it.

    Each round draws one of the 7 modes uniformly; a mode makes ``max_samples`` tries of
    w, h ~ U(0.3, 1) with w/h in [0.5, 2], left ~ U(0, 1-w), top ~ U(0, 1-h), accepted when
    every box has IoU with the window strictly above the mode's minimum and some box centre
    is strictly inside; when every try fails a new mode is drawn."""
    centres_x = 0.5 * (boxes[:, 0] + boxes[:, 2])
    centres_y = 0.5 * (boxes[:, 1] + boxes[:, 3])
    while True:
        min_iou = rng.choice(modes)
        if min_iou is None:
            return None
        for _ in range(max_samples):
            w, h = rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)
            if w / h < 0.5 or w / h > 2:
                continue
            left, top = rng.uniform(0, 1.0 - w), rng.uniform(0, 1.0 - h)
            right, bottom = left + w, top + h
            ious = box_iou(boxes, torch.tensor([[left, top, right, bottom]], dtype=boxes.dtype))
            if not bool((ious > min_iou).all()):
                continue
            keep = (centres_x > left) & (centres_x < right) & (centres_y > top) & (centres_y < bottom)
            if not bool(keep.any()):
                continue
            return left, top, right, bottom, keep


def crop_boxes(boxes: torch.Tensor, window) -> torch.Tensor:
    """Boxes of ``keep`` clipped to the window and re-normalised to it, ``(m, 4)``."""
    left, top, right, bottom, keep = window
    kept = boxes[keep].clone()
    kept[:, 0::2] = (kept[:, 0::2].clamp(left, right) - left) / (right - left)
    kept[:, 1::2] = (kept[:, 1::2].clamp(top, bottom) - top) / (bottom - top)
    return kept


def pixel_window(window, width: int, height: int) -> tuple[int, int, int, int]:
    """The reference's pixel crop ``int(fraction × size)`` as PIL's (left, upper, right, lower)."""
    left, top, right, bottom = window[:4]
    return int(left * width), int(top * height), int(right * width), int(bottom * height)
