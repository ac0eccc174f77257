"""Plain-PyTorch peers of each reference's training step, for ``perf/sidebyside.py``.

Each ``*_peer`` function builds the model a PyTorch user would write for the same job (a
torchvision model, ``torch.nn.Transformer``, ``torch.nn.LSTM``, ...) at the given sizes and
returns ``step()``: one training step on the fixed batch it was given, written like
torchvision's ``train_one_epoch`` (forward, loss, ``zero_grad``, backward, ``step``),
returning the loss tensor. ``make_optimizer(parameters)`` builds the optimizer, so that the
peer can use exactly the class and flags the reference uses (the comparison is about the
step's code, not about the optimizer's implementation, unless a case says otherwise).

Peers are not references: nothing here follows the MLPerf reference's numerics; only the
shapes and the kind of work do.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

MakeOptimizer = Callable[[Sequence[nn.Parameter]], torch.optim.Optimizer]
Step = Callable[[], torch.Tensor]


def _plain_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_of: Callable[[], torch.Tensor],
                clip_norm: float | None = None) -> Step:
    """``clip_norm``: clip the gradients' global norm before the update (GNMT's recipe)."""
    model.train()

    def step() -> torch.Tensor:
        loss = loss_of()
        optimizer.zero_grad()
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        return loss.detach()
    return step


# --- ResNet-50: torchvision's model and train_one_epoch --------------------------------------
def resnet_peer(images: torch.Tensor, labels: torch.Tensor, make_optimizer: MakeOptimizer,
                channels_last: bool, num_classes: int = 1000) -> Step:
    """``torchvision.models.resnet50`` (in-place ReLUs and residual add), cross-entropy;
    images (b, 3, H, W) are converted to the layout on every step, as a loader's would be."""
    import torchvision
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = torchvision.models.resnet50(weights=None, num_classes=num_classes).to(memory_format=memory_format)
    criterion, optimizer = nn.CrossEntropyLoss(), make_optimizer(model.parameters())
    return _plain_step(model, optimizer,
                       lambda: criterion(model(images.to(memory_format=memory_format)), labels))


# --- Transformer: torch.nn.Transformer ------------------------------------------------------
class PeerTransformer(nn.Module):
    """``nn.Transformer`` (pre-LN, batch first) between a shared embedding and its transpose
    as the output layer, sinusoidal positions; what a PyTorch user writes for WMT."""

    def __init__(self, vocab_size: int, d_model: int, num_heads: int, ffn_inner: int, num_layers: int,
                 dropout: float):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.transformer = nn.Transformer(d_model, num_heads, num_layers, num_layers, ffn_inner, dropout,
                                          batch_first=True, norm_first=True, layer_norm_eps=1e-6)
        position = torch.arange(4096, dtype=torch.float32)[:, None]
        rates = torch.exp(torch.arange(d_model // 2, dtype=torch.float32) * -(math.log(1e4) / (d_model // 2 - 1)))
        self.register_buffer("position", torch.cat([torch.sin(position * rates), torch.cos(position * rates)], 1))

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        scale, length = self.d_model ** 0.5, tgt.shape[1]
        shifted = F.pad(tgt, (1, 0))[:, :-1]
        x = self.embedding(src) * scale + self.position[:src.shape[1]]
        y = self.embedding(shifted) * scale + self.position[:length]
        pad = src == 0
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=tgt.device)
        h = self.transformer(x, y, tgt_mask=causal, src_key_padding_mask=pad, memory_key_padding_mask=pad,
                             tgt_is_causal=True)
        return h @ self.embedding.weight.t()


def transformer_peer(src: torch.Tensor, tgt: torch.Tensor, make_optimizer: MakeOptimizer, vocab_size: int,
                     d_model: int, num_heads: int, ffn_inner: int, num_layers: int, dropout: float,
                     label_smoothing: float) -> Step:
    """Label-smoothed cross-entropy per non-pad target token (torch's own smoothing)."""
    model = PeerTransformer(vocab_size, d_model, num_heads, ffn_inner, num_layers, dropout)
    optimizer = make_optimizer(model.parameters())

    def loss_of():
        logits = model(src, tgt)
        return F.cross_entropy(logits.reshape(-1, vocab_size), tgt.reshape(-1), ignore_index=0,
                               label_smoothing=label_smoothing)
    return _plain_step(model, optimizer, loss_of)


# --- NCF: NeuMF ------------------------------------------------------------------------------
class PeerNeuMF(nn.Module):
    def __init__(self, num_users: int, num_items: int, mf_dim: int, layers: Sequence[int]):
        super().__init__()
        self.mf_user, self.mf_item = nn.Embedding(num_users, mf_dim), nn.Embedding(num_items, mf_dim)
        self.mlp_user = nn.Embedding(num_users, layers[0] // 2)
        self.mlp_item = nn.Embedding(num_items, layers[0] // 2)
        self.mlp = nn.Sequential(*(m for a, b in zip(layers[:-1], layers[1:]) for m in (nn.Linear(a, b), nn.ReLU())))
        self.final = nn.Linear(mf_dim + layers[-1], 1)

    def forward(self, users, items):
        gmf = self.mf_user(users) * self.mf_item(items)
        mlp = self.mlp(torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=1))
        return self.final(torch.cat([gmf, mlp], dim=1)).squeeze(1)


def ncf_peer(users, items, labels, make_optimizer: MakeOptimizer, num_users: int, num_items: int,
             mf_dim: int, layers: Sequence[int]) -> Step:
    """NeuMF, mean binary cross-entropy on logits."""
    model = PeerNeuMF(num_users, num_items, mf_dim, layers)
    optimizer = make_optimizer(model.parameters())
    return _plain_step(model, optimizer, lambda: F.binary_cross_entropy_with_logits(model(users, items), labels))


# --- detection: SSD and Mask R-CNN -----------------------------------------------------------
def detection_peer(model: nn.Module, images: list, targets: list, make_optimizer: MakeOptimizer) -> Step:
    """Any torchvision detection model (in train mode it returns its losses): the sum of its
    losses, as torchvision's detection ``train_one_epoch``. ``images``: list of (3, H, W);
    ``targets``: list of dicts (``boxes`` (n, 4) xyxy, ``labels`` (n,), ``masks`` (n, H, W))."""
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad])
    return _plain_step(model, optimizer, lambda: sum(model(images, targets).values()))


