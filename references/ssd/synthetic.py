"""The untimed side of SSD: ``prepare`` for real COCO 2017 and ``generate_small``.

``prepare`` only links the distributed files into the data folder (the rules allow no
preprocessing that adds information; the reader takes COCO as distributed). ``generate_small``
writes generated COCO in the real layout (``references/coco/synthetic.py``) and pretrains a
narrow ResNet-34 on crops of its objects, untimed (``references/coco/pretrain.py``), saved as
the small preset's backbone artifact in torchvision's ``resnet34`` state-dict format - as the
reference starts from ImageNet weights.

A classifier fixes its features only up to scale (the linear head absorbs it), but SSD's
Xavier-initialised extra layers and heads do not: with the pretrained trunk's 38×38 map at
rms ~2.5 the width-8 model collapsed to "background" within 20 steps and never learned
(references/ssd/README.md). So before saving, the trunk's residual stream is rescaled
(``references/coco/resnet_scale.py``, exact: the whole ResNet-34 classifier computes the same
function) to a chosen rms of the 38×38 map on whole training images.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from mlperf_train.benchmark import ARTIFACTS_DIR
from references.coco.dataset import CocoIndex
from references.coco.pretrain import pretrain_classifier
from references.coco.resnet_scale import scale_residual_stream
from references.coco.synthetic import write_coco
from references.ssd.data import EvalImages
from references.ssd.model import Backbone, resnet34_at_width

MEASURE_IMAGES = 32      # whole train images on which the 38×38 map's rms is measured


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


@torch.no_grad()
def feature_rms(net: nn.Module, images: torch.Tensor) -> float:
    """Root mean square of SSD's 38×38 backbone map (``model.Backbone``, train-mode batch
    statistics as in training) of ``net`` on ``images`` (B, 3, 300, 300); ``net`` is left
    unchanged."""
    backbone = Backbone(copy.deepcopy(net)).train()
    return float(backbone(images).pow(2).mean().sqrt())


def generate_small(data_dir: Path, settings, seed: int) -> None:
    """Generated COCO under ``data_dir`` and ``artifacts/<settings.backbone_file>``."""
    write_coco(data_dir, num_train=settings.synth_train, num_val=settings.synth_val,
               image_size=((settings.synth_min_size, settings.synth_max_size),) * 2,
               num_classes=settings.synth_classes, seed=seed)
    torch.manual_seed(seed)
    net = resnet34_at_width(settings.width)
    if settings.pretrain_steps > 0:
        pretrain_classifier(_Trunk(net), 4 * settings.width, data_dir, steps=settings.pretrain_steps, seed=seed)
    index = CocoIndex(data_dir, "train", skip_empty=True, skip_crowd=False)
    whole = EvalImages(index, settings.image_size, range(min(MEASURE_IMAGES, len(index.image_ids))))
    images = torch.stack([whole[k][0] for k in range(len(whole))])
    scale_residual_stream(net, settings.backbone_feature_rms / feature_rms(net, images))
    artifacts = data_dir / ARTIFACTS_DIR
    artifacts.mkdir(exist_ok=True)
    torch.save(net.state_dict(), artifacts / settings.backbone_file)
