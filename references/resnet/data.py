"""The timed input pipeline (spec §1): read the prepared JPEG tree, decode, augment.

Train: TF's ``sample_distorted_bounding_box`` crop of the whole image (min object covered
0.1, aspect [0.75, 1.33], area [0.05, 1], 100 tries, else the full image), horizontal flip
with p = 0.5, bilinear resize to 224×224 ignoring aspect, RGB mean subtraction (no std).
Eval: resize the short side to 256 keeping aspect, centre 224 crop, same means.

Resizing reproduces TF1's ``resize_images`` (bilinear, ``align_corners=False``, no half-pixel
centres: source = destination × in/out), so the pixels are the reference's rather than
PyTorch's half-pixel ``interpolate``. Every random draw of a sample comes from a generator
seeded by (run seed, epoch, sample index): the augmentation is the same whatever the number
of loader workers or ranks.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.data
from PIL import Image

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


# --- the dataset index -------------------------------------------------------------------
class ImageIndex:
    """Image paths and class indices of one split. The class index is the wnid's rank in
    sorted order (REF's TFRecord label − 1). ``prepare`` writes ``classes.txt`` and
    ``<split>.txt``; without them the folders are scanned (on the clock, like any reading)."""

    def __init__(self, root: Path, split: str):
        root = Path(root)
        classes_file, list_file = root / "classes.txt", root / f"{split}.txt"
        if classes_file.is_file() and list_file.is_file():
            self.classes = classes_file.read_text().split()
            relative = [line for line in list_file.read_text().splitlines() if line]
        else:
            self.classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
            relative = sorted(f"{wnid}/{p.name}" for wnid in self.classes if (root / split / wnid).is_dir()
                              for p in (root / split / wnid).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        position = {wnid: i for i, wnid in enumerate(self.classes)}
        self.folder = root / split
        # numpy arrays, not lists of str: loader workers read them without copying pages
        self.paths = np.array(relative)
        self.labels = np.array([position[path.split("/", 1)[0]] for path in relative], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> torch.Tensor:
        """Decode image ``i`` as RGB uint8 [3, H, W] (grey, CMYK and PNG too). Pillow, not
        torchvision.io, whose decoders are deprecated since torchvision 0.29."""
        with Image.open(self.folder / self.paths[i]) as image:
            pixels = np.array(image if image.mode == "RGB" else image.convert("RGB"))
        return torch.from_numpy(pixels).permute(2, 0, 1)


# --- augmentation -----------------------------------------------------------------------
def sample_distorted_crop(height: int, width: int, rng: np.random.Generator, min_object_covered: float = 0.1,
                          aspect_ratio_range=(0.75, 1.33), area_range=(0.05, 1.0),
                          max_attempts: int = 100) -> tuple[int, int, int, int]:
    """TF's ``sample_distorted_bounding_box`` with the whole image as the only box:
    returns (top, left, crop_height, crop_width). The crop height is uniform between the
    heights of the smallest and largest allowed areas at the drawn aspect ratio; crops
    covering less than ``min_object_covered`` of the image are rejected."""
    min_area, max_area = area_range[0] * width * height, area_range[1] * width * height
    for _ in range(max_attempts):
        aspect = rng.random() * (aspect_ratio_range[1] - aspect_ratio_range[0]) + aspect_ratio_range[0]
        crop_h = int(np.rint(np.sqrt(min_area / aspect)))
        max_h = int(np.rint(np.sqrt(max_area / aspect)))
        if np.rint(max_h * aspect) > width:  # the largest height whose rounded width fits
            max_h = int((width + 0.5 - 1e-7) / aspect)
            if np.rint(max_h * aspect) > width:
                max_h -= 1
        max_h = min(max_h, height)
        crop_h = min(crop_h, max_h)
        if crop_h < max_h:
            crop_h += int(rng.integers(0, max_h - crop_h + 1))
        crop_w = int(np.rint(crop_h * aspect))
        area = crop_w * crop_h
        if area < min_area:  # rounding: try one row bigger, then one smaller
            crop_h += 1
            crop_w = int(np.rint(crop_h * aspect))
            area = crop_w * crop_h
        if area > max_area:
            crop_h -= 1
            crop_w = int(np.rint(crop_h * aspect))
            area = crop_w * crop_h
        if not (min_area <= area <= max_area and 0 < crop_w <= width and 0 < crop_h <= height):
            continue
        top = int(rng.integers(0, height - crop_h)) if crop_h < height else 0
        left = int(rng.integers(0, width - crop_w)) if crop_w < width else 0
        if area >= 1 and area / (width * height) >= min_object_covered:
            return top, left, crop_h, crop_w
    return 0, 0, height, width


@functools.lru_cache(maxsize=4096)
def source_positions(in_size: int, out_size: int) -> torch.Tensor:
    """TF1 legacy bilinear along one axis: output pixel i samples the source at
    i × in/out (float32), clamped to the last pixel. PyTorch's half-pixel rule would be
    (i + 0.5) × in/out − 0.5."""
    return torch.arange(out_size, dtype=torch.float32) * (np.float32(in_size) / np.float32(out_size))


def resize_bilinear(image: torch.Tensor, height: int, width: int, rows: slice = slice(None),
                    cols: slice = slice(None)) -> torch.Tensor:
    """Resize uint8 [3, H, W] to float32 [3, height, width] with TF1's sampling positions;
    ``rows``/``cols`` keep only part of the output, so a centre crop costs only the pixels it
    keeps. ``grid_sample`` does the bilinear taps (border padding = TF's clamp at the edge)."""
    in_height, in_width = image.shape[1], image.shape[2]
    # grid_sample (align_corners=False) reads normalised g at pixel ((g + 1)·size − 1) / 2
    grid_y = (2 * source_positions(in_height, height)[rows] + 1) / in_height - 1
    grid_x = (2 * source_positions(in_width, width)[cols] + 1) / in_width - 1
    grid = torch.stack([grid_x.expand(len(grid_y), -1), grid_y[:, None].expand(-1, len(grid_x))], dim=-1)
    return F.grid_sample(image[None].float(), grid[None], mode="bilinear", padding_mode="border",
                         align_corners=False)[0]


def eval_resized_size(height: int, width: int, resize_min: int) -> tuple[int, int]:
    """REF ``_smallest_size_at_least``: scale the short side to ``resize_min``, float32 and
    truncated to int as TF computes it."""
    scale = np.float32(resize_min) / np.float32(min(height, width))
    return int(np.float32(height) * scale), int(np.float32(width) * scale)


class TrainImages(torch.utils.data.Dataset):
    """Items are ``(sample_index, epoch)`` pairs from :class:`ShardedBatchSampler`."""

    def __init__(self, index: ImageIndex, settings, seed: int, label_offset: int):
        self.index, self.settings, self.seed, self.label_offset = index, settings, seed, label_offset
        self.means = torch.tensor(settings.channel_means, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item):
        i, epoch = item
        s = self.settings
        rng = np.random.default_rng((self.seed, epoch, i))
        image = self.index.read(i)
        top, left, h, w = sample_distorted_crop(image.shape[1], image.shape[2], rng, s.crop_min_object_covered,
                                                s.crop_aspect_ratio_range, s.crop_area_range, s.crop_max_attempts)
        crop = image[:, top:top + h, left:left + w]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        pixels = resize_bilinear(crop, s.image_size, s.image_size) - self.means
        return pixels, int(self.index.labels[i]) + self.label_offset


class EvalImages(torch.utils.data.Dataset):
    def __init__(self, index: ImageIndex, settings, label_offset: int, indices: range):
        self.index, self.settings, self.label_offset, self.indices = index, settings, label_offset, indices
        self.means = torch.tensor(settings.channel_means, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item):
        i = self.indices[item]
        size = self.settings.image_size
        image = self.index.read(i)
        height, width = eval_resized_size(image.shape[1], image.shape[2], self.settings.eval_resize)
        top, left = (height - size) // 2, (width - size) // 2
        pixels = resize_bilinear(image, height, width, slice(top, top + size), slice(left, left + size))
        return pixels - self.means, int(self.index.labels[i]) + self.label_offset


class ShardedBatchSampler:
    """This rank's part of each global batch of a fresh permutation every epoch.

    Every rank draws the same permutation (seeded by run seed and epoch) and keeps its
    contiguous slice of each global batch, so each sample is seen once per epoch across
    the ranks. The last global batch may be short (N mod B samples); it is split evenly
    and the < world_size samples left over are skipped this epoch.
    """

    def __init__(self, num_samples: int, global_batch_size: int, rank: int, world_size: int, seed: int):
        self.num_samples, self.global_batch_size = num_samples, global_batch_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batch_sizes(self) -> list[int]:
        """Per-rank batch size of each step of an epoch."""
        full, rest = divmod(self.num_samples, self.global_batch_size)
        sizes = [self.global_batch_size // self.world_size] * full
        if rest // self.world_size:
            sizes.append(rest // self.world_size)
        return sizes

    def __len__(self) -> int:
        return len(self.batch_sizes())

    def __iter__(self):
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.num_samples)
        for step, per_rank in enumerate(self.batch_sizes()):
            start = step * self.global_batch_size + self.rank * per_rank
            yield [(int(i), self.epoch) for i in order[start:start + per_rank]]
