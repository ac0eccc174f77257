"""Untimed backbone pretraining for the small presets.

The real references start from ImageNet (SSD's ResNet-34) or Detectron (Mask R-CNN's R-50)
weights; a detector trained from scratch on the generated shapes learns nothing in minutes
(shared notes, round 2 §6). ``generate_small`` therefore pretrains the small backbone as a
classifier of object crops cut from the generated train split (plus a background class), and
the caller saves the result in the real artifact's format.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from references.coco.dataset import CocoIndex, load_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] RGB -> float, scaled to [0, 1] then ImageNet mean/std (SSD spec §1)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def object_crops(root, *, crop_size: int, max_crops: int, seed: int, background_share: float = 0.2,
                 split: str = "train") -> tuple[torch.Tensor, torch.Tensor, int]:
    """Crops of the objects of ``split`` (train by default), resized to ``crop_size``² with some context.

    Returns (uint8 [M, 3, S, S] crops, int64 [M] labels, C + 1 classes): label 0 for random
    background patches (``background_share`` of the crops), 1..C for objects (contiguous
    labels of ``CocoIndex``). Crowd regions are left out.
    """
    index = CocoIndex(root, split, skip_empty=False, skip_crowd=True)
    generator = torch.Generator().manual_seed(seed)
    crops, labels = [], []
    order = torch.randperm(len(index), generator=generator).tolist()
    num_objects_wanted = int(max_crops * (1 - background_share))
    num_objects = 0
    for i in order:
        if len(crops) >= max_crops:
            break
        record = index.record(i)
        image = None
        for box, label in zip(record.boxes.tolist(), record.labels.tolist()):
            if num_objects >= num_objects_wanted:
                break
            image = load_image(record.path) if image is None else image
            x1, y1, x2, y2 = box
            side = max(x2 - x1, y2 - y1) * float(1.1 + 0.4 * torch.rand((), generator=generator))
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            crops.append(_crop(image, cx - side / 2, cy - side / 2, side, crop_size))
            labels.append(label)
            num_objects += 1
        if len(crops) - num_objects < max_crops - num_objects_wanted:
            image = load_image(record.path) if image is None else image
            side = min(record.height, record.width) * float(0.15 + 0.35 * torch.rand((), generator=generator))
            x = float(torch.rand((), generator=generator)) * (record.width - side)
            y = float(torch.rand((), generator=generator)) * (record.height - side)
            crops.append(_crop(image, x, y, side, crop_size))
            labels.append(0)  # may contain part of an object: a background patch as a detector sees it
    if not crops:
        raise ValueError(f"{root}: no objects in the train split to pretrain on")
    return torch.stack(crops), torch.tensor(labels, dtype=torch.int64), index.num_classes + 1


def _crop(image: torch.Tensor, x: float, y: float, side: float, size: int) -> torch.Tensor:
    """The square ``[x, x+side) × [y, y+side)`` of ``image`` (zero outside), resized."""
    _, height, width = image.shape
    x0, y0, s = int(round(x)), int(round(y)), max(int(round(side)), 1)
    padded = F.pad(image, (max(0, -x0), max(0, x0 + s - width), max(0, -y0), max(0, y0 + s - height)))
    x0, y0 = max(x0, 0), max(y0, 0)
    patch = padded[:, y0:y0 + s, x0:x0 + s].float().unsqueeze(0)
    return F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False)[0].round().byte()


class _Classifier(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(feature_dim, num_classes)

    def forward(self, x):
        features = self.backbone(x)
        if isinstance(features, dict):  # e.g. an FPN body or IntermediateLayerGetter: the last map
            features = list(features.values())[-1]
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        return self.head(features)


def pretrain_classifier(backbone: torch.nn.Module, feature_dim: int, root, *, steps: int, seed: int,
                        batch_size: int = 64, crop_size: int = 64, lr: float = 0.05, weight_decay: float = 1e-4,
                        max_crops: int = 6000, normalize: Callable[[torch.Tensor], torch.Tensor] = imagenet_normalize,
                        history: list | None = None) -> dict[str, torch.Tensor]:
    """Train ``backbone`` as a crop classifier on the generated train split; return its
    ``state_dict`` (the backbone's own keys, no head).

    ``backbone``: maps float [B, 3, S, S] to [B, feature_dim, h, w], [B, feature_dim] or a
    dict of maps (the last is pooled). ``normalize``: uint8 [B, 3, S, S] RGB -> the input
    the detector will feed (ImageNet mean/std by default; Mask R-CNN passes its BGR×255).
    SGD with momentum 0.9, cosine LR from ``lr``, random flips and crops' context jitter.
    ``history``, when given, receives ``(step, loss, accuracy_of_batch)`` every 20 steps.
    Deterministic given ``seed`` on one thread.
    """
    torch.manual_seed(seed)
    crops, labels, num_classes = object_crops(root, crop_size=crop_size, max_crops=max_crops, seed=seed)
    model = _Classifier(backbone, feature_dim, num_classes)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    generator = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        pick = torch.randint(len(labels), (min(batch_size, len(labels)),), generator=generator)
        batch = crops[pick]
        flip = torch.rand(len(pick), generator=generator) < 0.5
        batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
        logits = model(normalize(batch))
        loss = F.cross_entropy(logits, labels[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if history is not None and (step % 20 == 0 or step == steps - 1):
            accuracy = (logits.argmax(1) == labels[pick]).float().mean().item()
            history.append((step, loss.item(), accuracy))
    return backbone.state_dict()
