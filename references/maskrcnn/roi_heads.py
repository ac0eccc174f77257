"""The box and mask heads' training and inference (spec §2 "ROI box head", "Mask head";
§3 loss; §5 inference), on torchvision's ``RoIHeads``.

torchvision supplies the proposal matcher (0.5/0.5), the 512-per-image 25 %-positive
sampler, ground-truth boxes appended to the proposals, ``MultiScaleRoIAlign`` (7×7 and
14×14, sampling ratio 2, ``aligned=False``, the FPN level formula), and the test-time
post-processing (softmax, score > 0.05, per-class NMS 0.5, 100 detections, mask sigmoid on
the predicted class). Written here, because the reference differs:

- the ROI box loss is Smooth-L1 with β = 1 (torchvision: 1/9), summed over the positives'
  ground-truth-class deltas and divided by the number of sampled RoIs;
- mask targets are each positive RoI's ground-truth *polygons* cropped to the RoI, scaled
  to 28×28 and rasterised (pycocotools, as the reference), where torchvision RoIAligns a
  full-image bitmap;
- the box coder has the "+1" convention (``rpn.PlusOneBoxCoder``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference

from references.maskrcnn.rpn import BBOX_XFORM_CLIP, PlusOneBoxCoder


def rasterise_polygons(polygons: list, box, size: int) -> np.ndarray:
    """The mask target of one RoI: ``polygons`` (one object's parts, each a flat float
    sequence x0, y0, x1, y1, ... in image pixels) cropped to ``box`` (x1, y1, x2, y2), scaled
    so the box spans ``size``×``size`` and rasterised (the reference's ``crop``, ``resize``,
    ``convert("mask")``). Returns uint8 (size, size) with 1 inside."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    scaled = []
    for polygon in polygons:
        p = np.asarray(polygon, dtype=np.float64).copy()
        p[0::2] = (p[0::2] - x1) * (size / width)
        p[1::2] = (p[1::2] - y1) * (size / height)
        scaled.append(p.tolist())
    if not scaled:
        return np.zeros((size, size), dtype=np.uint8)
    rle = mask_utils.merge(mask_utils.frPyObjects(scaled, size, size))
    return mask_utils.decode(rle)


def mask_targets(polygons_per_object: list, matched_idxs: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """(P, size, size) float targets for the P positive RoIs of one image."""
    if rois.numel() == 0:
        return rois.new_zeros((0, size, size))
    masks = [rasterise_polygons(polygons_per_object[int(i)], box, size)
             for i, box in zip(matched_idxs.tolist(), rois.detach().cpu().tolist())]
    return torch.from_numpy(np.stack(masks)).to(rois.device, torch.float32)


def box_loss(class_logits, box_regression, labels, regression_targets):
    """(cross-entropy over sampled RoIs, Smooth-L1 β = 1 on the positives' ground-truth
    class deltas / number of sampled RoIs)."""
    labels = torch.cat(labels)
    regression_targets = torch.cat(regression_targets)
    classification = F.cross_entropy(class_logits, labels)
    positive = torch.where(labels > 0)[0]
    deltas = box_regression.reshape(len(labels), -1, 4)[positive, labels[positive]]
    regression = F.smooth_l1_loss(deltas, regression_targets[positive], beta=1.0, reduction="sum") / labels.numel()
    return classification, regression


class ReferenceRoIHeads(RoIHeads):
    """``RoIHeads`` whose training losses are the reference's. Targets per image:
    ``boxes`` (n, 4) xyxy with +1 widths, ``labels`` (n,) in 1..C, ``polygons`` (n lists of
    flat polygons)."""

    def __init__(self, *args, mask_size: int = 28, **kwargs):
        super().__init__(*args, **kwargs)
        self.box_coder = PlusOneBoxCoder((10.0, 10.0, 5.0, 5.0), BBOX_XFORM_CLIP)
        self.mask_size = mask_size

    def check_targets(self, targets):
        if targets is None or not all("boxes" in t and "labels" in t and "polygons" in t for t in targets):
            raise ValueError("training targets need boxes, labels and polygons")

    def forward(self, features, proposals, image_shapes, targets=None):
        """Training: ({}, losses {loss_classifier, loss_box_reg, loss_mask}). Inference:
        (one dict per image: boxes (k, 4), labels (k,), scores (k,), masks (k, 1, 28, 28)
        probabilities in the box), {})."""
        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        if not self.training:
            boxes, scores, classes = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
            mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, boxes, image_shapes)))
            probs = maskrcnn_inference(mask_logits, classes)
            return [{"boxes": b, "labels": c, "scores": s, "masks": m}
                    for b, c, s, m in zip(boxes, classes, scores, probs)], {}
        loss_classifier, loss_box_reg = box_loss(class_logits, box_regression, labels, regression_targets)
        positive_rois, positive_idxs, positive_labels = [], [], []
        for rois, idxs, lab in zip(proposals, matched_idxs, labels):
            keep = torch.where(lab > 0)[0]
            positive_rois.append(rois[keep])
            positive_idxs.append(idxs[keep])
            positive_labels.append(lab[keep])
        mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, positive_rois, image_shapes)))
        gt = torch.cat([mask_targets(t["polygons"], idxs, rois, self.mask_size)
                        for t, idxs, rois in zip(targets, positive_idxs, positive_rois)])
        classes = torch.cat(positive_labels)
        if gt.numel() == 0:
            loss_mask = mask_logits.sum() * 0
        else:
            chosen = mask_logits[torch.arange(len(classes), device=classes.device), classes]
            loss_mask = F.binary_cross_entropy_with_logits(chosen, gt)
        return [], {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg, "loss_mask": loss_mask}
