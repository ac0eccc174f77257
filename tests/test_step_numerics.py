"""Issue 18: the speed choices of each reference's training step keep its numerics. On a
fixed batch, the loss and the gradients are those of the plain formulation (out-of-place
ops, contiguous layout) within float tolerance. The speed itself is measured by
``perf/sidebyside.py``, never here."""
import math

import pytest
import torch
import torch.nn.functional as F

from references.resnet.model import ResNet


def _plain_resnet_forward(model: ResNet, x: torch.Tensor) -> torch.Tensor:
    """ResNet's forward as it was written before issue 18: out-of-place ReLUs and residual
    add, the TF "SAME" max-pool as an explicit -inf pad."""
    x = F.relu(model.bn1(model.conv1(x)))
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    x = F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)
    for block in model.layers:
        identity = x if block.shortcut is None else block.shortcut(x)
        out = F.relu(block.bn1(block.conv1(x)))
        out = F.relu(block.bn2(block.conv2(out)))
        x = F.relu(block.bn3(block.conv3(out)) + identity)
    return model.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _loss_and_grads(model, forward, images, labels):
    loss = F.cross_entropy(forward(images), labels)
    return loss.detach(), [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


def _assert_same(expected, actual, rtol=1e-4, atol=1e-5):
    (loss_a, grads_a), (loss_b, grads_b) = expected, actual
    torch.testing.assert_close(loss_b, loss_a, rtol=rtol, atol=atol)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol * max(1.0, float(a.abs().max())))


@pytest.mark.parametrize("image_size", [36, 34])  # 18 px before the pool (ceil_mode path), 17 (padded path)
def test_resnet_in_place_block_and_pool_keep_loss_and_gradients(image_size):
    torch.manual_seed(0)
    model = ResNet(num_outputs=7, blocks=(2, 1, 1, 1), width=4)  # identity and projection shortcuts
    images, labels = torch.randn(6, 3, image_size, image_size), torch.randint(0, 7, (6,))
    plain = _loss_and_grads(model, lambda x: _plain_resnet_forward(model, x), images, labels)
    _assert_same(plain, _loss_and_grads(model, model, images, labels), rtol=1e-6, atol=1e-7)


def test_resnet_channels_last_keeps_loss_and_gradients():
    """The layout ``init`` picks per device type changes only the order of float sums."""
    torch.manual_seed(0)
    model = ResNet(num_outputs=7, blocks=(2, 1, 1, 1), width=8)
    images, labels = torch.randn(6, 3, 36, 36), torch.randint(0, 7, (6,))
    nchw = _loss_and_grads(model, model, images, labels)
    model.to(memory_format=torch.channels_last)
    channels_last = _loss_and_grads(model, model, images.to(memory_format=torch.channels_last), labels)
    _assert_same(nchw, channels_last)


