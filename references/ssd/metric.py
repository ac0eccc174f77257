"""From the model's outputs to COCO detections (spec §5 "Post-processing").

Softmax over the classes; decode the boxes; per class keep scores > 0.05, take the top 200
and run greedy NMS at IoU 0.5 (``torchvision.ops.batched_nms``, all classes of an image in
one call); keep the best 200 per image; scale to the original image and write COCO's
``[x, y, w, h]`` with the original category id. The mAP itself is computed by
``references.coco.evaluation`` on the gathered detections.
"""
from __future__ import annotations

import torch
from torchvision.ops import batched_nms

from references.ssd.boxes import decode

SCORE_THRESHOLD = 0.05
TOP_PER_CLASS = 200
NMS_IOU = 0.5
MAX_PER_IMAGE = 200


def detect(locs: torch.Tensor, scores: torch.Tensor, dboxes: torch.Tensor):
    """``locs`` (N, 4, D), ``scores`` (N, C, D) logits -> per image ``(boxes (k, 4) normalised
    ltrb, scores (k,), labels (k,) in 1..C-1)``, k ≤ 200, best first."""
    boxes = decode(locs.transpose(1, 2).float(), dboxes)          # (N, D, 4)
    probs = torch.softmax(scores.float(), dim=1)                   # (N, C, D)
    out = []
    for image_boxes, image_probs in zip(boxes, probs):
        # per class: the top 200 scores above the threshold (one topk over all classes)
        top = image_probs[1:].topk(min(TOP_PER_CLASS, image_probs.shape[1]), dim=1)
        above = top.values > SCORE_THRESHOLD
        cand_scores, box_index = top.values[above], top.indices[above]
        cand_labels = above.nonzero()[:, 0] + 1
        cand_boxes = image_boxes[box_index]
        kept = batched_nms(cand_boxes, cand_scores, cand_labels, NMS_IOU)[:MAX_PER_IMAGE]   # sorted by score
        out.append((cand_boxes[kept], cand_scores[kept], cand_labels[kept]))
    return out


def to_coco(detections, image_ids, heights, widths, category_of) -> list[dict]:
    """COCO result dicts: ``{"image_id", "category_id", "bbox": [x, y, w, h] pixels, "score"}``."""
    results = []
    for (boxes, scores, labels), image_id, height, width in zip(detections, image_ids, heights, widths):
        scale = torch.tensor([width, height, width, height], dtype=boxes.dtype)
        pixels = (boxes * scale).tolist()
        for (l, t, r, b), score, label in zip(pixels, scores.tolist(), labels.tolist()):
            results.append({"image_id": int(image_id), "category_id": int(category_of[label]),
                            "bbox": [l, t, r - l, b - t], "score": float(score)})
    return results
