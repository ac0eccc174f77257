"""Does the scale of the pretrained backbone's 38×38 map decide whether the small SSD learns?

    python perf/ssd_feature_scale.py --data DIR [--feature-rms 0.75] [--steps 200] [--eval 100,200]

DIR: a generated small-preset dataset (``~/.cache/mlperf-train/data/ssd-*``, made by
``mlperf-train run ssd``). The reference's own parts - ``SSD300`` at width 8 from
``artifacts/resnet34-width8.pth``, the timed pipeline, the loss, the recipe's warmup, the
metric - trained for ``--steps`` SGD steps (batch 16, lr 0.015, warmup 50: the small preset),
after rescaling the backbone's residual stream (``synthetic.scale_residual_stream``, exact)
so its 38×38 map has rms ``--feature-rms`` on whole train images. Prints the loss, the mean
probability of the right class on positive default boxes, and mAP / AP50 on the val split at
the ``--eval`` steps. This is a learning check, not a timing: run it through /work/bin/heavy.
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch

from references.coco.dataset import CocoIndex
from references.coco.evaluation import coco_eval
from references.ssd import boxes as box_ops
from references.ssd.data import EvalImages, TrainImages
from references.ssd.loss import ssd_loss
from references.ssd.metric import detect, to_coco
from references.ssd.model import SSD300, load_resnet34_state, resnet34_at_width
from references.ssd.optim import Recipe
from references.ssd.synthetic import MEASURE_IMAGES, feature_rms, scale_residual_stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--feature-rms", type=float, default=0.75)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval", default="100,200")
    parser.add_argument("--lr", type=float, default=0.015)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    root = Path(args.data)
    train = CocoIndex(root, "train", skip_empty=True, skip_crowd=False)
    val = CocoIndex(root, "val", skip_empty=True, skip_crowd=False)
    dboxes = box_ops.default_boxes()
    net = resnet34_at_width(8)
    load_resnet34_state(net, root / "artifacts" / "resnet34-width8.pth")
    whole = EvalImages(train, 300, range(min(MEASURE_IMAGES, len(train.image_ids))))
    images = torch.stack([whole[k][0] for k in range(len(whole))])
    saved = feature_rms(net, images)
    scale_residual_stream(net, args.feature_rms / saved)
    print(f"38x38 map rms: {saved:.3f} as saved, {feature_rms(net, images):.3f} now", flush=True)
    model = SSD300(train.num_classes + 1, 8, net)
    recipe = Recipe(args.lr, 5e-4, 50, 0, (40, 50))
    optimizer = recipe.build_optimizer(model)
    loader = torch.utils.data.DataLoader(TrainImages(train, 300, 1, dboxes), batch_size=16, shuffle=True,
                                         num_workers=1, persistent_workers=True)
    val_loader = torch.utils.data.DataLoader(EvalImages(val, 300, range(len(val.image_ids))), batch_size=25)
    at = {int(s) for s in args.eval.split(",")}
    step, started, smoothed = 0, time.perf_counter(), None
    model.train()
    while step < args.steps:
        for x, offsets, labels in loader:
            for group in optimizer.param_groups:
                group["lr"] = recipe.learning_rate(step, 1)
            locs, scores = model(x)
            loss = ssd_loss(locs, scores, offsets, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            smoothed = loss.item() if smoothed is None else 0.9 * smoothed + 0.1 * loss.item()
            if step % 25 == 0:
                with torch.no_grad():
                    right = torch.softmax(scores, 1).gather(1, labels[:, None])[:, 0][labels > 0].mean()
                print(f"step {step} {time.perf_counter() - started:.0f} s loss {smoothed:.2f} "
                      f"p(right class | positive box) {right:.3f}", flush=True)
            if step in at:
                model.eval()
                detections = []
                with torch.no_grad():
                    for x_val, ids, heights, widths in val_loader:
                        out = detect(*model(x_val), dboxes)
                        detections += to_coco(out, ids.tolist(), heights.tolist(), widths.tolist(), val.category_of)
                model.train()
                stats = coco_eval(val.coco, detections, "bbox") if detections else {"AP": 0.0, "AP50": 0.0}
                print(f"step {step} ({step * 16} images): mAP {stats['AP']:.4f} AP50 {stats['AP50']:.4f}", flush=True)
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