def test_ncf_train_step_is_the_plain_mean_bce_step():
    """NCF's step sums the BCE and scales it by world size / global batch (so DDP's mean is
    the one-process loss): the same gradients as a plain mean BCE on one process."""
    from mlperf_train.distributed import RunEnv
    from references.ncf.benchmark import BENCHMARK, NcfBatch, NcfSettings, NcfState
    from references.ncf.model import NeuMF

    torch.manual_seed(0)
    model = NeuMF(30, 40, 8, (16, 8, 4))
    state = NcfState(settings=NcfSettings(), hparams={}, env=RunEnv(), generator=torch.Generator(), model=model,
                     optimizers=[torch.optim.SGD(model.parameters(), lr=0.0)])
    users, items = torch.randint(0, 30, (64,)), torch.randint(0, 40, (64,))
    labels = (torch.rand(64) < 0.2).float()
    loss_sum = BENCHMARK.train_step(state, NcfBatch(users, items, labels, 64))
    ours = [p.grad.clone() for p in model.parameters()]
    plain = F.binary_cross_entropy_with_logits(model(users, items), labels)
    torch.testing.assert_close(loss_sum / 64, plain.detach())
    for got, want in zip(ours, torch.autograd.grad(plain, list(model.parameters())), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_transformer_train_step_is_the_plain_soft_target_cross_entropy_step():
    """The Transformer's step: label-smoothed cross-entropy (1 - e on the gold token, e / (V - 1)
    on the others) per non-pad target token, written out with torch's soft-target
    cross-entropy, gives the same gradients (dropout off)."""
    import types

    from mlperf_train.distributed import RunEnv
    from references.transformer.benchmark import BENCHMARK, TransformerSettings, TransformerState
    from references.transformer.model import Transformer

    torch.manual_seed(0)
    vocab, smoothing = 50, 0.1
    settings = TransformerSettings(d_model=16, num_heads=4, ffn_inner=32, num_layers=2, vocab_size=vocab,
                                   dropout=0.0, attention_dropout=0.0, relu_dropout=0.0, label_smoothing=smoothing)
    model = Transformer(vocab, 16, 4, 32, 2, 0.0, 0.0, 0.0)
    hp = {"opt_base_learning_rate": 0.0, "opt_learning_rate_warmup_steps": 1}
    state = TransformerState(preset=types.SimpleNamespace(), env=RunEnv(), settings=settings, hp=hp, model=model,
                             raw_model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    src, tgt = torch.randint(2, vocab, (4, 9)), torch.randint(2, vocab, (4, 7))
    src[0, 6:] = 0
    tgt[1, 5:] = 0  # padding: not counted
    BENCHMARK.train_step(state, (src, tgt))
    ours = [p.grad.clone() for p in model.parameters()]
    logits, mask = model(src, tgt)[tgt != 0], tgt[tgt != 0]
    soft = torch.full_like(logits, smoothing / (vocab - 1)).scatter_(1, mask[:, None], 1 - smoothing)
    plain = F.cross_entropy(logits, soft)
    for got, want in zip(ours, torch.autograd.grad(plain, list(model.parameters())), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def _grads_after(step, parameters):
    """Run ``step()`` (a reference's train_step at learning rate 0) and return its loss and
    the gradients it left on ``parameters``."""
    loss = step()
    return loss.detach(), [p.grad.detach().clone() for p in parameters]


def test_ssd_train_step_is_the_plain_hard_negative_loss():
    """SSD's step against its loss written image by image: Smooth-L1 on the positives'
    offsets, cross-entropy on the positives and on the 3·positives background boxes of
    highest cross-entropy (``topk``), over the image's positives; the mean over images (an
    image without positives counts 0)."""
    from mlperf_train.distributed import RunEnv
    from references.ssd import boxes as box_ops
    from references.ssd.benchmark import BENCHMARK, SsdSettings, SsdState
    from references.ssd.model import SSD300
    from references.ssd.optim import recipe_from_hparams

    torch.manual_seed(0)
    model = SSD300(num_classes=3, width=4)
    recipe = recipe_from_hparams({"opt_base_learning_rate": 0.0, "opt_weight_decay": 5e-4})
    state = SsdState(env=RunEnv(), settings=SsdSettings(width=4, num_classes=3), recipe=recipe, global_batch_size=3,
                     max_samples=1, dboxes=box_ops.default_boxes(300), model=model, ddp_model=model,
                     optimizer=recipe.build_optimizer(model))
    images = torch.randn(3, 3, 300, 300)
    labels = torch.zeros(3, 8732, dtype=torch.long)
    labels[0, [5, 900, 8000]] = torch.tensor([1, 2, 1])
    labels[1, 4000] = 2                               # image 2: no positives
    offsets = torch.randn(3, 8732, 4)
    parameters = [p for p in model.parameters()]

    def plain():
        locs, scores = model(images)
        total = torch.zeros(())
        for loc, score, offset, label in zip(locs, scores, offsets, labels):
            positive = label > 0
            count = int(positive.sum())
            if count == 0:
                continue
            box = F.smooth_l1_loss(loc.t()[positive], offset[positive], reduction="sum")
            ce = F.cross_entropy(score.t(), label, reduction="none")
            hard = ce.masked_fill(positive, float("-inf")).topk(3 * count).indices
            total = total + (box + ce[positive].sum() + ce[hard].sum()) / count
        loss = total / len(images)
        return loss.detach(), [g.detach() for g in torch.autograd.grad(loss, parameters)]
    expected = plain()
    _assert_same(expected, _grads_after(lambda: BENCHMARK.train_step(state, (images, offsets, labels)), parameters))


def test_maskrcnn_train_step_is_the_plain_sum_of_the_five_losses():
    """Mask R-CNN's step: the sum of the model's five losses (RPN objectness and box, RoI
    class, box and mask) on the batch, as a plain forward computes it under the same seed
    (the RPN's and RoI heads' samplers draw from torch's generator)."""
    from mlperf_train.distributed import RunEnv
    from references.maskrcnn.benchmark import BENCHMARK, MaskrcnnSettings, MaskrcnnState
    from references.maskrcnn.model import MaskRCNN, ModelSize
    from references.maskrcnn.optim import Recipe

    torch.manual_seed(0)
    size = ModelSize(num_classes=3, width=4, fpn_channels=8, fc_dim=16, anchor_sizes=(8, 16, 32, 64, 128),
                     rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, roi_batch_size_per_image=16)
    model = MaskRCNN(size)
    recipe = Recipe.from_hparams({"opt_base_learning_rate": 0.0, "opt_learning_rate_warmup_steps": 1,
                                  "opt_learning_rate_warmup_factor": 0.0, "opt_learning_rate_decay_factor": 0.1,
                                  "opt_learning_rate_decay_steps": [10]}, "linear")
    state = MaskrcnnState(env=RunEnv(), settings=MaskrcnnSettings(), recipe=recipe, global_batch_size=2, min_size=64,
                          max_size=96, model=model, ddp_model=model, optimizer=recipe.build_optimizer(model))
    images = torch.randn(2, 3, 64, 96) * 50
    sizes = [(64, 96), (64, 80)]
    boxes = torch.tensor([[8.0, 8.0, 40.0, 50.0], [30.0, 20.0, 70.0, 60.0]])
    targets = [{"boxes": boxes.clone(), "labels": torch.tensor([1, 2]),
                "polygons": [[[x1, y1, x2, y1, x2, y2, x1, y2]] for x1, y1, x2, y2 in boxes.tolist()]}
               for _ in range(2)]
    parameters = [p for p in model.parameters() if p.requires_grad]
    model.train()
    torch.manual_seed(1)
    loss = sum(model(images, sizes, targets).values())
    expected = loss.detach(), [g.detach() for g in torch.autograd.grad(loss, parameters)]
    torch.manual_seed(1)
    _assert_same(expected, _grads_after(lambda: BENCHMARK.train_step(state, (images, sizes, targets)), parameters))


def test_gnmt_train_step_is_plain_label_smoothed_cross_entropy_with_clipping():
    """GNMT's step: torch's label-smoothed cross-entropy summed over non-pad target tokens,
    divided by the sentences, gradients clipped to the global norm (dropout off)."""
    from mlperf_train.distributed import RunEnv
    from references.gnmt.benchmark import BENCHMARK, GNMTSettings, GNMTState
    from references.gnmt.model import GNMT

    torch.manual_seed(0)
    vocab, smoothing, clip = 30, 0.1, 0.5
    settings = GNMTSettings(hidden_size=8, vocab_size=vocab, dropout=0.0, label_smoothing=smoothing,
                            grad_clip_norm=clip)
    model = GNMT(vocab, 8, 4, 0.0)
    state = GNMTState(preset=None, env=RunEnv(), settings=settings, hp={"opt_base_learning_rate": 0.0}, model=model,
                      raw_model=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.0))
    src, lengths = torch.randint(4, vocab, (3, 7)), torch.tensor([7, 6, 4])
    src[1, 6:], src[2, 4:] = 0, 0
    tgt = torch.randint(4, vocab, (3, 6))
    tgt[2, 4:] = 0                                    # padding: not counted
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    parameters = list(model.parameters())
    logits = model(src, lengths, tgt_in)
    loss = F.cross_entropy(logits.reshape(-1, vocab), tgt_out.reshape(-1), ignore_index=0,
                           label_smoothing=smoothing, reduction="sum") / 3
    grads = torch.autograd.grad(loss, parameters)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert norm > clip                                # the clipping is exercised
    expected = loss.detach(), [g * (clip / (norm + 1e-6)) for g in grads]
    _assert_same(expected, _grads_after(lambda: BENCHMARK.train_step(state, (src, lengths, tgt_in, tgt_out)),
                                        parameters))


def test_minigo_train_step_is_plain_policy_value_and_l2_loss():
    """MiniGo's step: soft-target cross-entropy of the policy, value MSE weighted by
    ``value_weight``, plus 1e-4 / 2 times the squared conv and FC kernels."""
    from mlperf_train.distributed import RunEnv
    from references.minigo.benchmark import BENCHMARK, MinigoSettings, MinigoState
    from references.minigo.model import DualNet

    torch.manual_seed(0)
    model = DualNet(filters=4, blocks=2, value_fc=8)
    settings = MinigoSettings(filters=4, blocks=2, value_fc=8)
    state = MinigoState(settings=settings, hparams={}, env=RunEnv(), protocol="0.6.0", model=model, core=model,
                        optimizer=torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9), best={}, global_step=0,
                        pool=None)
    planes = (torch.rand(6, 17, 9, 9) < 0.3).float()
    pi, z = torch.softmax(torch.randn(6, 82), dim=1), torch.tensor([1.0, -1, 1, 1, -1, -1])
    parameters = list(model.parameters())
    logits, value = model(planes)
    kernels = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    loss = (F.cross_entropy(logits, pi) + settings.value_weight * ((value - z) ** 2).mean()
            + 1e-4 / 2 * sum((k ** 2).sum() for k in kernels))
    expected = loss.detach(), [g.detach() for g in torch.autograd.grad(loss, parameters)]
    _assert_same(expected, _grads_after(lambda: BENCHMARK.train_step(state, {"planes": planes, "pi": pi, "z": z}),
                                        parameters))


def test_minigo_in_place_blocks_keep_loss_and_gradients():
    """MiniGo's forward with in-place ReLUs and residual add (issue 18) against the plain
    out-of-place formulation it replaced: the same loss and gradients."""
    from references.minigo.model import DualNet

    def plain(model, x):
        h = torch.relu(model.stem[1](model.stem[0](x)))
        for block in model.trunk:
            y = torch.relu(block.bn1(block.conv1(h)))
            h = torch.relu(h + block.bn2(block.conv2(y)))
        logits = model.policy_fc(torch.relu(model.policy_conv[1](model.policy_conv[0](h))).flatten(1))
        v = torch.relu(model.value_fc1(torch.relu(model.value_conv[1](model.value_conv[0](h))).flatten(1)))
        return logits, torch.tanh(model.value_fc2(v)).squeeze(1)

    torch.manual_seed(0)
    model = DualNet(filters=8, blocks=2, value_fc=8)
    planes = (torch.rand(5, 17, 9, 9) < 0.3).float()
    pi, z = torch.softmax(torch.randn(5, 82), dim=1), torch.tensor([1.0, -1, 1, -1, 1])

    def loss_and_grads(forward):
        logits, value = forward(planes)
        loss = -(pi * F.log_softmax(logits, dim=1)).sum(1).mean() + F.mse_loss(value, z)
        return loss.detach(), [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]
    expected = loss_and_grads(lambda x: plain(model, x))
    _assert_same(expected, loss_and_grads(model), rtol=1e-6, atol=1e-7)
