"""generate_small draws each image's size from the preset's range (issue 13: ``write_coco``
reads two ints as a fixed (h, w); the range needs ``((lo, hi), (lo, hi))``) and saves a
backbone whose 38×38 map has the chosen rms, rescaled exactly (the classifier unchanged)."""
import dataclasses
import json

import pytest
import torch

from references.coco.dataset import CocoIndex
from references.ssd.benchmark import SsdSettings
from references.ssd.data import EvalImages
from references.ssd.model import load_resnet34_state, resnet34_at_width
from references.coco.resnet_scale import scale_residual_stream
from references.ssd.synthetic import feature_rms, generate_small


def test_generated_image_sizes_span_the_range(tmp_path):
    settings = dataclasses.replace(SsdSettings(), width=8, synth_train=12, synth_val=12, synth_min_size=160,
                                   synth_max_size=320, pretrain_steps=0, backbone_file="b.pth")
    generate_small(tmp_path, settings, seed=0)
    images = json.loads((tmp_path / "annotations" / "instances_train2017.json").read_text())["images"]
    heights, widths = {i["height"] for i in images}, {i["width"] for i in images}
    assert all(160 <= v <= 320 for v in heights | widths)
    assert len(heights) > 3 and len(widths) > 3 and any(i["height"] != i["width"] for i in images)
    assert (tmp_path / "artifacts" / "b.pth").is_file()


def test_rescaled_residual_stream_keeps_the_classifier_and_scales_the_ssd_map():
    torch.manual_seed(0)
    net = resnet34_at_width(8)
    net.train()
    for _ in range(3):   # non-trivial running statistics and affine parameters
        net(torch.randn(4, 3, 64, 64))
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    images = torch.randn(4, 3, 300, 300)
    before_rms = feature_rms(net, images)
    net.eval()
    x = torch.randn(2, 3, 96, 96)
    logits = net(x)
    scale_residual_stream(net, 0.3)
    assert torch.allclose(net(x), logits, rtol=1e-3, atol=1e-3)       # eval mode: the same classifier
    assert feature_rms(net, images) == pytest.approx(0.3 * before_rms, rel=1e-4)   # train mode: ×0.3
    with pytest.raises(ValueError):
        scale_residual_stream(net, 0.0)


def test_generated_backbone_has_the_chosen_feature_rms(tmp_path):
    settings = dataclasses.replace(SsdSettings(), width=4, synth_train=6, synth_val=2, synth_min_size=96,
                                   synth_max_size=128, pretrain_steps=2, backbone_file="b.pth",
                                   backbone_feature_rms=0.5)
    generate_small(tmp_path, settings, seed=0)
    net = resnet34_at_width(4)
    load_resnet34_state(net, tmp_path / "artifacts" / "b.pth")
    index = CocoIndex(tmp_path, "train", skip_empty=True, skip_crowd=False)
    whole = EvalImages(index, 300, range(len(index.image_ids)))
    images = torch.stack([whole[k][0] for k in range(len(whole))])
    assert feature_rms(net, images) == pytest.approx(0.5, rel=1e-3)
