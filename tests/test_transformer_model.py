"""Transformer model: size and init of the big model, masks, incremental decoding, loss, LR."""
import math

import pytest
import torch

from references.transformer.benchmark import learning_rate
from references.transformer.metric import label_smoothed_loss
from references.transformer.model import Transformer, position_encoding


def tiny(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return Transformer(vocab_size=50, d_model=16, num_heads=4, ffn_inner=32, num_layers=2,
                       dropout=dropout, attention_dropout=dropout, relu_dropout=dropout).eval()


def test_big_model_size_and_init():
    with torch.device("meta"):
        big = Transformer(33708)
    assert sum(p.numel() for p in big.parameters()) == 210_804_736  # spec: about 210.8 M (33708 x 1024 + 6 x 12.59 M + 6 x 16.79 M + 2 norms)
    model = tiny()
    assert model.embedding.std().item() == pytest.approx(16 ** -0.5, rel=0.1)
    q = model.encoder[0].self_attention.sublayer.q
    assert q.bias is None and q.weight.abs().max() <= math.sqrt(6 / (16 + 16))
    ffn = model.encoder[0].ffn.sublayer.filter
    assert ffn.weight.abs().max() <= math.sqrt(6 / (16 + 32)) and ffn.bias.eq(0).all()
    assert model.encoder_norm.weight.eq(1).all() and model.encoder_norm.eps == 1e-6


def test_position_encoding_is_sin_then_cos():
    pe = position_encoding(5, 8)
    assert pe[0].tolist() == [0.0] * 4 + [1.0] * 4
    assert pe[3, 0].item() == pytest.approx(math.sin(3)) and pe[3, 4].item() == pytest.approx(math.cos(3))
    assert pe[3, 3].item() == pytest.approx(math.sin(3 / 1e4), rel=1e-4)  # the slowest timescale is 1e4


def test_padding_is_masked():
    model = tiny()
    src = torch.tensor([[5, 6, 7, 1]])
    tgt = torch.tensor([[8, 9, 1]])
    padded_src = torch.tensor([[5, 6, 7, 1, 0, 0, 0]])
    with torch.no_grad():
        memory, _ = model.encode(src)
        padded_memory, _ = model.encode(padded_src)
        assert torch.allclose(memory, padded_memory[:, :4], atol=1e-5)
        assert torch.allclose(model(src, tgt), model(padded_src, tgt), atol=1e-5)
        # padding the target does not change the logits of the real positions
        assert torch.allclose(model(src, tgt), model(src, torch.tensor([[8, 9, 1, 0, 0]]))[:, :3], atol=1e-5)
    assert model.embed(torch.tensor([[0]])).abs().sum() == 0  # pad rows are zeroed


def test_decoder_sees_only_earlier_targets():
    model = tiny()
    src = torch.tensor([[5, 6, 7, 1]])
    tgt = torch.tensor([[8, 9, 10, 11, 1]])
    changed = tgt.clone()
    changed[0, 2] = 30
    with torch.no_grad():
        a, b = model(src, tgt), model(src, changed)
    # position t is predicted from targets before t: positions 0..2 are unchanged
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6) and not torch.allclose(a[:, 3:], b[:, 3:])


def test_incremental_decoding_equals_teacher_forcing():
    model = tiny(seed=1)
    src = torch.tensor([[5, 6, 7, 1], [9, 1, 0, 0]])
    tgt = torch.tensor([[8, 9, 10, 1], [4, 4, 1, 0]])
    with torch.no_grad():
        full = torch.log_softmax(model(src, tgt), dim=-1)
        static = model.start_cache(*model.encode(src))
        cache, last = {}, torch.zeros(2, dtype=torch.long)
        for step in range(tgt.shape[1]):
            step_log_probs = model.decode_step(last, step, cache, static)
            assert torch.allclose(step_log_probs, full[:, step], atol=1e-5)
            last = tgt[:, step]


def test_label_smoothed_loss_by_hand():
    logits = torch.tensor([[[2.0, 0.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]]])
    targets = torch.tensor([[2, 0]])  # the second position is padding
    total, count = label_smoothed_loss(logits, targets, smoothing=0.1)
    log_p = torch.log_softmax(logits[0, 0], -1)
    soft = torch.tensor([0.1 / 3, 0.1 / 3, 0.9, 0.1 / 3])
    entropy = -(soft * soft.log()).sum()
    assert count == 1 and total.item() == pytest.approx((-(soft * log_p).sum() - entropy).item(), rel=1e-6)
    # predicting exactly the soft targets costs nothing
    total, _ = label_smoothed_loss(soft.log().view(1, 1, 4), torch.tensor([[2]]), 0.1)
    assert total.item() == pytest.approx(0.0, abs=1e-6)


def test_learning_rate_schedule():
    assert learning_rate(0, 2.0, 1024, 16000) == 0.0
    peak = 2.0 * 1024 ** -0.5 * 16000 ** -0.5
    assert learning_rate(16000, 2.0, 1024, 16000) == pytest.approx(peak) and peak == pytest.approx(4.94e-4, rel=1e-3)
    assert learning_rate(8000, 2.0, 1024, 16000) == pytest.approx(peak / 2)
    assert learning_rate(64000, 2.0, 1024, 16000) == pytest.approx(peak / 2)
