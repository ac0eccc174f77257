"""Small generated COCO data and detections shared by the COCO package tests and workers."""
from __future__ import annotations

import numpy as np

GENERATE = dict(num_train=24, num_val=30, num_classes=4, seed=3, image_size=((80, 128), (80, 128)),
                empty_fraction=0.1, crowd_fraction=0.2)


def noisy_detections(gt: dict, *, seed: int, with_masks: bool = False) -> list[dict]:
    """Detections that are GT boxes (crowd regions included) moved by a few pixels, some with
    the wrong class, some dropped, plus random false positives; random scores with ties."""
    from pycocotools import mask as mask_utils

    from references.coco.evaluation import encode_masks

    rng = np.random.default_rng(seed)
    images = {i["id"]: i for i in gt["images"]}
    cats = [c["id"] for c in gt["categories"]]
    out = []
    for ann in gt["annotations"]:
        if rng.random() < 0.15:
            continue
        x, y, w, h = ann["bbox"]
        dx, dy = rng.normal(0, 0.08 * w), rng.normal(0, 0.08 * h)
        cat = ann["category_id"] if rng.random() < 0.85 else int(rng.choice(cats))
        out.append({"image_id": ann["image_id"], "category_id": cat, "bbox": [x + dx, y + dy, w, h],
                    "score": float(np.round(rng.uniform(0.05, 1.0), 2))})
    for image in gt["images"]:
        for _ in range(int(rng.integers(0, 4))):
            w, h = rng.uniform(4, image["width"] / 2), rng.uniform(4, image["height"] / 2)
            out.append({"image_id": image["id"], "category_id": int(rng.choice(cats)),
                        "bbox": [rng.uniform(0, image["width"] - w), rng.uniform(0, image["height"] - h), w, h],
                        "score": float(np.round(rng.uniform(0.05, 0.6), 2))})
    if with_masks:
        for d in out:
            image = images[d["image_id"]]
            mask = np.zeros((1, image["height"], image["width"]), np.uint8)
            x, y, w, h = (int(round(v)) for v in d["bbox"])
            mask[0, max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = 1
            if rng.random() < 0.5:  # an elliptic mask inside the box
                yy, xx = np.mgrid[0:image["height"], 0:image["width"]]
                mask[0] &= (((xx - x - w / 2) / max(w / 2, 1)) ** 2 + ((yy - y - h / 2) / max(h / 2, 1)) ** 2 <= 1)
            d["segmentation"] = encode_masks(mask)[0]
            d["bbox"] = [float(v) for v in mask_utils.toBbox(d["segmentation"])]
    return out
