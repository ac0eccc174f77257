"""Small COCO-2017-format data for the small presets, written in the real layout (layout.py).

Each class is a shape (circle, square, triangle, ...) with a colour and a striped texture of
its own; a small detector learns them in minutes. Every image has its own size, a noisy
low-saturation background and 1..``max_objects`` objects of varied size (small, medium and
large in COCO's area ranges) and position. Objects never share pixels, so every polygon is
the exact outline of what is visible, but their boxes may overlap.

Like the real files, the annotation JSON has non-contiguous category ids, 12-digit file
names, polygon ``segmentation``s with their mask ``area``, a few ``iscrowd=1`` regions (a
cluster of small objects of one class, as an uncompressed RLE), a few images without
annotations, and one greyscale JPEG. Output depends only on the arguments.
"""
from __future__ import annotations

import colorsys
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from references.coco import layout

SHAPES = ("circle", "square", "triangle", "diamond", "hexagon", "star", "cross", "ellipse",
          "pentagon", "half_disc")


def category_ids(num_classes: int) -> list[int]:
    """Non-contiguous, increasing COCO-like ids: 1, 5, 7, 11, 13, 17, ..."""
    ids = [1 + 3 * k + k % 2 for k in range(num_classes)]
    assert all(b - a >= 2 for a, b in zip(ids, ids[1:])), ids
    return ids


def _unit_polygon(shape: str) -> np.ndarray:
    """The outline of ``shape`` in [-1, 1]², as [K, 2] (x, y) points."""
    def regular(k, phase=-math.pi / 2):
        t = phase + 2 * math.pi * np.arange(k) / k
        return np.stack([np.cos(t), np.sin(t)], 1)

    if shape == "circle":
        return regular(32)
    if shape == "ellipse":
        return regular(32) * [1.0, 0.5]
    if shape == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * 0.85
    if shape == "triangle":
        return regular(3) * [1.0, 1.0] + [0, 0.25]
    if shape == "diamond":
        return np.array([[0, -1], [0.7, 0], [0, 1], [-0.7, 0]], float)
    if shape == "hexagon":
        return regular(6, 0.0)
    if shape == "pentagon":
        return regular(5)
    if shape == "star":
        outer, inner = regular(5), regular(5, -math.pi / 2 + math.pi / 5) * 0.45
        return np.stack([outer, inner], 1).reshape(-1, 2)
    if shape == "cross":
        a, b = 1.0, 0.33
        return np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b],
                         [-a, b], [-a, -b], [-b, -b]], float)
    if shape == "half_disc":
        t = np.linspace(0, math.pi, 17)
        return np.stack([np.cos(t), 0.5 - np.sin(t) * 1.0], 1) * [1.0, 1.0]
    raise ValueError(shape)


def class_styles(num_classes: int) -> list[dict]:
    """Per class: a shape, a hue and a stripe angle/period (distinct for neighbours)."""
    styles = []
    for c in range(num_classes):
        styles.append({"shape": SHAPES[c % len(SHAPES)],
                       "hue": ((c * 7) % num_classes) / num_classes,
                       "angle": math.pi * ((c * 3) % 8) / 8,
                       "period": 4.0 + 3.0 * (c % 4)})
    return styles


def _background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    base = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.25), rng.uniform(0.3, 0.8)), np.float32) * 255
    ramp_x = np.linspace(0, rng.normal(0, 40), width, dtype=np.float32)
    ramp_y = np.linspace(0, rng.normal(0, 40), height, dtype=np.float32)
    noise = rng.standard_normal(size=(height, width, 3), dtype=np.float32) * 18
    return base + (ramp_y[:, None] + ramp_x[None, :])[..., None] + noise


