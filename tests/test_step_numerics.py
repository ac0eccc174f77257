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
