"""The reference's anchors, box coder and RPN (spec §2, "RPN head", "RPN training",
"Proposals"), on top of torchvision's ``AnchorGenerator``, ``BoxCoder`` and
``RegionProposalNetwork``. What differs from torchvision, and only that, is written here:

- anchors: Detectron's ``generate_anchors`` (a stride×stride base box [0, 0, s−1, s−1],
  ratio enumeration with rounded integer widths, the "+1" width convention);
- box coder: widths are x2 − x1 + 1 and decoded x2/y2 subtract 1 (the reference's
  ``TO_REMOVE``); torchvision's has no +1;
- anchors crossing the image border (straddle threshold 0) are ignored in RPN training;
- in training, the post-NMS top N is taken over all images of a rank's batch
  (``FPN_POST_NMS_PER_BATCH``), not per image.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork

BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def detectron_cell_anchors(stride: int, size: float, aspect_ratios) -> np.ndarray:
    """Detectron's anchors (x1, y1, x2, y2) of one cell at the origin, one per aspect ratio
    (h/w), with the +1 convention: a w-wide box spans x1..x1+w−1. Shape (len(ratios), 4)."""
    base = np.array([0.0, 0.0, stride - 1.0, stride - 1.0])
    w, h = base[2] - base[0] + 1, base[3] - base[1] + 1
    x_ctr, y_ctr = base[0] + 0.5 * (w - 1), base[1] + 0.5 * (h - 1)
    ratios = np.asarray(aspect_ratios, dtype=np.float64)
    ws = np.round(np.sqrt(w * h / ratios))
    hs = np.round(ws * ratios)
    scale = size / stride
    ws, hs = ws * scale, hs * scale
    return np.stack([x_ctr - 0.5 * (ws - 1), y_ctr - 0.5 * (hs - 1),
                     x_ctr + 0.5 * (ws - 1), y_ctr + 0.5 * (hs - 1)], axis=1)


class DetectronAnchorGenerator(AnchorGenerator):
    """torchvision's grid logic (shifts k·stride over each feature map) with Detectron's
    cell anchors. ``sizes[i]`` is the one anchor size of level i, ``strides[i]`` its stride
    (the reference: 32..512 at strides 4..64)."""

    def __init__(self, sizes=(32, 64, 128, 256, 512), strides=(4, 8, 16, 32, 64), aspect_ratios=(0.5, 1.0, 2.0)):
        super().__init__(tuple((s,) for s in sizes), (tuple(aspect_ratios),) * len(sizes))
        self.cell_anchors = [torch.as_tensor(detectron_cell_anchors(stride, size, aspect_ratios),
                                             dtype=torch.float32).round()
                             for size, stride in zip(sizes, strides)]
        self.strides = tuple(strides)

    def forward(self, image_list, feature_maps):
        """Anchors of every image, (sum over levels of H_l·W_l·A, 4), levels in order. The
        strides are the levels' nominal ones; torchvision derives them from the padded size,
        which is wrong for P6 when H/32 is odd."""
        grid_sizes = [list(f.shape[-2:]) for f in feature_maps]
        device = feature_maps[0].device
        strides = [[torch.tensor(s, device=device), torch.tensor(s, device=device)] for s in self.strides]
        self.set_cell_anchors(feature_maps[0].dtype, device)
        anchors = torch.cat(self.grid_anchors(grid_sizes, strides))
        return [anchors for _ in image_list.image_sizes]


class PlusOneBoxCoder(BoxCoder):
    """The reference's box coder: torchvision's with the "+1" width convention."""

    def encode_single(self, reference_boxes: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        wx, wy, ww, wh = self.weights
        ex_w = proposals[:, 2] - proposals[:, 0] + 1
        ex_h = proposals[:, 3] - proposals[:, 1] + 1
        ex_x, ex_y = proposals[:, 0] + 0.5 * ex_w, proposals[:, 1] + 0.5 * ex_h
        gt_w = reference_boxes[:, 2] - reference_boxes[:, 0] + 1
        gt_h = reference_boxes[:, 3] - reference_boxes[:, 1] + 1
        gt_x, gt_y = reference_boxes[:, 0] + 0.5 * gt_w, reference_boxes[:, 1] + 0.5 * gt_h
        return torch.stack([wx * (gt_x - ex_x) / ex_w, wy * (gt_y - ex_y) / ex_h,
                            ww * torch.log(gt_w / ex_w), wh * torch.log(gt_h / ex_h)], dim=1)

    def decode_single(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        boxes = boxes.to(rel_codes.dtype)
        widths = boxes[:, 2] - boxes[:, 0] + 1
        heights = boxes[:, 3] - boxes[:, 1] + 1
        ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx, dy = rel_codes[:, 0::4] / wx, rel_codes[:, 1::4] / wy
        dw = torch.clamp(rel_codes[:, 2::4] / ww, max=self.bbox_xform_clip)
        dh = torch.clamp(rel_codes[:, 3::4] / wh, max=self.bbox_xform_clip)
        pred_x, pred_y = dx * widths[:, None] + ctr_x[:, None], dy * heights[:, None] + ctr_y[:, None]
        pred_w, pred_h = torch.exp(dw) * widths[:, None], torch.exp(dh) * heights[:, None]
        return torch.stack([pred_x - 0.5 * pred_w, pred_y - 0.5 * pred_h,
                            pred_x + 0.5 * pred_w - 1, pred_y + 0.5 * pred_h - 1], dim=2).flatten(1)


class ReferenceRPN(RegionProposalNetwork):
    """torchvision's RPN (3×3 conv head with N(0, 0.01²) init, matcher 0.7/0.3 with the
    best-anchor rule, 256 samples at most half positive, BCE objectness, Smooth-L1 β = 1/9
    over the sampled count, per-level top-N, NMS 0.7) plus the straddle filter and the
    per-batch post-NMS top N of training."""

    def __init__(self, *args, straddle_thresh: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.box_coder = PlusOneBoxCoder((1.0, 1.0, 1.0, 1.0), BBOX_XFORM_CLIP)
        self.straddle_thresh = straddle_thresh
        self._image_sizes: list = []

    def forward(self, images, features, targets=None):
        self._image_sizes = list(images.image_sizes)
        return super().forward(images, features, targets)

    def assign_targets_to_anchors(self, anchors, targets):
        labels, matched = super().assign_targets_to_anchors(anchors, targets)
        if self.straddle_thresh >= 0:
            t = self.straddle_thresh
            for labels_per_image, anchors_per_image, (h, w) in zip(labels, anchors, self._image_sizes):
                visible = ((anchors_per_image[:, 0] >= -t) & (anchors_per_image[:, 1] >= -t)
                           & (anchors_per_image[:, 2] < w + t) & (anchors_per_image[:, 3] < h + t))
                labels_per_image[~visible] = -1.0
        return labels, matched

    def filter_proposals(self, proposals, objectness, image_shapes, num_anchors_per_level):
        boxes, scores = super().filter_proposals(proposals, objectness, image_shapes, num_anchors_per_level)
        if not self.training or len(boxes) < 2:
            return boxes, scores
        # FPN_POST_NMS_PER_BATCH: the top N over the whole batch of this rank.
        top_n = self.post_nms_top_n()
        counts = [len(s) for s in scores]
        flat = torch.cat(scores)
        if flat.numel() <= top_n:
            return boxes, scores
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[flat.topk(top_n, sorted=False).indices] = True
        keep = keep.split(counts)
        return [b[k] for b, k in zip(boxes, keep)], [s[k] for s, k in zip(scores, keep)]