def _paint(image: np.ndarray, mask: np.ndarray, style: dict, rng: np.random.Generator) -> None:
    """Fill ``mask`` of ``image`` with the class's striped colour (jittered per object)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    hue = (style["hue"] + rng.normal(0, 0.015)) % 1.0
    angle = style["angle"] + rng.normal(0, 0.1)
    y, x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / style["period"] + rng.uniform(0, 6.3))
    dark = np.array(colorsys.hsv_to_rgb(hue, 0.9, rng.uniform(0.45, 0.6)), np.float32)
    light = np.array(colorsys.hsv_to_rgb(hue, 0.6, rng.uniform(0.9, 1.0)), np.float32)
    texture = (dark + (light - dark) * (0.5 + 0.5 * wave)[..., None]) * 255
    inside = mask[y0:y1, x0:x1]
    image[y0:y1, x0:x1][inside] = texture[inside]


def _place(shape: str, size: float, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The shape's outline at a random scale, stretch, rotation and position inside the image."""
    stretch = math.exp(rng.uniform(-0.25, 0.25))
    angle = rng.uniform(-0.3, 0.3)
    points = _unit_polygon(shape) * [size / 2 * stretch, size / 2 / stretch]
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = points @ rotation.T
    low, high = points.min(0), points.max(0)
    cx = rng.uniform(-low[0], width - high[0]) if width - high[0] > -low[0] else width / 2
    cy = rng.uniform(-low[1], height - high[1]) if height - high[1] > -low[1] else height / 2
    return np.clip(points + [cx, cy], 0, [width - 0.01, height - 0.01])


def _mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in points], fill=1)
    return np.asarray(canvas, dtype=bool)


def _sizes(rng: np.random.Generator, short_side: int, count: int, object_size: tuple[float, float]) -> np.ndarray:
    # log-uniform over the range (5% to 60% of the short side by default, spec ssd.md §9):
    # small, medium and large objects in COCO's area ranges
    low, high = object_size
    return short_side * np.exp(rng.uniform(math.log(low), math.log(high), size=count))


