"""COCO evaluation (spec ssd.md §5, maskrcnn.md §5): the 12 COCOeval statistics of bbox or
segm detections, with detections gathered from every rank first.

The references score with ``pycocotools``' ``COCOeval``. We use ``hotcoco`` (a Rust
implementation of the same algorithm): its 12 statistics are bit-identical to pycocotools
2.0.11 on bbox and segm, crowd regions included (tests/test_coco_evaluation.py checks this
on every run), and it is 10-100× faster (perf/coco_eval_speed.py). Evaluation is on the
clock.
"""
from __future__ import annotations

import contextlib
import io
from operator import itemgetter
from pathlib import Path

import numpy as np
import torch

# The names of COCOeval.stats, in its order (pycocotools' summarize()).
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
IOU_TYPES = ("bbox", "segm")


def load_ground_truth(source):
    """The evaluator's ground-truth object from an annotation file path, a COCO dict, or a
    pycocotools ``COCO`` (its ``.dataset`` is used). An evaluator object is returned as is."""
    import hotcoco

    if isinstance(source, hotcoco.COCO):
        return source
    if isinstance(source, (str, Path)):
        return hotcoco.COCO(str(source))
    if isinstance(source, dict):
        return hotcoco.COCO(source)
    dataset = getattr(source, "dataset", None)
    if isinstance(dataset, dict):
        return hotcoco.COCO(dataset)
    raise TypeError(f"COCO ground truth: got {type(source).__name__}, expected a path, a dict or a COCO object")


def _canonical_order(detections: list[dict]) -> list[dict]:
    # COCOeval ranks equal scores in input order (a stable sort), so the order must not
    # depend on how images were split over ranks: by image id, keeping each image's order.
    return sorted(detections, key=itemgetter("image_id"))


def _check(gt, detections: list[dict], iou_type: str) -> None:
    """pycocotools refuses results for images outside the ground truth (a wrong split) and
    fails on a missing field; hotcoco would only warn, so refuse them here."""
    needed = ("image_id", "category_id", "score", "segmentation" if iou_type == "segm" else "bbox")
    needed_set = set(needed)
    for d in (d for d in detections if not needed_set <= d.keys()):
        raise ValueError(f"{iou_type} detection {d!r}: needs the keys {', '.join(needed)}")
    unknown = {d["image_id"] for d in detections} - set(gt.get_img_ids())
    if unknown:
        raise ValueError(f"detections for {len(unknown)} image ids not in the ground truth "
                         f"(e.g. {sorted(unknown)[:3]}): results of another split?")


def coco_eval(coco_gt, detections: list[dict], iou_type: str = "bbox") -> dict[str, float]:
    """The 12 COCO statistics of ``detections`` against ``coco_gt``.

    ``coco_gt``: ``CocoIndex.coco``, an annotation path, a COCO dict or a pycocotools COCO.
    ``detections``: COCO result format, ``{"image_id", "category_id"`` (the original COCO
    id), ``"bbox": [x, y, w, h]`` (pixels), ``"score"}``, plus ``"segmentation"`` (an RLE
    dict, e.g. from ``encode_masks``) for ``iou_type="segm"``. All images of the ground
    truth are scored (maxDets 1/10/100, as COCOeval's defaults).

    Returns ``{"AP": ..., "AP50": ..., ..., "ARl": ...}`` (floats; -1 where the ground truth
    has no object of an area range, as pycocotools). ``AP`` is the MLPerf metric
    (``stats[0]``). No detections at all gives 0 (or -1) everywhere.
    """
    import hotcoco

    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type {iou_type!r}: expected one of {', '.join(IOU_TYPES)}")
    gt = load_ground_truth(coco_gt)
    _check(gt, detections, iou_type)
    results = gt.load_res(_canonical_order(detections))
    evaluator = hotcoco.COCOeval(gt, results, iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    with contextlib.redirect_stdout(io.StringIO()):  # summarize() prints the table
        evaluator.summarize()
    stats = [float(v) for v in evaluator.stats]
    assert len(stats) == len(STAT_NAMES), stats
    return dict(zip(STAT_NAMES, stats))


def detections_for_image(image_id: int, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                         category_of, masks=None) -> list[dict]:
    """One image's predictions in COCO result format (the input of ``coco_eval``).

    ``boxes``: [N, 4] ``x1, y1, x2, y2`` in the original image's pixels (``w = x2 - x1``; a
    reference with the "+1" convention adds 1 itself). ``scores``: [N]. ``labels``: int [N]
    contiguous labels 1..C, mapped back to COCO ids through ``category_of``
    (``CocoIndex.category_of``). ``masks``: None, or [N, H, W] binary masks already pasted
    into the image (uint8/bool), encoded with ``encode_masks`` for segm.
    """
    boxes = boxes.detach().cpu().to(torch.float64)
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    categories = [int(category_of[label]) for label in labels.detach().cpu().tolist()]
    out = [{"image_id": int(image_id), "category_id": category, "bbox": box, "score": float(score)}
           for category, box, score in zip(categories, xywh, scores.detach().cpu().tolist())]
    if masks is not None:
        if len(masks) != len(out):
            raise ValueError(f"detections_for_image: {len(masks)} masks for {len(out)} boxes")
        for detection, rle in zip(out, encode_masks(masks)):
            detection["segmentation"] = rle
    return out


def gather_detections(local: list[dict], env=None) -> list[dict]:
    """Every rank's detections, on every rank, in one canonical order.

    ``env``: the run's ``mlperf_train.distributed.RunEnv`` (its ``all_gather_object``);
    None uses ``torch.distributed`` directly when a process group is up, else returns
    ``local``. An image present on several ranks (a sampler that pads its last shard with
    repeated images) keeps only the detections of the lowest rank that has it; a rank that
    evaluated an image without detecting anything cannot be told apart from one that never
    saw it, which changes nothing. The result is sorted by image id (stable), so it is the
    same list whatever the number of ranks.
    """
    if env is not None:
        parts = env.all_gather_object(local)
    elif torch.distributed.is_available() and torch.distributed.is_initialized():
        parts = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, local)
    else:
        parts = [local]
    owner: dict[int, int] = {}
    for rank, part in enumerate(parts):
        for image_id in set(map(itemgetter("image_id"), part)):
            owner.setdefault(image_id, rank)
    merged = [d for rank, part in enumerate(parts) for d in part if owner[d["image_id"]] == rank]
    return _canonical_order(merged)


def encode_masks(masks) -> list[dict]:
    """Binary masks as COCO RLEs, one per mask (pycocotools' ``mask.encode``).

    ``masks``: uint8 or bool, [N, H, W] (torch tensor or numpy array), non-zero = inside.
    Returns N dicts ``{"size": [H, W], "counts": str}`` (compressed RLE; ``counts`` decoded
    to text so the detections pickle and serialise to JSON as they are).
    """
    from pycocotools import mask as mask_utils

    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"encode_masks: masks of shape {masks.shape}, expected [N, H, W]")
    if masks.shape[0] == 0:
        return []
    stacked = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8, copy=False) != 0, dtype=np.uint8)
    rles = mask_utils.encode(stacked)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles
