"""COCO bbox and segm AP of the detections (spec §5): boxes and masks brought back to the
original image, masks pasted with 1-px padding, thresholded at 0.5 and RLE-encoded; the
detections of all ranks gathered and scored by the shared COCO evaluator."""
from __future__ import annotations

import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from references.coco.evaluation import coco_eval, detections_for_image, gather_detections

MASK_THRESHOLD = 0.5


def detections_of(outputs: list, sizes: list, infos: list, category_of) -> list[dict]:
    """COCO result dicts for a batch. ``outputs``: the model's per-image dicts (boxes in the
    resized image); ``sizes``: resized (h, w); ``infos``: {image_id, original (h, w)};
    ``category_of[label]``: the COCO category id of a contiguous label."""
    results = []
    for output, (h, w), info in zip(outputs, sizes, infos):
        height, width = info["original"]
        boxes = output["boxes"].float().cpu()
        if len(boxes) == 0:
            continue
        scale = torch.tensor([width / w, height / h, width / w, height / h])
        boxes = boxes * scale  # BoxList.resize: coordinates scaled, no +1 adjustment
        pasted = paste_masks_in_image(output["masks"].float().cpu(), boxes, (height, width), padding=1)
        # the "+1" convention: a box x1..x2 is x2 − x1 + 1 wide in COCO's [x, y, w, h]
        results += detections_for_image(info["image_id"], boxes + torch.tensor([0.0, 0.0, 1.0, 1.0]),
                                        output["scores"], output["labels"], category_of,
                                        masks=pasted[:, 0] > MASK_THRESHOLD)
    return results


def coco_quality(coco_gt, local: list[dict], env) -> dict[str, float]:
    """{"BBOX": AP, "SEGM": AP} over every rank's detections, identical on every rank (rank 0
    scores, the others receive its numbers)."""
    detections = gather_detections(local, env)
    quality = None
    if env.is_main:
        bbox = coco_eval(coco_gt, detections, "bbox")["AP"] if detections else 0.0
        segm = coco_eval(coco_gt, detections, "segm")["AP"] if detections else 0.0
        quality = {"BBOX": max(float(bbox), 0.0), "SEGM": max(float(segm), 0.0)}
    return env.broadcast_object(quality)
