"""Reading annotations of the real train set's size: ``CocoIndex`` against pycocotools' ``COCO``
(the references' reader), side by side.

    python perf/coco_index_scale.py [--scale 1.0] [--pairs 2]

Writes an ``instances_train2017.json`` with COCO 2017 train's counts times ``--scale``
(118,287 images, 860,001 objects of which 1 % crowd, 1,021 images without annotations;
polygons of 24 points) and no JPEGs, then times ``CocoIndex(root, "train", skip_empty=True,
skip_crowd=False)`` and ``pycocotools.coco.COCO(path)`` alternately. Prints the median seconds
of each, the kept image count, the process's peak RSS, and
``ratio=<median of per-pair CocoIndex/pycocotools>`` (below 1: faster than the reference's
reader). Needs about 4 GB of memory at scale 1.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import tempfile
import time

import numpy as np

from references.coco import layout
from references.coco.dataset import CocoIndex

TRAIN_IMAGES, TRAIN_OBJECTS, EMPTY_IMAGES = 118_287, 860_001, 1_021


def write_annotations(root, scale: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    num_images = int(TRAIN_IMAGES * scale)
    num_objects = int(TRAIN_OBJECTS * scale)
    num_empty = int(EMPTY_IMAGES * scale)
    ids = (rng.choice(290_964, size=num_images, replace=False) * 2 + 1).tolist()
    images = [{"license": 1, "file_name": layout.image_file_name(i), "coco_url": "", "height": 480, "width": 640,
               "date_captured": "", "flickr_url": "", "id": i} for i in ids]
    # every image but the empty ones gets an object, the rest are spread at random
    owners = np.concatenate([ids[num_empty:], rng.choice(ids[num_empty:], size=num_objects - num_images + num_empty)])
    polygon = [round(float(v), 2) for v in rng.uniform(0, 400, size=48)]
    annotations = []
    for k, image_id in enumerate(owners.tolist()):
        crowd = k % 100 == 0
        segmentation = {"counts": [1000, 50, 430, 50, 305670], "size": [480, 640]} if crowd else [polygon]
        annotations.append({"segmentation": segmentation, "area": 1234.5, "iscrowd": int(crowd), "image_id": image_id,
                            "bbox": [10.0, 20.0, 30.0, 40.0], "category_id": 1 + (k % 80), "id": k + 1})
    categories = [{"supercategory": "x", "id": c, "name": str(c)} for c in range(1, 81)]
    path = layout.annotation_path(root, "train")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return num_images - num_empty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    from pycocotools.coco import COCO

    with tempfile.TemporaryDirectory() as root:
        expected = write_annotations(root, args.scale)
        path = layout.annotation_path(root, "train")
        print(f"annotation file: {path.stat().st_size / 1e6:.0f} MB")
        times = {"CocoIndex": [], "pycocotools": []}
        ratios = []
        for pair in range(args.pairs):
            for name in (("CocoIndex", "pycocotools") if pair % 2 == 0 else ("pycocotools", "CocoIndex")):
                started = time.perf_counter()
                if name == "CocoIndex":
                    index = CocoIndex(root, "train", skip_empty=True, skip_crowd=False)
                    assert len(index) == expected, (len(index), expected)
                    del index
                else:
                    with contextlib.redirect_stdout(io.StringIO()):
                        coco = COCO(str(path))
                    del coco
                times[name].append(time.perf_counter() - started)
            ratios.append(times["CocoIndex"][-1] / times["pycocotools"][-1])
        for name, seconds in times.items():
            print(f"{name:12s} median {statistics.median(seconds):6.1f} s")
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"kept images {expected}, peak RSS {peak_gb:.1f} GB, ratio={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
