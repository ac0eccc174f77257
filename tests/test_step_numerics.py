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
