"""The timed input pipeline of SSD (spec §1), on the shared COCO reader (``references/coco``).

Training image: PIL decode as RGB -> IoU-mode random crop (``crop.py``) -> horizontal flip
(p = 0.5) -> resize to 300×300 bilinear, aspect ratio ignored -> ``ColorJitter(0.125, 0.5,
0.5, 0.05)`` -> [0, 1] -> ImageNet mean/std -> targets encoded against the 8,732 default
boxes (``boxes.encode``). Evaluation image: resize and normalise only.
"""
from __future__ import annotations

import random

import torch
from PIL import Image
from torchvision.transforms import ColorJitter
from torchvision.transforms import functional as TF

from references.ssd import boxes as box_ops
from references.ssd.crop import crop_boxes, crop_window, pixel_window

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
JITTER = dict(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.05)


def open_rgb(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def to_normalised_tensor(image: Image.Image) -> torch.Tensor:
    return TF.normalize(TF.to_tensor(image), MEAN, STD)


class TrainImages(torch.utils.data.Dataset):
    """Item ``i`` of a ``CocoIndex`` (crowd boxes kept as ordinary ground truth, spec §1) ->
    ``(image (3, S, S) float32, offsets (8732, 4) float32, labels (8732,) int64)``.

    Random draws: Python's ``random`` for the crop and flip, as the reference (a loader
    worker's is seeded by the loader), torch's for the jitter."""

    def __init__(self, index, image_size: int, max_samples: int, dboxes: torch.Tensor):
        self.index, self.image_size, self.max_samples, self.dboxes = index, image_size, max_samples, dboxes
        self.jitter = ColorJitter(**JITTER)

    def __len__(self):
        return len(self.index.image_ids)

    def __getitem__(self, i):
        record = self.index.record(i)
        image = open_rgb(record.path)
        width, height = image.size
        boxes = record.boxes.float() / torch.tensor([width, height, width, height], dtype=torch.float32)
        labels = record.labels
        window = crop_window(boxes, self.max_samples, random) if len(boxes) else None
        if window is not None:
            image = image.crop(pixel_window(window, width, height))
            boxes, labels = crop_boxes(boxes, window), labels[window[4]]
        if random.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
            boxes = torch.stack([1.0 - boxes[:, 2], boxes[:, 1], 1.0 - boxes[:, 0], boxes[:, 3]], dim=1)
        image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
        image = self.jitter(image)
        offsets, dbox_labels = box_ops.encode(boxes, labels, self.dboxes)
        return to_normalised_tensor(image), offsets, dbox_labels


class EvalImages(torch.utils.data.Dataset):
    """The evaluation images of this rank (``positions`` of a ``CocoIndex``) -> ``(image
    (3, S, S), image_id, original height, original width)``."""

    def __init__(self, index, image_size: int, positions):
        self.index, self.image_size, self.positions = index, image_size, list(positions)

    def __len__(self):
        return len(self.positions)

    def __getitem__(self, k):
        record = self.index.record(self.positions[k])
        image = open_rgb(record.path)
        width, height = image.size
        image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
        return to_normalised_tensor(image), record.image_id, height, width
