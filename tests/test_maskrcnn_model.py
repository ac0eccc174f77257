"""Mask R-CNN's parts against hand-computed values (spec §1-§5): backbone stride placement
and FrozenBN arithmetic, Detectron anchors, the +1 box coder, the straddle filter, the
per-batch proposal cap, polygon mask targets, paste-and-RLE, the R-50.pkl conversion, the
SGD recipe, the resize rule and the two-metric target."""
import math
import pickle

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.ops import FrozenBatchNorm2d

from mlperf_train import quality
from references.maskrcnn import detectron_weights
from references.maskrcnn.backbone import resnet_body, resnet_fpn
from references.maskrcnn.data import GroupedShardSampler, reference_boxes, resized_size
from references.maskrcnn.metric import detections_of
from references.maskrcnn.optim import Recipe
from references.maskrcnn.roi_heads import box_loss, rasterise_polygons
from references.maskrcnn.rpn import DetectronAnchorGenerator, PlusOneBoxCoder, detectron_cell_anchors


# --- backbone ------------------------------------------------------------------------------
def test_stride_sits_on_the_first_1x1_conv_and_bn_is_frozen():
    body = resnet_body(width=8)
    for stage in ("layer2", "layer3", "layer4"):
        first = getattr(body, stage)[0]
        assert first.conv1.stride == (2, 2) and first.conv1.kernel_size == (1, 1)
        assert first.conv2.stride == (1, 1) and first.downsample[0].stride == (2, 2)
    assert body.layer1[0].conv1.stride == (1, 1)
    norms = [m for m in body.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(norms) == 53 and all(n.eps == 0.0 for n in norms)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())


def test_fpn_levels_strides_and_frozen_stem_and_res2():
    backbone = resnet_fpn(width=8, fpn_channels=16)
    out = backbone(torch.randn(1, 3, 128, 192))
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {
        "0": (32, 48), "1": (16, 24), "2": (8, 12), "3": (4, 6), "pool": (2, 3)}
    assert all(v.shape[1] == 16 for v in out.values())
    body = backbone.body
    frozen = [p.requires_grad for m in (body.conv1, body.layer1) for p in m.parameters()]
    trainable = [p.requires_grad for m in (body.layer2, body.layer3, body.layer4) for p in m.parameters()]
    assert not any(frozen) and all(trainable)


def test_frozen_bn_arithmetic():
    bn = FrozenBatchNorm2d(2, eps=0.0)
    bn.weight.copy_(torch.tensor([2.0, 3.0]))
    bn.bias.copy_(torch.tensor([1.0, -1.0]))
    bn.running_mean.copy_(torch.tensor([0.5, 2.0]))
    bn.running_var.copy_(torch.tensor([4.0, 9.0]))
    x = torch.tensor([1.0, 5.0]).view(1, 2, 1, 1)
    # y = x·w/√var + (b − mean·w/√var): 1·2/2 + (1 − 0.5·2/2) = 1.5; 5·3/3 + (−1 − 2·3/3) = 2
    assert bn(x).flatten().tolist() == pytest.approx([1.5, 2.0])


# --- R-50.pkl -------------------------------------------------------------------------------
def _trained_bn_body():
    torch.manual_seed(0)
    body = resnet_body(width=4, norm_layer=torch.nn.BatchNorm2d)
    for m in body.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return body.eval()


def test_r50_pkl_round_trip_gives_the_same_features(tmp_path):
    body = _trained_bn_body()
    path = tmp_path / "R-50.pkl"
    detectron_weights.save_from(body, path)
    blobs = pickle.load(open(path, "rb"))
    for name in ("conv1_w", "res_conv1_bn_s", "res_conv1_bn_b", "res2_0_branch2a_w", "res2_0_branch1_bn_s",
                 "res5_2_branch2c_bn_b", "res3_0_branch1_w", "fc1000_w"):
        assert isinstance(blobs[name], np.ndarray), name
    assert "res3_1_branch1_w" not in blobs
    frozen = resnet_body(width=4)
    assert detectron_weights.load_into(frozen, path) == 3 * 53
    x = torch.randn(2, 3, 64, 64)
    stem = lambda m: m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))  # noqa: E731
    with torch.no_grad():
        assert torch.allclose(stem(body), stem(frozen), rtol=1e-4, atol=1e-4)
    bn = frozen.layer2[0].bn1
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))


