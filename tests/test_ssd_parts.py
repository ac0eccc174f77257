"""SSD's parts against the spec (shared/spec/ssd.md, copied facts): default boxes, box
coding, the IoU crop, the loss on a hand-made case, the schedule, the model and its
pretrained-backbone artifact."""
import math
import random

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from references.ssd import boxes as box_ops
from references.ssd.crop import crop_boxes, crop_window
from references.ssd.loss import ssd_loss
from references.ssd.model import SSD300, load_resnet34_state, resnet34_at_width
from references.ssd.optim import Recipe


def test_default_boxes_count_order_and_clamping():
    d = box_ops.default_boxes()
    assert d.shape == (8732, 4) and box_ops.boxes_per_cell() == [4, 6, 6, 6, 4, 4]
    assert sum(n * f * f for n, f in zip(box_ops.boxes_per_cell(), box_ops.FEATURE_SIZES)) == 8732
    fk = 300 / 8
    # level 0, box type 0 (s_k, s_k), then x fastest, then y, then the next box type
    assert torch.allclose(d[0], torch.tensor([0.5 / fk, 0.5 / fk, 21 / 300, 21 / 300]))
    assert torch.allclose(d[1], torch.tensor([1.5 / fk, 0.5 / fk, 21 / 300, 21 / 300]))
    assert torch.allclose(d[38], torch.tensor([0.5 / fk, 1.5 / fk, 21 / 300, 21 / 300]))
    prime = math.sqrt(21 * 45) / 300
    assert torch.allclose(d[38 * 38], torch.tensor([0.5 / fk, 0.5 / fk, prime, prime]))
    w, h = 21 / 300 * math.sqrt(2), 21 / 300 / math.sqrt(2)
    assert torch.allclose(d[2 * 38 * 38, 2:], torch.tensor([w, h])) and torch.allclose(d[3 * 38 * 38, 2:], torch.tensor([h, w]))
    level1 = 4 * 38 * 38
    assert torch.allclose(d[level1], torch.tensor([0.5 / (300 / 16), 0.5 / (300 / 16), 45 / 300, 45 / 300]))
    # centres of the 10x10 level (step 32) pass 1.0 before clamping; every value is clamped
    assert d.min() >= 0 and d.max() <= 1 and (d[:, :2] == 1.0).any()


def test_heads_flatten_in_the_default_box_order():
    model = SSD300(num_classes=3, width=8)
    head = model.loc[0]
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(torch.arange(16, dtype=torch.float32))   # channel = coordinate * 4 + box type
    locs, scores = model(torch.zeros(1, 3, 300, 300))
    assert locs.shape == (1, 4, 8732) and scores.shape == (1, 3, 8732)
    for coord in range(4):
        for box_type in range(4):
            index = box_type * 38 * 38 + 7 * 38 + 5            # (box type, y=7, x=5)
            assert locs[0, coord, index] == coord * 4 + box_type


def test_encode_decode_round_trip():
    d = box_ops.default_boxes()
    gt = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.3, 0.2, 0.9, 0.95], [0.62, 0.05, 0.7, 0.15]])
    labels = torch.tensor([1, 3, 2])
    offsets, dbox_labels = box_ops.encode(gt, labels, d)
    matched = dbox_labels > 0
    assert set(dbox_labels[matched].tolist()) == {1, 2, 3}     # every box got at least its best default box
    decoded = box_ops.decode(offsets, d)[matched]
    ious = box_iou(decoded, gt)
    assert torch.allclose(ious.max(dim=1).values, torch.ones(int(matched.sum())), atol=1e-5)
    best = box_iou(gt, box_ops.box_convert(d, "cxcywh", "xyxy")).argmax(dim=1)
    assert dbox_labels[best].tolist() == labels.tolist()
    assert (offsets[~matched] == 0).all()
    empty = box_ops.encode(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), d)
    assert (empty[1] == 0).all()


def test_crop_needs_every_box_to_meet_the_iou():
    boxes = torch.tensor([[0.1, 0.1, 0.6, 0.7], [0.4, 0.3, 0.95, 0.9], [0.2, 0.5, 0.5, 0.95]])
    rng = random.Random(0)
    accepted = 0
    for _ in range(100):
        window = crop_window(boxes, 50, rng, modes=(0.3,))
        left, top, right, bottom, keep = window
        assert 0.3 <= right - left <= 1 and 0.3 <= bottom - top <= 1 and 0.5 <= (right - left) / (bottom - top) <= 2
        assert (box_iou(boxes, torch.tensor([[left, top, right, bottom]])) > 0.3).all()
        assert keep.any()
        cropped = crop_boxes(boxes, window)
        assert cropped.min() >= 0 and cropped.max() <= 1 + 1e-6 and len(cropped) == int(keep.sum())
        accepted += 1
    assert accepted == 100
    # a tiny box can never have IoU > 0.3 with a window of at least 0.3 x 0.3: torchvision's
    # "any box" rule would accept crops around the large box, the reference never does
    boxes = torch.tensor([[0.1, 0.1, 0.9, 0.9], [0.45, 0.45, 0.5, 0.5]])
    assert all(crop_window(boxes, 1, rng, modes=(0.3, None)) is None for _ in range(200))
    # max_samples tries per mode: with 1 try some modes fail and a new mode is drawn
    assert crop_window(boxes, 1, random.Random(1), modes=(float("-inf"),)) is not None


