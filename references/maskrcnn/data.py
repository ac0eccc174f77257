"""The timed input pipeline (spec §1): decode, resize to short side ``min_size`` (long side
at most ``max_size``, integer sizes as the reference's ``get_size``), horizontal flip
(train), BGR×255 minus the pixel means, zero padding of each batch to a multiple of 32, and
aspect-ratio grouped batches. Boxes use the reference's "+1" convention (x2 = x + w − 1).

Reading the COCO files and the category mapping is ``references.coco.dataset``'s.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.utils.data
from torchvision.transforms.v2 import functional as TF

from references.coco.dataset import CocoIndex, load_image

PIXEL_MEANS_BGR = (102.9801, 115.9465, 122.7717)
SIZE_DIVISIBILITY = 32


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(h, w) after the reference's resize: short side ``min_size`` unless the long side
    would pass ``max_size``, then short side round(max_size·short/long); sizes truncated."""
    size = min_size
    short, long = min(height, width), max(height, width)
    if long / short * size > max_size:
        size = int(round(max_size * short / long))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def normalise(image: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (3, H, W) -> float BGR×255 minus the pixel means (std 1)."""
    means = torch.tensor(PIXEL_MEANS_BGR).view(3, 1, 1)
    return image.flip(0).float() - means


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a uint8 (3, H, W) image (antialiased, as PIL's)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return TF.resize(image, list(size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)


def reference_boxes(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """COCO boxes (x, y, x + w, y + h) -> the reference's (x, y, x + w − 1, y + h − 1),
    clipped to the image; returns (boxes, keep) without the empty ones (``clip_to_image``)."""
    boxes = boxes.clone()
    boxes[:, 2:] -= 1
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height - 1)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep], keep


class TrainImages(torch.utils.data.Dataset):
    """Item ``(i, flip)`` -> (image (3, h, w) normalised, target {boxes (n, 4), labels (n,),
    polygons: n lists of flat float arrays}), all in the resized (and flipped) image."""

    def __init__(self, index: CocoIndex, min_size: int, max_size: int):
        self.index, self.min_size, self.max_size = index, min_size, max_size

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item):
        i, flip = item
        record = self.index.record(i)
        image = load_image(record.path)
        height, width = image.shape[-2:]
        boxes, keep = reference_boxes(record.boxes, height, width)
        labels = record.labels[keep]
        polygons = [[np.asarray(p, dtype=np.float64) for p in polys]
                    for polys, k in zip(record.polygons, keep.tolist()) if k]
        new_h, new_w = resized_size(height, width, self.min_size, self.max_size)
        image = resize_image(image, (new_h, new_w))
        ratio_w, ratio_h = new_w / width, new_h / height
        boxes = boxes * torch.tensor([ratio_w, ratio_h, ratio_w, ratio_h])
        for polys in polygons:
            for p in polys:
                p[0::2] *= ratio_w
                p[1::2] *= ratio_h
        if flip:
            image = image.flip(-1)
            boxes = torch.stack([new_w - boxes[:, 2] - 1, boxes[:, 1], new_w - boxes[:, 0] - 1, boxes[:, 3]], dim=1)
            for polys in polygons:
                for p in polys:
                    p[0::2] = new_w - p[0::2] - 1
        return normalise(image), {"boxes": boxes, "labels": labels, "polygons": polygons}


class EvalImages(torch.utils.data.Dataset):
    """Item j of ``positions`` (indices into the index) -> (image normalised, info
    {image_id, size (h, w) resized, original (h, w)})."""

    def __init__(self, index: CocoIndex, min_size: int, max_size: int, positions):
        self.index, self.min_size, self.max_size = index, min_size, max_size
        self.positions = list(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j):
        record = self.index.record(self.positions[j])
        image = load_image(record.path)
        height, width = image.shape[-2:]
        new_h, new_w = resized_size(height, width, self.min_size, self.max_size)
        image = resize_image(image, (new_h, new_w))
        return normalise(image), {"image_id": record.image_id, "original": (height, width)}


def pad_batch(items):
    """Collate: images zero-padded to the batch's max (H, W) rounded up to a multiple of
    32 -> (images (B, 3, H, W), [(h, w)], [target or info])."""
    images = [image for image, _ in items]
    height = int(math.ceil(max(i.shape[1] for i in images) / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY)
    width = int(math.ceil(max(i.shape[2] for i in images) / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY)
    batch = images[0].new_zeros((len(images), 3, height, width))
    for slot, image in zip(batch, images):
        slot[:, :image.shape[1], :image.shape[2]].copy_(image)
    return batch, [tuple(i.shape[1:]) for i in images], [extra for _, extra in items]


class GroupedShardSampler(torch.utils.data.Sampler):
    """Each epoch: a seeded permutation of the training images; rank r keeps every
    world_size-th of them (the same count on every rank); its images are batched by aspect
    group (h/w ≥ 1 or < 1) in the order they come (the reference's GroupedBatchSampler),
    and the group's leftovers are merged into mixed batches. Yields lists of (index, flip)
    with a seeded coin per image. ``len``: ⌊(N / world) / b⌋ batches of b = B / world."""

    def __init__(self, portrait: list[bool], global_batch_size: int, rank: int, world_size: int, seed: int):
        self.portrait = torch.tensor(portrait, dtype=torch.bool)
        self.local_batch = global_batch_size // world_size
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, 0
        self.per_rank = len(portrait) // world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank // self.local_batch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(len(self.portrait), generator=generator)
        flips = (torch.rand(len(self.portrait), generator=generator) < 0.5).tolist()
        mine = order[self.rank::self.world_size][:self.per_rank].tolist()
        batches, open_batches = [], {False: [], True: []}
        for i in mine:
            group = open_batches[bool(self.portrait[i])]
            group.append(i)
            if len(group) == self.local_batch:
                batches.append(list(group))
                group.clear()
        leftovers = sorted(open_batches[False] + open_batches[True], key=mine.index)
        batches += [leftovers[k:k + self.local_batch] for k in range(0, len(leftovers), self.local_batch)]
        for batch in batches[:len(self)]:
            yield [(i, flips[i]) for i in batch]