def maskrcnn_peer(images: list, targets: list, make_optimizer: MakeOptimizer, num_classes: int = 81,
                  min_size: int = 800, max_size: int = 1333, proposals_per_image: int = 2000,
                  rois_per_image: int = 512) -> Step:
    """``torchvision.models.detection.maskrcnn_resnet50_fpn`` as it is built for a
    pretrained backbone (FrozenBatchNorm2d, 3 trainable stages: the stem and res2 frozen, as
    the reference's), without loading weights (the speed does not depend on them)."""
    import torchvision
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import FrozenBatchNorm2d
    body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    model = torchvision.models.detection.MaskRCNN(
        _resnet_fpn_extractor(body, 3), num_classes=num_classes, min_size=min_size, max_size=max_size,
        rpn_post_nms_top_n_train=proposals_per_image, box_batch_size_per_image=rois_per_image)
    return detection_peer(model, images, targets, make_optimizer)


class PeerSSD(nn.Module):
    """SSD300 on ResNet-34 as a PyTorch user writes it from torchvision's ``resnet34``:
    conv1..layer3 with layer3's first block at stride 1 (38×38 at 300 px), five extra
    blocks (1×1 conv, ReLU, 3×3 conv, ReLU; MLPerf's widths scaled by ``width / 64``), a 3×3
    location and class head per map (4/6/6/6/4/4 boxes per cell: 8,732 boxes), outputs
    permuted to (N, boxes, 4) and (N, boxes, classes) as torchvision's SSD head does."""

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        import torchvision
        from torchvision.models.resnet import BasicBlock
        net = torchvision.models.resnet34(weights=None)
        if width != 64:  # the same stages at another width
            net.inplanes = width
            net.conv1, net.bn1 = nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width)
            net.layer1 = net._make_layer(BasicBlock, width, 3)
            net.layer2 = net._make_layer(BasicBlock, 2 * width, 4, stride=2)
            net.layer3 = net._make_layer(BasicBlock, 4 * width, 6, stride=2)
        net.layer3[0].conv1.stride = net.layer3[0].downsample[0].stride = (1, 1)
        self.trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
        self.num_classes, channels, extras = num_classes, [4 * width], []
        for middle, out, stride, padding in ((256, 512, 2, 1), (256, 512, 2, 1), (128, 256, 2, 1),
                                             (128, 256, 1, 0), (128, 256, 1, 0)):
            middle, out = middle * width // 64, out * width // 64
            extras.append(nn.Sequential(nn.Conv2d(channels[-1], middle, 1), nn.ReLU(inplace=True),
                                        nn.Conv2d(middle, out, 3, stride, padding), nn.ReLU(inplace=True)))
            channels.append(out)
        self.extras = nn.ModuleList(extras)
        anchors = (4, 6, 6, 6, 4, 4)
        self.loc = nn.ModuleList(nn.Conv2d(c, a * 4, 3, padding=1) for c, a in zip(channels, anchors))
        self.conf = nn.ModuleList(nn.Conv2d(c, a * num_classes, 3, padding=1) for c, a in zip(channels, anchors))

    def forward(self, x):
        maps = [self.trunk(x)]
        for block in self.extras:
            maps.append(block(maps[-1]))
        n = x.shape[0]
        locs = torch.cat([h(m).permute(0, 2, 3, 1).reshape(n, -1, 4) for h, m in zip(self.loc, maps)], 1)
        scores = torch.cat([h(m).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes)
                            for h, m in zip(self.conf, maps)], 1)
        return locs, scores