def test_r50_pkl_blobs_wrapper_and_errors(tmp_path):
    body = _trained_bn_body()
    plain = tmp_path / "plain.pkl"
    detectron_weights.save_from(body, plain)
    wrapped = tmp_path / "wrapped.pkl"
    blobs = pickle.load(open(plain, "rb"))
    pickle.dump({"blobs": blobs}, open(wrapped, "wb"))
    detectron_weights.load_into(resnet_body(width=4), wrapped)
    with pytest.raises(detectron_weights.WeightsFileError, match="has shape"):
        detectron_weights.load_into(resnet_body(width=8), plain)
    del blobs["res4_5_branch2b_w"]
    pickle.dump(blobs, open(plain, "wb"))
    with pytest.raises(detectron_weights.WeightsFileError, match="'res4_5_branch2b_w' missing"):
        detectron_weights.load_into(resnet_body(width=4), plain)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(detectron_weights.WeightsFileError, match="not a Detectron weights pickle"):
        detectron_weights.load_into(resnet_body(width=4), tmp_path / "junk.pkl")


# --- anchors, box coder, RPN ----------------------------------------------------------------
def test_detectron_anchors_by_hand():
    # stride 4, size 32: base box [0, 0, 3, 3], centre 1.5. Ratio 0.5: w = round(√(16/0.5)) = 6,
    # h = round(6·0.5) = 3, ×8 -> 48×24: [1.5 − 23.5, 1.5 − 11.5, 1.5 + 23.5, 1.5 + 11.5].
    # Ratio 1: 4×4 ×8 = 32. Ratio 2: w = round(√8) = 3, h = 6 -> 24×48.
    expected = [[-22, -10, 25, 13], [-14, -14, 17, 17], [-10, -22, 13, 25]]
    assert detectron_cell_anchors(4, 32, (0.5, 1.0, 2.0)).tolist() == expected
    # stride 16, size 128: w = round(√512) = 23, h = round(11.5) = 12 (half to even), ×8
    assert detectron_cell_anchors(16, 128, (0.5,)).tolist() == [[-84, -40, 99, 55]]
    generator = DetectronAnchorGenerator()
    from torchvision.models.detection.image_list import ImageList
    features = [torch.zeros(1, 1, 64 // s, 64 // s) for s in (4, 8, 16, 32, 64)]
    anchors = generator(ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)]), features)[0]
    assert anchors.shape == (3 * (256 + 64 + 16 + 4 + 1), 4)
    # second cell of level 0 (x shifted by the stride 4), first ratio
    assert anchors[3].tolist() == [-18, -10, 29, 13]
    # the P6 anchor of size 512 at stride 64, ratio 1: [31.5 ± 255.5]
    assert anchors[-2].tolist() == [-224, -224, 287, 287]


def test_plus_one_box_coder_by_hand_and_round_trip():
    coder = PlusOneBoxCoder((1.0, 1.0, 1.0, 1.0), math.log(1000 / 16))
    proposal = torch.tensor([[0.0, 0.0, 9.0, 9.0]])       # 10 wide: centre 5
    gt = torch.tensor([[0.0, 0.0, 19.0, 9.0]])            # 20 wide: centre 10
    code = coder.encode_single(gt, proposal)
    assert code[0].tolist() == pytest.approx([0.5, 0.0, math.log(2.0), 0.0])
    assert coder.decode_single(code, proposal)[0].tolist() == pytest.approx(gt[0].tolist(), abs=1e-5)