def _draw_image(height: int, width: int, styles: list[dict], *, max_objects: int, object_size: tuple[float, float],
                empty: bool, crowd: bool, rng: np.random.Generator):
    """An RGB uint8 image and its objects: (class index, polygon [K, 2] or None, mask, crowd)."""
    image = _background(height, width, rng)
    occupied = np.zeros((height, width), bool)
    objects = []
    if not empty:
        count = int(rng.integers(1, max_objects + 1))
        for size in _sizes(rng, min(height, width), count, object_size):
            cls = int(rng.integers(len(styles)))
            for _ in range(20):  # tries until the shape lands on free pixels
                points = _place(styles[cls]["shape"], max(size, 8.0), height, width, rng)
                mask = _mask(points, height, width)
                if mask.sum() >= 16 and not (mask & occupied).any():
                    break
            else:
                continue
            _paint(image, mask, styles[cls], rng)
            occupied |= mask
            objects.append((cls, points, mask, False))
    if crowd:
        # a crowd: a tight cluster of small objects of one class, annotated as one RLE region
        cls = int(rng.integers(len(styles)))
        region = np.zeros((height, width), bool)
        centre = rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height])
        spread = 0.12 * min(height, width)
        for _ in range(int(rng.integers(5, 10))):
            size = min(height, width) * rng.uniform(0.05, 0.09)
            points = _place(styles[cls]["shape"], size, 2 * spread, 2 * spread, rng) + centre - spread
            points = np.clip(points, 0, [width - 0.01, height - 0.01])
            mask = _mask(points, height, width)
            if (mask & occupied).any() or mask.sum() < 4:
                continue
            _paint(image, mask, styles[cls], rng)
            occupied |= mask
            region |= mask
        if region.any():
            objects.append((cls, None, region, True))
    return np.clip(image, 0, 255).astype(np.uint8), objects


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE (as the real crowd annotations): column-major run lengths,
    starting with a run of zeros."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0, *runs]
    return {"counts": runs, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _sample_size(image_size, rng: np.random.Generator) -> tuple[int, int]:
    (h, w) = image_size
    if isinstance(h, (tuple, list)):
        return int(rng.integers(h[0], h[1] + 1)), int(rng.integers(w[0], w[1] + 1))
    return int(h), int(w)


def write_split(root: Path, split: str, num_images: int, *, image_size, num_classes: int, seed: int,
                max_objects: int = 5, object_size: tuple[float, float] = (0.05, 0.6), empty_fraction: float = 0.03,
                crowd_fraction: float = 0.04, num_greyscale: int = 1, quality: int = 90) -> dict:
    """Write ``{split}2017/*.jpg`` and ``annotations/instances_{split}2017.json``; returns the
    annotation dict."""
    from pycocotools import mask as mask_utils

    split_seed = seed * 2 + (0 if split == "train" else 1)
    rng = np.random.default_rng([split_seed, 0])
    styles = class_styles(num_classes)
    cats = category_ids(num_classes)
    # ids up to 581,929 as in the real set, odd for train and even for val: unique across splits
    offset = 1 if split == "train" else 2
    image_ids = sorted(int(i) * 2 + offset for i in rng.choice(290_964, size=num_images, replace=False))
    num_empty = max(1, round(empty_fraction * num_images)) if num_images >= 10 else 0
    num_crowd = max(1, round(crowd_fraction * num_images)) if num_images >= 10 else 0
    special = rng.permutation(num_images)
    empty_set = set(special[:num_empty].tolist())
    crowd_set = set(special[num_empty:num_empty + num_crowd].tolist())
    grey_set = set(special[num_empty + num_crowd:num_empty + num_crowd + num_greyscale].tolist())
    folder = layout.image_dir(root, split)
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    next_ann_id = int(rng.integers(1, 10**6))
    for index, image_id in enumerate(image_ids):
        image_rng = np.random.default_rng([split_seed, 1, index])
        height, width = _sample_size(image_size, image_rng)
        pixels, objects = _draw_image(height, width, styles, max_objects=max_objects, object_size=object_size,
                                      empty=index in empty_set, crowd=index in crowd_set, rng=image_rng)
        picture = Image.fromarray(pixels)
        if index in grey_set:
            picture = picture.convert("L")
        file_name = layout.image_file_name(image_id)
        picture.save(folder / file_name, format="JPEG", quality=quality)
        images.append({"license": 1, "file_name": file_name, "coco_url": "", "height": height, "width": width,
                       "date_captured": "2026-12-01 00:00:00", "flickr_url": "", "id": image_id})
        for cls, points, mask, is_crowd in objects:
            if is_crowd:
                segmentation = _uncompressed_rle(mask)
                rle = mask_utils.frPyObjects(segmentation, height, width)
            else:
                segmentation = [[round(float(v), 2) for v in points.reshape(-1)]]
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            if not is_crowd:  # the polygon's own extent, as COCO's boxes
                (x, y), (x2, y2) = points.min(0), points.max(0)
                x, y, w, h = float(x), float(y), float(x2 - x), float(y2 - y)
            annotations.append({"segmentation": segmentation, "area": float(mask_utils.area(rle)),
                                "iscrowd": int(is_crowd), "image_id": image_id,
                                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                                "category_id": cats[cls], "id": next_ann_id})
            next_ann_id += 1
    categories = [{"supercategory": "shape", "id": cat, "name": f"{styles[c]['shape']}_{c}"}
                  for c, cat in enumerate(cats)]
    data = {"info": {"description": "mlperf-train generated COCO-format data", "version": "1.0",
                     "year": 2026, "contributor": "references/coco/synthetic.py", "date_created": "2026/12/01"},
            "licenses": [{"url": "", "id": 1, "name": "generated"}],
            "images": images, "annotations": annotations, "categories": categories}
    path = layout.annotation_path(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return data


def write_coco(root: str | Path, *, num_train: int, num_val: int, num_classes: int, seed: int,
               image_size=((160, 320), (160, 320)), max_objects: int = 5,
               object_size: tuple[float, float] = (0.05, 0.6), empty_fraction: float = 0.03,
               crowd_fraction: float = 0.04) -> Path:
    """Write a COCO-2017-layout folder at ``root`` and return it.

    ``image_size``: ``(h, w)`` for a fixed size, or ``((h_min, h_max), (w_min, w_max))``
    for sizes drawn per image (inclusive). ``object_size``: the range of an object's size
    as a share of the image's short side (log-uniform). ``max_objects``: 1..max_objects
    objects per non-empty image (fewer when they do not fit without touching). ``num_classes``: 1..len(SHAPES)×k (shapes repeat
    with other colours past 10). ``empty_fraction`` / ``crowd_fraction``: the share of
    images with no annotation / with one crowd region (at least one each when a split has
    10 images or more). Deterministic given the arguments.
    """
    if num_classes < 1 or num_train < 0 or num_val < 0:
        raise ValueError(f"write_coco: num_classes {num_classes}, num_train {num_train}, num_val {num_val}")
    root = Path(root)
    if not 0 < object_size[0] <= object_size[1] <= 1:
        raise ValueError(f"write_coco: object_size {object_size}: expected 0 < low <= high <= 1 (share of the short side)")
    for split, count in (("train", num_train), ("val", num_val)):
        write_split(root, split, count, image_size=image_size, num_classes=num_classes, seed=seed,
                    max_objects=max_objects, object_size=object_size, empty_fraction=empty_fraction,
                    crowd_fraction=crowd_fraction)
    return root
