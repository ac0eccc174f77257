"""Mask R-CNN R-50-FPN as the reference builds it (spec §2), from torchvision's parts and the
few reference-specific pieces in ``backbone``, ``rpn`` and ``roi_heads``.

Input: a padded batch ``images`` (B, 3, H, W) float, BGR×255 minus the pixel means, H and
W multiples of 32, and ``image_sizes`` [(h, w)] of each unpadded image. Training returns the
five losses; inference returns per image ``boxes`` (k, 4) xyxy in the resized image,
``labels``, ``scores`` and ``masks`` (k, 1, 28, 28) probabilities.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from references.maskrcnn.backbone import resnet_fpn
from references.maskrcnn.roi_heads import ReferenceRoIHeads
from references.maskrcnn.rpn import DetectronAnchorGenerator, ReferenceRPN

LEVELS = ["0", "1", "2", "3"]   # P2..P5 for RoI pooling (P6 feeds the RPN only)


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """The sizes the small preset shrinks; defaults are the reference's (spec §2, §9)."""

    num_classes: int = 81               # with background
    width: int = 64                     # ResNet stem/res2 inner width
    fpn_channels: int = 256
    fc_dim: int = 1024
    anchor_sizes: tuple = (32, 64, 128, 256, 512)
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000    # over the batch of one rank: num_image_candidates
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    roi_batch_size_per_image: int = 512


def _reference_box_head(box_head: TwoMLPHead, box_predictor: FastRCNNPredictor) -> None:
    """The reference's inits: FCs Kaiming-uniform (a = 1); classifier N(0, 0.01²); box
    deltas N(0, 0.001²); all biases 0 (torchvision keeps nn.Linear's default init)."""
    for fc in (box_head.fc6, box_head.fc7):
        nn.init.kaiming_uniform_(fc.weight, a=1)
        nn.init.zeros_(fc.bias)
    nn.init.normal_(box_predictor.cls_score.weight, std=0.01)
    nn.init.normal_(box_predictor.bbox_pred.weight, std=0.001)
    for layer in (box_predictor.cls_score, box_predictor.bbox_pred):
        nn.init.zeros_(layer.bias)


class MaskRCNN(nn.Module):
    def __init__(self, size: ModelSize = ModelSize()):
        super().__init__()
        channels = size.fpn_channels
        self.backbone = resnet_fpn(size.width, channels)
        anchors = DetectronAnchorGenerator(size.anchor_sizes)
        self.rpn = ReferenceRPN(
            anchors, RPNHead(channels, 3), fg_iou_thresh=0.7, bg_iou_thresh=0.3,
            batch_size_per_image=size.rpn_batch_size_per_image, positive_fraction=0.5,
            pre_nms_top_n={"training": size.rpn_pre_nms_top_n_train, "testing": size.rpn_pre_nms_top_n_test},
            post_nms_top_n={"training": size.rpn_post_nms_top_n_train, "testing": size.rpn_post_nms_top_n_test},
            nms_thresh=0.7, score_thresh=0.0)
        self.rpn.min_size = 0.0   # the reference keeps every box with width + 1 >= 0
        box_head = TwoMLPHead(channels * 7 * 7, size.fc_dim)
        box_predictor = FastRCNNPredictor(size.fc_dim, size.num_classes)
        _reference_box_head(box_head, box_predictor)
        self.roi_heads = ReferenceRoIHeads(
            MultiScaleRoIAlign(LEVELS, 7, 2), box_head, box_predictor,
            fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=size.roi_batch_size_per_image,
            positive_fraction=0.25, bbox_reg_weights=None, score_thresh=0.05, nms_thresh=0.5,
            detections_per_img=100, mask_roi_pool=MultiScaleRoIAlign(LEVELS, 14, 2),
            mask_head=MaskRCNNHeads(channels, [channels] * 4, 1),          # Kaiming-normal fan_out, bias 0
            mask_predictor=MaskRCNNPredictor(channels, channels, size.num_classes))

    def forward(self, images: torch.Tensor, image_sizes: list, targets: list | None = None):
        image_list = ImageList(images, [tuple(s) for s in image_sizes])
        features = self.backbone(images)
        proposals, rpn_losses = self.rpn(image_list, features, targets)
        detections, roi_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        if self.training:
            return {**rpn_losses, **roi_losses}
        return detections