def test_box_loss_uses_beta_one():
    labels = [torch.tensor([1, 0])]
    targets = [torch.tensor([[0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])]
    logits = torch.zeros(2, 3)
    deltas = torch.zeros(2, 12)
    _, regression = box_loss(logits, deltas, labels, targets)
    assert float(regression) == pytest.approx(0.5 * 0.5 ** 2 / 1.0 / 2)   # β = 1: 0.5·x²/β, over 2 RoIs


def test_straddling_anchors_are_ignored_and_proposals_capped_per_batch():
    from references.maskrcnn.model import MaskRCNN, ModelSize
    model = MaskRCNN(ModelSize(num_classes=3, width=4, fpn_channels=8, fc_dim=16, rpn_post_nms_top_n_train=50))
    rpn = model.rpn
    rpn._image_sizes = [(40, 40)]
    anchors = [torch.tensor([[0.0, 0.0, 20.0, 20.0], [-1.0, 0.0, 20.0, 20.0], [10.0, 10.0, 39.0, 39.0],
                             [10.0, 10.0, 40.0, 30.0]])]
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 20.0, 20.0]])}]
    labels, _ = rpn.assign_targets_to_anchors(anchors, targets)
    assert labels[0].tolist() == [1.0, -1.0, 0.0, -1.0]
    rpn.train()
    boxes = torch.rand(2, 300, 4) * 10
    boxes[..., 2:] += boxes[..., :2] + 5
    objectness = torch.randn(2, 300)
    kept, scores = rpn.filter_proposals(boxes, objectness, [(40, 40), (40, 40)], [300])
    assert sum(len(s) for s in scores) == 50
    top = torch.cat(scores).min()
    everything = torch.cat(type(rpn).__mro__[1].filter_proposals(rpn, boxes, objectness, [(40, 40)] * 2, [300])[1])
    assert int((everything > top).sum()) == 49   # the 50 best over both images


# --- masks ----------------------------------------------------------------------------------
def test_mask_target_is_the_polygon_cropped_to_the_roi():
    # an object covering the left half of a 56-px RoI at (100, 50): the target's left half
    polygon = [100.0, 50.0, 128.0, 50.0, 128.0, 106.0, 100.0, 106.0]
    target = rasterise_polygons([polygon], [100.0, 50.0, 156.0, 106.0], 28)
    assert target.shape == (28, 28) and target.dtype == np.uint8
    assert target[:, :14].all() and not target[:, 15:].any()
    # a polygon wholly outside the RoI gives an empty target; no polygon gives zeros
    assert not rasterise_polygons([[0.0, 0.0, 5.0, 0.0, 5.0, 5.0]], [100, 50, 156, 106], 28).any()
    assert not rasterise_polygons([], [0, 0, 10, 10], 28).any()


def test_paste_threshold_and_rle_by_hand():
    # one detection in a 40×60 image evaluated at 20×30 (ratio 2): box [5, 5, 9, 9] there is
    # [10, 10, 18, 18] in the original. Paste (the reference's): the 28² mask padded by 1 px to
    # 30², the box widened by 30/28 about its centre 14 -> [9.71, 18.29], truncated to [9, 18],
    # i.e. 10 px with +1 widths; the padded border blends below 0.5 -> rows/cols 9..18.
    output = {"boxes": torch.tensor([[5.0, 5.0, 9.0, 9.0]]), "scores": torch.tensor([0.9]),
              "labels": torch.tensor([2]), "masks": torch.ones(1, 1, 28, 28)}
    found = detections_of([output], [(20, 30)], [{"image_id": 7, "original": (40, 60)}], [0, 3, 9])
    assert len(found) == 1
    d = found[0]
    assert d["image_id"] == 7 and d["category_id"] == 9 and d["bbox"] == [10.0, 10.0, 9.0, 9.0]
    mask = mask_utils.decode(d["segmentation"])
    assert mask.shape == (40, 60)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (9, 18, 9, 18)
    # a mask under the threshold pastes nothing
    output["masks"] = torch.full((1, 1, 28, 28), 0.4)
    empty = detections_of([output], [(20, 30)], [{"image_id": 7, "original": (40, 60)}], [0, 3, 9])
    assert mask_utils.decode(empty[0]["segmentation"]).sum() == 0


