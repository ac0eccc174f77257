"""SSD300 with the modified ResNet-34 backbone (spec §2).

The backbone is torchvision's ``resnet34`` cut after layer3, with layer3's first block at
stride 1 (conv1 and the 1×1 downsample), so a 300×300 input gives 256×38×38. Its weights
come from a file in torchvision's ``resnet34`` state-dict format (the ImageNet checkpoint
for the reference; ``generate_small``'s pretrained file for the small preset). The small
preset scales every width by ``width / 64``; the input size, the default boxes and the
heads' outputs (boxes × 4, boxes × classes) stay the reference's.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet34
from torchvision.models.resnet import BasicBlock

from references.ssd.boxes import boxes_per_cell

REFERENCE_WIDTH = 64
# (1×1 channels, 3×3 output channels, stride, padding) of the five extra blocks at width 64
EXTRA_BLOCKS = ((256, 512, 2, 1), (256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 1, 0), (128, 256, 1, 0))


def resnet34_at_width(width: int = REFERENCE_WIDTH) -> nn.Module:
    """torchvision's ResNet-34, with every channel count scaled by ``width / 64`` (the same
    module names, so its state dict has torchvision's keys). ``width=64`` is ``resnet34()``."""
    net = resnet34(weights=None)
    if width != REFERENCE_WIDTH:
        net.inplanes = width
        net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        net.bn1 = nn.BatchNorm2d(width)
        net.layer1 = net._make_layer(BasicBlock, width, 3)
        net.layer2 = net._make_layer(BasicBlock, 2 * width, 4, stride=2)
        net.layer3 = net._make_layer(BasicBlock, 4 * width, 6, stride=2)
        net.layer4 = net._make_layer(BasicBlock, 8 * width, 3, stride=2)
        net.fc = nn.Linear(8 * width, 1000)
    return net


def load_resnet34_state(net: nn.Module, path: Path) -> None:
    """Load a torchvision ``resnet34`` state dict (all keys, layer4 and fc included) into
    ``net``; raises ``ValueError`` naming the file when keys or shapes differ."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict (a mapping of tensor names to tensors)")
    expected = net.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        problem = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected else
                   f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)}, the model {tuple(expected[wrong[0]].shape)}")
        raise ValueError(f"{path}: not a torchvision resnet34 state dict at this width ({problem})")
    net.load_state_dict(state)


class Backbone(nn.Module):
    """conv1 .. layer3 of ResNet-34, layer3's first block at stride 1: (N, 3, 300, 300) ->
    (N, 4·width, 38, 38)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        first = self.layer3[0]
        first.conv1.stride = (1, 1)
        first.downsample[0].stride = (1, 1)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


class SSD300(nn.Module):
    """The detector: backbone, five extra blocks (1×1 conv, ReLU, 3×3 conv, ReLU; biases, no
    batch norm) and a 3×3 location and confidence head on each of the six maps.

    ``forward(images (N, 3, 300, 300))`` -> ``(locations (N, 4, 8732), scores (N, classes,
    8732))``, flattened per map as (box type, y, x) and maps concatenated large to small,
    the order of ``boxes.default_boxes``.
    """

    def __init__(self, num_classes: int = 81, width: int = REFERENCE_WIDTH, backbone_net: nn.Module | None = None):
        super().__init__()
        scale = width / REFERENCE_WIDTH
        self.num_classes = num_classes
        self.backbone = Backbone(backbone_net if backbone_net is not None else resnet34_at_width(width))
        channels = [4 * width]
        blocks = []
        for middle, out, stride, padding in EXTRA_BLOCKS:
            middle, out = int(middle * scale), int(out * scale)
            blocks.append(nn.Sequential(
                nn.Conv2d(channels[-1], middle, kernel_size=1), nn.ReLU(inplace=True),
                nn.Conv2d(middle, out, kernel_size=3, stride=stride, padding=padding), nn.ReLU(inplace=True)))
            channels.append(out)
        self.extra = nn.ModuleList(blocks)
        per_cell = boxes_per_cell()
        self.loc = nn.ModuleList(nn.Conv2d(c, n * 4, kernel_size=3, padding=1) for c, n in zip(channels, per_cell))
        self.conf = nn.ModuleList(nn.Conv2d(c, n * num_classes, kernel_size=3, padding=1)
                                  for c, n in zip(channels, per_cell))
        self.reset_head_parameters()

    def reset_head_parameters(self) -> None:
        """Spec §2: Xavier-uniform on every weight of more than one dimension in the extra
        layers and heads; biases keep PyTorch's default."""
        for module in (*self.extra, *self.loc, *self.conf):
            for param in module.parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)

    def forward(self, images):
        x = self.backbone(images)
        maps = [x]
        for block in self.extra:
            maps.append(block(maps[-1]))
        n = images.shape[0]
        # (N, boxes·4, H, W) viewed as (N, 4, boxes·H·W): coordinate-major channels, as the reference
        locs = torch.cat([head(m).view(n, 4, -1) for head, m in zip(self.loc, maps)], dim=2)
        scores = torch.cat([head(m).view(n, self.num_classes, -1) for head, m in zip(self.conf, maps)], dim=2)
        return locs.contiguous(), scores.contiguous()
