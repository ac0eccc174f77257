"""COCO evaluation speed: references/coco's evaluator (hotcoco) against pycocotools, side by side.

    python perf/coco_eval_speed.py [--images 500] [--per-image 100] [--pairs 5] [--iou-types bbox segm]

Generates a val split with references/coco/synthetic.py (crowd regions included), makes
``--per-image`` detections for every image (ground-truth boxes moved by a few pixels, some with
the wrong class, and false positives; elliptic or box masks for segm), then times a whole
evaluation (load results, evaluate, accumulate, summarize) with each library in turn,
alternating which goes first. Prints per IoU type the median seconds of each, the statistics'
largest difference, and ``speedup=<median of per-pair pycocotools/ours ratios>``.
faster-coco-eval is timed too when it is installed (for information; not a dependency).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from references.coco import layout, synthetic
from references.coco.evaluation import STAT_NAMES, coco_eval, encode_masks


def make_detections(gt: dict, per_image: int, with_masks: bool, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    cats = [c["id"] for c in gt["categories"]]
    by_image: dict[int, list] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    out = []
    for image in gt["images"]:
        height, width = image["height"], image["width"]
        boxes = []
        for ann in by_image.get(image["id"], []):
            x, y, w, h = ann["bbox"]
            for _ in range(3):
                boxes.append((x + rng.normal(0, 0.1 * w), y + rng.normal(0, 0.1 * h), w * rng.uniform(0.8, 1.2),
                              h * rng.uniform(0.8, 1.2), ann["category_id"] if rng.random() < 0.8 else rng.choice(cats)))
        while len(boxes) < per_image:
            w, h = rng.uniform(4, width / 2), rng.uniform(4, height / 2)
            boxes.append((rng.uniform(0, width - w), rng.uniform(0, height - h), w, h, rng.choice(cats)))
        scores = np.sort(rng.uniform(0.05, 1.0, size=len(boxes)))[::-1]
        yy, xx = np.mgrid[0:height, 0:width]
        for (x, y, w, h, cat), score in zip(boxes[:per_image], scores):
            d = {"image_id": image["id"], "category_id": int(cat), "bbox": [float(x), float(y), float(w), float(h)],
                 "score": float(score)}
            if with_masks:
                mask = ((xx - x - w / 2) / (w / 2)) ** 2 + ((yy - y - h / 2) / (h / 2)) ** 2 <= 1
                d["segmentation"] = encode_masks(mask[None])[0]
            out.append(d)
    return out


def pycocotools_eval(path: Path, detections: list[dict], iou_type: str) -> dict:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        evaluator = COCOeval(gt, gt.loadRes(detections), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STAT_NAMES, evaluator.stats.tolist()))


def faster_coco_eval(path: Path, detections: list[dict], iou_type: str) -> dict:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        evaluator = COCOeval_faster(gt, gt.loadRes(detections), iou_type, print_function=lambda *a: None)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STAT_NAMES, list(evaluator.stats)[:12]))


def ours(path: Path, detections: list[dict], iou_type: str) -> dict:
    return coco_eval(path, detections, iou_type)


def timed(function, path, detections, iou_type) -> tuple[float, dict]:
    detections = copy.deepcopy(detections)  # pycocotools' loadRes writes into the dicts
    started = time.perf_counter()
    stats = function(path, detections, iou_type)
    return time.perf_counter() - started, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--per-image", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--iou-types", nargs="+", default=["bbox", "segm"])
    args = parser.parse_args()
    sides = {"pycocotools": pycocotools_eval, "ours": ours}
    if importlib.util.find_spec("faster_coco_eval") is not None:
        sides["faster-coco-eval"] = faster_coco_eval
    with tempfile.TemporaryDirectory() as folder:
        root = synthetic.write_coco(folder, num_train=0, num_val=args.images, num_classes=10, seed=0)
        path = layout.annotation_path(root, "val")
        gt = json.loads(path.read_text())
        print(f"ground truth: {len(gt['images'])} images, {len(gt['annotations'])} objects "
              f"({sum(a['iscrowd'] for a in gt['annotations'])} crowd)")
        for iou_type in args.iou_types:
            detections = make_detections(gt, args.per_image, iou_type == "segm", seed=1)
            seconds = {name: [] for name in sides}
            ratios, stats = [], {}
            for pair in range(args.pairs):
                names = list(sides) if pair % 2 == 0 else list(reversed(sides))
                for name in names:
                    took, stats[name] = timed(sides[name], path, detections, iou_type)
                    seconds[name].append(took)
                ratios.append(seconds["pycocotools"][-1] / seconds["ours"][-1])
            for name in sides:
                difference = max(abs(stats[name][k] - stats["pycocotools"][k]) for k in STAT_NAMES)
                print(f"{iou_type}: {name:17s} median {statistics.median(seconds[name]):7.3f} s  "
                      f"AP {stats[name]['AP']:.4f}  max |stat - pycocotools| {difference:.1e}")
            print(f"{iou_type}: {len(detections)} detections  speedup={statistics.median(ratios):.1f}")


if __name__ == "__main__":
    main()