# --- data -----------------------------------------------------------------------------------
def test_resize_rule():
    assert resized_size(480, 640, 800, 1333) == (800, 1066)
    assert resized_size(640, 427, 800, 1333) == (1199, 800)
    # long side capped: short = round(1333·200/1000) = 267, long = int(267·1000/200) = 1335 (the
    # reference's rounding lets it pass 1333 by a pixel or two)
    assert resized_size(200, 1000, 800, 1333) == (267, 1335)
    assert resized_size(800, 1000, 800, 1333) == (800, 1000)     # already there


def test_boxes_take_the_plus_one_convention_and_drop_empty():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0], [5.0, 5.0, 6.0, 9.0], [90.0, 0.0, 120.0, 10.0]])
    kept, keep = reference_boxes(boxes, 50, 100)
    assert keep.tolist() == [True, False, True]
    assert kept.tolist() == [[10.0, 20.0, 29.0, 49.0], [90.0, 0.0, 99.0, 9.0]]


def test_grouped_sampler_batches_one_aspect_group_and_shards_evenly():
    portrait = [i % 3 == 0 for i in range(50)]
    batches = {rank: list(GroupedShardSampler(portrait, 4, rank, 2, seed=1)) for rank in (0, 1)}
    assert len(batches[0]) == len(batches[1]) == 12
    seen = [i for rank in (0, 1) for b in batches[rank] for i, _ in b]
    assert len(seen) == len(set(seen))
    pure = [b for b in batches[0] if len({portrait[i] for i, _ in b}) == 1]
    assert len(pure) >= 11


# --- optimiser and target -------------------------------------------------------------------
def test_recipe_warmup_decay_and_bias_groups():
    recipe = Recipe(base_lr=0.02, warmup_steps=500, warmup_factor=1 / 3, decay_steps=(60000, 80000), decay_factor=0.1)
    assert recipe.lr(0) == pytest.approx(0.02 / 3)
    assert recipe.lr(250) == pytest.approx(0.02 * (1 / 3 * 0.5 + 0.5))
    assert recipe.lr(500) == pytest.approx(0.02)
    assert recipe.lr(60000) == pytest.approx(0.002) and recipe.lr(80000) == pytest.approx(0.0002)
    nvidia = Recipe(base_lr=0.06, warmup_steps=625, warmup_factor=9.6e-5, decay_steps=(24000, 32000),
                    decay_factor=0.1, warmup_method="mlperf_linear")
    assert nvidia.lr(0) == pytest.approx(0.0) and nvidia.lr(312) == pytest.approx(0.06 - 313 * 9.6e-5)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[0].weight.requires_grad_(False)
    optimizer = recipe.build_optimizer(model)
    recipe.set_lr(optimizer, 500)
    weights, biases = optimizer.param_groups
    assert len(weights["params"]) == 1 and weights["weight_decay"] == 1e-4 and weights["lr"] == pytest.approx(0.02)
    assert len(biases["params"]) == 2 and biases["weight_decay"] == 0.0 and biases["lr"] == pytest.approx(0.04)


def test_both_targets_must_be_met_at_one_evaluation():
    target = {"BBOX": 0.377, "SEGM": 0.339}
    assert not quality.reached({"BBOX": 0.40, "SEGM": 0.30}, target, "higher")
    assert not quality.reached({"BBOX": 0.30, "SEGM": 0.35}, target, "higher")
    assert quality.reached({"BBOX": 0.377, "SEGM": 0.339}, target, "higher")


