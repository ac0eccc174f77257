"""The untimed side of SSD: ``prepare`` for real COCO 2017 and ``generate_small``.

``prepare`` only links the distributed files into the data folder (the rules allow no
preprocessing that adds information; the reader takes COCO as distributed). ``generate_small``
writes generated COCO in the real layout (``references/coco/synthetic.py``) and pretrains a
narrow ResNet-34 on crops of its objects, untimed (``references/coco/pretrain.py``), saved as
the small preset's backbone artifact in torchvision's ``resnet34`` state-dict format - as the
reference starts from ImageNet weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mlperf_train.benchmark import ARTIFACTS_DIR
from references.coco.pretrain import pretrain_classifier
from references.coco.synthetic import write_coco
from references.ssd.model import resnet34_at_width


class _Trunk(nn.Module):
    """conv1 .. layer3 of ``net`` at torchvision's strides (the layers SSD keeps; the
    modules are ``net``'s, so training this trains ``net``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer3(n.layer2(n.layer1(x)))


def generate_small(data_dir: Path, settings, seed: int) -> None:
    """Generated COCO under ``data_dir`` and ``artifacts/<settings.backbone_file>``."""
    write_coco(data_dir, num_train=settings.synth_train, num_val=settings.synth_val,
               image_size=((settings.synth_min_size, settings.synth_max_size),) * 2,
               num_classes=settings.synth_classes, seed=seed)
    torch.manual_seed(seed)
    net = resnet34_at_width(settings.width)
    if settings.pretrain_steps > 0:
        pretrain_classifier(_Trunk(net), 4 * settings.width, data_dir, steps=settings.pretrain_steps, seed=seed)
    artifacts = data_dir / ARTIFACTS_DIR
    artifacts.mkdir(exist_ok=True)
    torch.save(net.state_dict(), artifacts / settings.backbone_file)