def test_loss_on_a_hand_made_case():
    # one image, 6 default boxes, 3 classes; positives at boxes 0 and 1
    labels = torch.tensor([[2, 1, 0, 0, 0, 0]])
    scores = torch.tensor([[[0.0, 1.0, 0.0, 3.0, 0.0, 2.0],
                            [0.0, 2.0, 0.0, 0.0, 1.0, 0.0],
                            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]])          # (1, 3, 6)
    locs = torch.zeros(1, 4, 6)
    locs[0, 0, 0] = 0.5          # |0.5 - 0| < 1: 0.125
    locs[0, 1, 1] = 3.0          # |3 - 1| >= 1: 1.5
    targets = torch.zeros(1, 6, 4)
    targets[0, 1, 1] = 1.0
    targets[0, 3, 0] = 9.0       # a negative's box target is ignored
    ce = F.cross_entropy(scores, labels, reduction="none")[0]
    # 3 x 2 = 6 "hard negatives" = every box by rank, the positives included (their rank is
    # taken with CE 0): as in the reference, positives then count twice
    expected = (0.125 + 1.5 + ce.sum() + ce[:2].sum()) / 2
    assert torch.isclose(ssd_loss(locs, scores, targets, labels), expected)
    # one positive: the 3 negatives of highest cross-entropy (boxes 1, 2, 4; not 3 and 5, whose
    # background score is high)
    labels1 = torch.tensor([[2, 0, 0, 0, 0, 0]])
    ce1 = F.cross_entropy(scores, labels1, reduction="none")[0]
    hard = ce1[1:].topk(3).indices + 1
    assert sorted(hard.tolist()) == [1, 2, 4]
    expected1 = 0.125 + ce1[0] + ce1[hard].sum()
    assert torch.isclose(ssd_loss(locs, scores, targets, labels1), expected1)
    # per-image normalisation, averaged over the batch; an image without positives adds 0
    batch = ssd_loss(locs.repeat(2, 1, 1), scores.repeat(2, 1, 1), targets.repeat(2, 1, 1),
                     torch.cat([labels1, torch.zeros_like(labels1)]))
    assert torch.isclose(batch, expected1 / 2)


def test_warmup_quirk_and_decay_epochs():
    r = Recipe(base_lr=0.1, weight_decay=5e-4, warmup_steps=10, warmup_factor=0, decay_epochs=(40, 50))
    assert r.learning_rate(0, 1) == pytest.approx(0.1 - 10 * 0.01)
    assert r.learning_rate(5, 1) == pytest.approx(0.05)
    assert r.learning_rate(9, 1) == pytest.approx(0.09)
    assert r.learning_rate(10, 2) == pytest.approx(0.09) and r.learning_rate(10**6, 40) == pytest.approx(0.09)  # quirk
    assert r.learning_rate(10**6, 41) == pytest.approx(0.01) and r.learning_rate(10**6, 51) == pytest.approx(0.001)
    f1 = Recipe(base_lr=0.1, weight_decay=0, warmup_steps=4, warmup_factor=1, decay_epochs=())
    assert f1.learning_rate(0, 1) == pytest.approx(0.1 - 4 * 0.1 / 8)       # starts at r0 / 2
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1))
    optimizer = r.build_optimizer(model)
    assert type(optimizer) is torch.optim.SGD and len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["weight_decay"] == 5e-4 and optimizer.param_groups[0]["momentum"] == 0.9


def test_model_shape_and_init():
    model = SSD300(num_classes=81)
    features = model.backbone(torch.zeros(1, 3, 300, 300))
    assert features.shape == (1, 256, 38, 38)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.extra.modules())
    assert all(m.bias is not None for m in model.extra.modules() if isinstance(m, torch.nn.Conv2d))
    outs = [model.extra[0][2], model.extra[3][2]]
    assert [tuple(c.weight.shape[:2]) for c in outs] == [(512, 256), (256, 128)] and outs[1].padding == (0, 0)
    conv = model.conf[0]   # Xavier uniform bound sqrt(6 / (fan_in + fan_out))
    bound = math.sqrt(6 / (256 * 9 + 4 * 81 * 9))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound


def test_backbone_artifact_in_torchvision_format(tmp_path):
    import torchvision
    assert resnet34_at_width(64).state_dict().keys() == torchvision.models.resnet34().state_dict().keys()
    source = resnet34_at_width(8)
    path = tmp_path / "resnet34-small.pth"
    torch.save(source.state_dict(), path)
    target = resnet34_at_width(8)
    load_resnet34_state(target, path)
    assert torch.equal(target.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    with pytest.raises(ValueError, match="not a torchvision resnet34 state dict at this width"):
        load_resnet34_state(resnet34_at_width(16), path)


def test_post_processing_of_a_perfect_prediction_scores_ap_1():
    from references.coco.evaluation import coco_eval
    from references.ssd.metric import detect, to_coco
    gt = {"images": [{"id": 4, "width": 200, "height": 100, "file_name": "4.jpg"}],
          "categories": [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}],
          "annotations": [{"id": 1, "image_id": 4, "category_id": 7, "bbox": [20, 10, 80, 50], "area": 4000,
                           "iscrowd": 0}]}
    d = box_ops.default_boxes()
    offsets, labels = box_ops.encode(torch.tensor([[0.1, 0.1, 0.5, 0.6]]), torch.tensor([2]), d)
    scores = torch.zeros(1, 3, 8732)
    scores[0, 0] = 10.0                       # background everywhere ...
    scores[0, 0, labels > 0] = 0.0
    scores[0, 2, labels > 0] = 10.0           # ... but at the matched default boxes
    found = detect(offsets.T[None], scores, d)
    assert len(found[0][0]) == 1              # NMS leaves one of the identical boxes
    results = to_coco(found, [4], [100], [200], [0, 3, 7])
    assert results[0]["category_id"] == 7 and results[0]["bbox"] == pytest.approx([20, 10, 80, 50], abs=1e-3)
    assert coco_eval(gt, results, "bbox")["AP"] == pytest.approx(1.0)
