"""A small ImageNet look-alike in the raw on-disk layout (spec §9), for the small preset.

``SRC/train/<wnid>/<wnid>_<i>.JPEG``, a flat ``SRC/val/ILSVRC2012_val_<8 digits>.JPEG`` and
Kaggle's ``LOC_val_solution.csv``: what ``prepare`` gets from a real download. Like the real
data it holds one PNG saved under a ``.JPEG`` name, one CMYK JPEG and one greyscale JPEG.

Each class is a colour (hue) with an oriented sinusoidal grating of its own angle and
frequency; every image jitters hue, angle, frequency and phase, adds a blob of random
colour and pixel noise, and has its own size (64–160 px, aspect 3:4 to 4:3). Neighbouring
hues overlap, so the network has to use the texture as well as the colour.
"""
from __future__ import annotations

import colorsys
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from mlperf_train.progress import track


def class_styles(num_classes: int, rng: np.random.Generator) -> list[dict]:
    styles = []
    for c in range(num_classes):
        # angles in [0°, 90°]: a flip maps θ to −θ, which must not look like another class
        styles.append({"hue": c / num_classes, "angle": np.pi / 2 * ((c * 3) % num_classes) / num_classes,
                       "period": 6.0 + 10.0 * ((c * 7) % num_classes) / num_classes})
    return styles


def draw(style: dict, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 image of a class."""
    hue = (style["hue"] + rng.normal(0, 0.03)) % 1.0
    angle = style["angle"] + rng.normal(0, 0.1)
    period = style["period"] * rng.uniform(0.85, 1.15)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi))
    dark = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.35), np.float32)
    light = np.array(colorsys.hsv_to_rgb(hue, 0.5, 0.95), np.float32)
    image = (dark + (light - dark) * (0.5 + 0.5 * wave)[..., None]) * 255
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    ry, rx = rng.uniform(0.1, 0.3) * height, rng.uniform(0.1, 0.3) * width
    blob = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
    image[blob] = rng.uniform(0, 255, size=3)
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_raw_imagenet(root: Path, num_classes: int, train_per_class: int, val_per_class: int,
                       min_size: int, max_size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    root = Path(root)
    wnids = sorted(f"n{n:08d}" for n in rng.choice(10**8, size=num_classes, replace=False))
    styles = class_styles(num_classes, rng)

    def sample(c: int) -> Image.Image:
        short = int(rng.integers(min_size, max_size * 3 // 4 + 1))
        long = int(min(short * rng.uniform(1.0, 4 / 3), max_size))
        height, width = (short, long) if rng.random() < 0.5 else (long, short)
        return Image.fromarray(draw(styles[c], height, width, rng))

    for c, wnid in track(enumerate(wnids), total=len(wnids), desc="train classes", unit="class"):
        (root / "train" / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(train_per_class):
            image, path = sample(c), root / "train" / wnid / f"{wnid}_{i}.JPEG"
            if c == 0 and i == 0:      # like n02105855_2933.JPEG, a PNG with a JPEG name
                image.save(path, "PNG")
            elif c == 1 and i == 0:    # ImageNet holds a few CMYK JPEGs
                image.convert("CMYK").save(path, "JPEG", quality=90)
            elif c == 2 and i == 0:    # and greyscale ones
                image.convert("L").save(path, "JPEG", quality=90)
            else:
                image.save(path, "JPEG", quality=90)
    (root / "val").mkdir(parents=True, exist_ok=True)
    labels = [c for c in range(num_classes) for _ in range(val_per_class)]
    rng.shuffle(labels)
    rows = []
    for n, c in enumerate(labels, start=1):
        name = f"ILSVRC2012_val_{n:08d}"
        image = sample(c)
        if n == 1:
            image.convert("CMYK").save(root / "val" / f"{name}.JPEG", "JPEG", quality=90)
        else:
            image.save(root / "val" / f"{name}.JPEG", "JPEG", quality=90)
        rows.append({"ImageId": name, "PredictionString": f"{wnids[c]} 0 0 {image.width - 1} {image.height - 1} "})
    with open(root / "LOC_val_solution.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["ImageId", "PredictionString"])
        writer.writeheader()
        writer.writerows(rows)