def ssd_peer(images: torch.Tensor, offsets: torch.Tensor, labels: torch.Tensor, make_optimizer: MakeOptimizer,
             num_classes: int = 81, width: int = 64) -> Step:
    """images (N, 3, 300, 300); offsets (N, 8732, 4) and labels (N, 8732) int64 (0 =
    background), encoded by the data pipeline. Loss as MLPerf's SSD: Smooth-L1 over the
    positives' coordinates plus cross-entropy over the positives and the 3·positives hardest
    negatives (torchvision SSD's double sort), per image over its positives, mean over images."""
    model = PeerSSD(num_classes, width)
    optimizer = make_optimizer(model.parameters())

    def loss_of():
        locs, scores = model(images)
        positive = labels > 0
        num_pos = positive.sum(1)
        box = (F.smooth_l1_loss(locs, offsets, reduction="none").sum(2) * positive).sum(1)
        ce = F.cross_entropy(scores.reshape(-1, num_classes), labels.reshape(-1), reduction="none").view_as(labels)
        negative = ce.clone()
        negative[positive] = -float("inf")
        _, order = negative.sort(1, descending=True)
        hard = order.sort(1)[1] < (3 * num_pos)[:, None]
        classes = (ce * positive).sum(1) + (ce * hard).sum(1)
        return ((box + classes) / num_pos.clamp(min=1) * (num_pos > 0)).mean()
    return _plain_step(model, optimizer, loss_of)


# --- GNMT: torch.nn.LSTM encoder-decoder ------------------------------------------------------
class PeerGNMT(nn.Module):
    """GNMT's shape in ``nn.LSTM`` layers: a bidirectional first encoder layer, then
    unidirectional ones with residual connections from the third; the decoder's first layer
    feeds a Bahdanau (normalized) attention whose context is concatenated to the input of
    every later layer (residual from the third); a shared output projection."""

    def __init__(self, vocab_size: int, hidden: int, num_layers: int, dropout: float):
        super().__init__()
        self.embed_src, self.embed_tgt = nn.Embedding(vocab_size, hidden), nn.Embedding(vocab_size, hidden)
        self.encoder = nn.ModuleList([nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True),
                                      nn.LSTM(2 * hidden, hidden, batch_first=True)] +
                                     [nn.LSTM(hidden, hidden, batch_first=True) for _ in range(num_layers - 2)])
        self.decoder = nn.ModuleList([nn.LSTM(hidden, hidden, batch_first=True)] +
                                     [nn.LSTM(2 * hidden, hidden, batch_first=True) for _ in range(num_layers - 1)])
        self.query, self.keys = nn.Linear(hidden, hidden, bias=False), nn.Linear(hidden, hidden, bias=False)
        self.score = nn.utils.parametrizations.weight_norm(nn.Linear(hidden, 1, bias=False))
        self.score_bias = nn.Parameter(torch.zeros(hidden))
        self.classifier = nn.Linear(hidden, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embed_src(src))
        for i, lstm in enumerate(self.encoder):
            y, _ = lstm(self.dropout(x) if i else x)
            x = x + y if i >= 2 else y
        memory, pad = x, src == 0
        h, _ = self.decoder[0](self.dropout(self.embed_tgt(tgt)))
        scores = self.score(torch.tanh(self.query(h)[:, :, None] + self.keys(memory)[:, None] + self.score_bias))
        weights = torch.softmax(scores.squeeze(-1).masked_fill(pad[:, None], float("-inf")), dim=-1)
        context = weights @ memory
        x = h
        for i, lstm in enumerate(self.decoder[1:], start=1):
            y, _ = lstm(self.dropout(torch.cat([x, context], dim=-1)))
            x = x + y if i >= 2 else y
        return self.classifier(x)