def test_backbone_bn_is_recalibrated_on_whole_images(tmp_path):
    """Regression (seeds 2 and 3 of the small preset went NaN): statistics that do not fit
    whole images make the folded FrozenBN body amplify their colour offsets; after
    ``calibrate_batchnorm`` the body's features on whole train images are of unit scale."""
    from references.coco.dataset import CocoIndex, load_image
    from references.coco.synthetic import write_coco
    from references.maskrcnn.benchmark import calibrate_batchnorm
    from references.maskrcnn.data import normalise, resize_image

    write_coco(tmp_path, num_train=8, num_val=1, num_classes=2, seed=0, image_size=((64, 96), (64, 96)))
    torch.manual_seed(0)
    body = resnet_body(4, norm_layer=torch.nn.BatchNorm2d)
    features = torch.nn.Sequential(body.conv1, body.bn1, body.relu, body.maxpool,
                                   body.layer1, body.layer2, body.layer3, body.layer4)
    index = CocoIndex(tmp_path, "train", skip_empty=False, skip_crowd=True)
    images = torch.stack([normalise(resize_image(load_image(index.record(i).path), (64, 64)))
                          for i in range(len(index))])
    features.eval()
    with torch.no_grad():
        before = features(images).std()   # statistics of nothing (mean 0, var 1) on BGR×255
        calibrate_batchnorm(features, tmp_path, num_images=8, seed=0, batch_size=4, side=64)
        features.eval()
        after = features(images).std()
    assert before > 100
    assert 0.05 < after < 5


def test_scaled_body_keeps_its_function_up_to_the_scale_through_the_r50_pkl(tmp_path):
    """``scale_residual_stream(stages=4)``: every FPN input C2..C5 is the factor times the
    old one, in eval mode and after folding into the saved R-50.pkl's FrozenBN body."""
    from references.coco.resnet_scale import scale_residual_stream

    torch.manual_seed(0)
    body = resnet_body(4, norm_layer=torch.nn.BatchNorm2d)
    body.train()
    with torch.no_grad():
        for _ in range(3):   # non-trivial running statistics
            body(torch.randn(4, 3, 64, 64) * 50)
        for bn in (m for m in body.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    body.eval()

    def stages(net, x):
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        out = []
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = stage(x)
            out.append(x)
        return out

    x = torch.randn(2, 3, 96, 96) * 50
    with torch.no_grad():
        before = stages(body, x)
        scale_residual_stream(body, 0.3, stages=4)
        after = stages(body, x)
        detectron_weights.save_from(body, tmp_path / "R-50.pkl")
        frozen = resnet_body(4)
        detectron_weights.load_into(frozen, tmp_path / "R-50.pkl")
        folded = stages(frozen.eval(), x)
    for old, new, fold in zip(before, after, folded):
        assert old.abs().max() > 0.1
        assert torch.allclose(new, 0.3 * old, rtol=1e-3, atol=1e-4 * old.abs().max())
        assert torch.allclose(fold, 0.3 * old, rtol=1e-3, atol=1e-4 * old.abs().max())
    with pytest.raises(ValueError):
        scale_residual_stream(body, 0.5, stages=5)


def test_generated_body_has_the_chosen_feature_rms(tmp_path):
    from references.maskrcnn.benchmark import MaskrcnnBenchmark, MaskrcnnSettings, backbone_rms

    settings = MaskrcnnSettings(width=4, synth_classes=2, synth_train_images=8, synth_val_images=1,
                                synth_min_side=64, synth_max_side=96, pretrain_steps=0,
                                bn_calibration_images=8, backbone_feature_rms=0.4)
    MaskrcnnBenchmark().generate_small(tmp_path, settings, seed=0)
    body = resnet_body(4)
    detectron_weights.load_into(body, tmp_path / "artifacts" / "R-50.pkl")
    assert backbone_rms(body, tmp_path) == pytest.approx(0.4, rel=1e-2)   # BN eps: not scaled
