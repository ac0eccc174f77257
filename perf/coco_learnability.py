"""Are the generated COCO objects learnable by a small detector in minutes? The whole chain of
references/coco, end to end, with a stock torchvision SSD on a small backbone:

    python perf/coco_learnability.py [--train 600] [--val 100] [--pretrain-steps 300] [--epochs 6]

write_coco -> CocoIndex (SSD's filters) -> pretrain_classifier on crops (untimed in a preset)
-> torchvision ``SSD`` (300×300, a 5-level toy backbone, default boxes of its own) trained with
SGD -> detections_for_image -> coco_eval on the val split. Prints the crop classifier's
accuracy on val crops, the wall time of each phase, and ``AP``/``AP50`` after every epoch.
This is not the SSD reference (references/ssd is): it only shows the data can be learned.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator

from references.coco import synthetic
from references.coco.dataset import CocoIndex, load_image
from references.coco.evaluation import coco_eval, detections_for_image
from references.coco.pretrain import IMAGENET_MEAN, IMAGENET_STD, imagenet_normalize, object_crops, pretrain_classifier


def block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Trunk(nn.Module):
    """Stride-8 trunk (the part pretrained as a classifier)."""

    def __init__(self, width: int):
        super().__init__()
        self.layers = nn.Sequential(block(3, width, 2), block(width, width, 1), block(width, 2 * width, 2),
                                    block(2 * width, 2 * width, 1), block(2 * width, 4 * width, 2),
                                    block(4 * width, 4 * width, 1))

    def forward(self, x):
        return self.layers(x)


class Backbone(nn.Module):
    """The trunk's 38×38 map and 4 extra stride-2 maps (19, 10, 5, 3) for a 300×300 input."""

    def __init__(self, trunk: Trunk, width: int):
        super().__init__()
        self.trunk = trunk
        self.extras = nn.ModuleList([block(4 * width, 4 * width, 2) for _ in range(4)])
        self.out_channels = [4 * width] * 5

    def forward(self, x):
        features = [self.trunk(x)]
        for extra in self.extras:
            features.append(extra(features[-1]))
        return OrderedDict((str(i), f) for i, f in enumerate(features))


def crop_accuracy(trunk: Trunk, root, num_classes: int, seed: int) -> float:
    """Accuracy on val crops of a nearest-centroid classifier on the trunk's pooled features
    (centroids from train crops): the pretrained features separate the classes."""
    trunk.eval()
    with torch.no_grad():
        train_x, train_y, _ = object_crops(root, crop_size=64, max_crops=1500, seed=seed)
        features = trunk(imagenet_normalize(train_x)).mean((2, 3))
        centroids = torch.stack([features[train_y == c].mean(0) for c in range(num_classes + 1)])
        val_x, val_y, _ = object_crops(root, crop_size=64, max_crops=500, seed=seed + 1, split="val")
        val_features = trunk(imagenet_normalize(val_x)).mean((2, 3))
        predicted = torch.cdist(val_features, centroids).argmin(1)
    trunk.train()
    return (predicted == val_y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        synthetic.write_coco(root, num_train=args.train, num_val=args.val, num_classes=args.classes, seed=args.seed)
        print(f"write_coco: {time.perf_counter() - started:.1f} s")
        trunk = Trunk(args.width)
        started = time.perf_counter()
        history = []
        pretrain_classifier(trunk, 4 * args.width, root, steps=args.pretrain_steps, seed=args.seed, history=history)
        print(f"pretrain: {time.perf_counter() - started:.1f} s, last batch loss {history[-1][1]:.3f} "
              f"accuracy {history[-1][2]:.2f}; val crops nearest-centroid accuracy "
              f"{crop_accuracy(trunk, root, args.classes, args.seed):.2f}")
        backbone = Backbone(trunk, args.width)
        anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2], [2]], min_ratio=0.07, max_ratio=0.9)
        model = SSD(backbone, anchors, (300, 300), num_classes=args.classes + 1,
                    image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
        train = CocoIndex(root, "train", skip_empty=True, skip_crowd=False)
        val = CocoIndex(root, "val", skip_empty=True, skip_crowd=False)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
        images = [load_image(train.record(i).path).float() / 255 for i in range(len(train))]
        records = [train.record(i) for i in range(len(train))]
        val_images = [load_image(val.record(i).path).float() / 255 for i in range(len(val))]
        started = time.perf_counter()
        for epoch in range(1, args.epochs + 1):
            model.train()
            order = torch.randperm(len(images)).tolist()
            for first in range(0, len(order), args.batch):
                picked = order[first:first + args.batch]
                targets = [{"boxes": records[i].boxes, "labels": records[i].labels} for i in picked]
                losses = model([images[i] for i in picked], targets)
                loss = sum(losses.values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            model.eval()
            detections = []
            with torch.no_grad():
                for i in range(0, len(val_images), 16):
                    for j, output in enumerate(model(val_images[i:i + 16]), start=i):
                        detections += detections_for_image(val.image_ids[j], output["boxes"], output["scores"],
                                                           output["labels"], val.category_of)
            stats = coco_eval(val.coco, detections, "bbox")
            print(f"epoch {epoch}: {time.perf_counter() - started:6.1f} s  loss {loss.item():.3f}  "
                  f"AP {stats['AP']:.3f}  AP50 {stats['AP50']:.3f}", flush=True)


if __name__ == "__main__":
    main()