def gnmt_peer(src, tgt, make_optimizer: MakeOptimizer, vocab_size: int, hidden: int = 1024, num_layers: int = 4,
              dropout: float = 0.2, label_smoothing: float = 0.1, clip_norm: float | None = 5.0) -> Step:
    """Teacher forcing on (src, tgt) (b, length) int64 padded with 0: the decoder reads tgt
    without its last token and predicts tgt without its first; the gradients' norm clipped
    at ``clip_norm`` (GNMT's recipe)."""
    model = PeerGNMT(vocab_size, hidden, num_layers, dropout)
    optimizer = make_optimizer(model.parameters())

    def loss_of():
        logits = model(src, tgt[:, :-1])
        return F.cross_entropy(logits.reshape(-1, vocab_size), tgt[:, 1:].reshape(-1), ignore_index=0,
                               label_smoothing=label_smoothing)
    return _plain_step(model, optimizer, loss_of, clip_norm)


# --- MiniGo: the policy-value network's training step -----------------------------------------
class PeerGoNet(nn.Module):
    """AlphaGo Zero's residual tower (conv-BN-ReLU, then blocks of two), policy head (2
    filters, FC to board² + 1 moves) and value head (1 filter, FC, ReLU, FC, tanh)."""

    def __init__(self, board_size: int, input_planes: int, filters: int, blocks: int, value_fc: int = 256):
        super().__init__()

        def conv_bn(c_in, c_out, k):
            return [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out)]
        self.stem = nn.Sequential(*conv_bn(input_planes, filters, 3), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(nn.Sequential(*conv_bn(filters, filters, 3), nn.ReLU(inplace=True),
                                                  *conv_bn(filters, filters, 3)) for _ in range(blocks))
        points = board_size * board_size
        self.policy = nn.Sequential(*conv_bn(filters, 2, 1), nn.ReLU(inplace=True), nn.Flatten(),
                                    nn.Linear(2 * points, points + 1))
        self.value = nn.Sequential(*conv_bn(filters, 1, 1), nn.ReLU(inplace=True), nn.Flatten(),
                                   nn.Linear(points, value_fc), nn.ReLU(inplace=True), nn.Linear(value_fc, 1), nn.Tanh())

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = F.relu(block(x) + x, inplace=True)
        return self.policy(x), self.value(x).squeeze(1)


def minigo_peer(features, policy_target, value_target, make_optimizer: MakeOptimizer, board_size: int = 19,
                filters: int = 256, blocks: int = 19, value_fc: int = 256, value_cost_weight: float = 1.0,
                l2_strength: float = 1e-4) -> Step:
    """features (b, planes, n, n) float; policy_target (b, n² + 1) probabilities;
    value_target (b,) in [-1, 1]. Loss: soft cross-entropy + weighted MSE + L2 / 2 on the
    kernels (MiniGo's loss; its optimizer has no weight decay)."""
    model = PeerGoNet(board_size, features.shape[1], filters, blocks, value_fc)
    optimizer = make_optimizer(model.parameters())
    kernels = [p for p in model.parameters() if p.dim() > 1]

    def loss_of():
        logits, value = model(features)
        policy_loss = -(policy_target * F.log_softmax(logits, dim=1)).sum(1).mean()
        l2 = sum((w * w).sum() for w in kernels) * (l2_strength / 2)
        return policy_loss + value_cost_weight * F.mse_loss(value, value_target) + l2
    return _plain_step(model, optimizer, loss_of)
