"""GNMT model (spec gnmt.md §2), loss (§3), learning-rate schedule (§3) and GNMT's beam
search penalties (§2 "Beam search") on hand-computed cases."""
import math

import pytest
import torch

from references.gnmt import metric
from references.gnmt.beam_search import beam_search, coverage_penalty, length_normalization
from references.gnmt.benchmark import learning_rate, schedule_for
from references.gnmt.model import GNMT


def test_full_size_parameter_count_matches_the_spec():
    with torch.device("meta"):
        model = GNMT(32317, 1024, revision="v0.5")  # meta: shapes only, no init, no memory
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 160.7e6) < 0.05e6, count
    lstms = [m for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    assert len(lstms) == 8 and lstms[0].bidirectional and lstms[1].input_size == 2048
    assert [m.input_size for m in model.decoder.layers] == [2048, 2048, 2048]


def test_v06_init_is_uniform_with_zero_hidden_biases():
    torch.manual_seed(0)
    model = GNMT(50, 16)
    for name, p in model.named_parameters():
        if "bias_hh" in name or name.endswith("attention.b"):
            assert torch.all(p == 0), name
        elif name.endswith("attention.g"):
            assert math.isclose(p.item(), 1 / 4)
        else:
            assert p.abs().max() <= 0.1 and p.abs().max() > 0.05, name


def test_padding_is_never_attended_and_does_not_change_the_output():
    torch.manual_seed(0)
    model = GNMT(40, 8, dropout=0.0).eval()
    src = torch.tensor([[2, 5, 6, 7, 3]])
    padded = torch.tensor([[2, 5, 6, 7, 3, 0, 0, 0]])
    tgt = torch.tensor([[2, 9, 10]])
    static = model.encode(padded, torch.tensor([5]))
    _, weights, _ = model.decoder(model.embedding(tgt), static["keys"], static["processed_keys"], static["pad_mask"])
    assert torch.all(weights[..., 5:] == 0) and torch.allclose(weights.sum(-1), torch.ones(1, 3))
    assert torch.allclose(model(src, torch.tensor([5]), tgt), model(padded, torch.tensor([5]), tgt), atol=1e-6)
    # a batch mixing lengths gives each sentence its own result
    both = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]])
    out = model(both, torch.tensor([5, 3]), torch.cat([tgt, tgt]))
    alone = model(torch.tensor([[2, 8, 3]]), torch.tensor([3]), tgt)
    assert torch.allclose(out[1], alone[0], atol=1e-6)


def test_loss_is_smoothed_summed_over_tokens_and_padding_free():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]]]))
    targets = torch.tensor([[1, 0]])  # the second position is padding
    total, count = metric.label_smoothed_loss(logits, targets, 0.1)
    expected = 0.9 * -math.log(0.25) + 0.1 * -(math.log(0.5) + 2 * math.log(0.25)) / 3
    assert count.item() == 1 and math.isclose(total.item(), expected, rel_tol=1e-6)


def test_schedule_warmup_remain_and_decay():
    assert math.isclose(learning_rate(0 + 1, 1e-3, 200), 1e-3 * 0.01 ** (199 / 200))
    assert learning_rate(200, 1e-3, 200, 1000, 100) == 1e-3
    assert learning_rate(999, 1e-3, 200, 1000, 100) == 1e-3
    assert learning_rate(1000, 1e-3, 200, 1000, 100) == 0.5e-3
    assert learning_rate(1150, 1e-3, 200, 1000, 100) == 0.25e-3
    assert learning_rate(5000, 1e-3, 200, 1000, 100) == 1e-3 / 16  # at most 4 decays
    assert learning_rate(5000, 5e-4) == 5e-4                          # v0.5: constant
    assert schedule_for(27326, 8) == {"opt_learning_rate_remain_steps": 145592,
                                      "opt_learning_rate_decay_interval": 18254}


def test_length_normalization_and_coverage_penalty_by_hand():
    assert math.isclose(length_normalization(torch.tensor([7]), 0.6).item(), (12 / 6) ** 0.6, rel_tol=1e-6)
    sums = torch.tensor([[0.5, 2.0, 0.0, 0.25]])  # min(., 1) -> 0.5, 1, 0 (log 0 -> 0), 0.25
    assert math.isclose(coverage_penalty(sums, 0.1).item(), 0.1 * (math.log(0.5) + math.log(0.25)), rel_tol=1e-6)


def _scripted_step(tables):
    """A fake model: at decoding step t every row gets the log-probabilities tables[t]
    (V values) and uniform attention over 2 source positions."""
    def step(words, static, state):
        t = 0 if state is None else int(state[0][0][0, 0, 0]) + 1
        probs = torch.tensor(tables[min(t, len(tables) - 1)]).log().expand(words.shape[0], -1)
        counter = torch.full((1, words.shape[0], 1), float(t))
        return probs, torch.full((words.shape[0], 2), 0.5), [(counter, counter)]
    return step


def test_beam_search_freezes_finished_beams_and_scores_them_once():
    # vocabulary: 0 pad, 1 unk, 2 BOS, 3 EOS, 4, 5. Step 0 favours 4 then EOS; then EOS wins.
    tables = [[1e-9, 1e-9, 1e-9, 0.3, 0.5, 0.2], [1e-9, 1e-9, 1e-9, 0.9, 0.05, 0.05]]
    out, lengths = beam_search(_scripted_step(tables), {"x": torch.zeros(1, 1)}, 1, 2, 10, 2, 3,
                               alpha=0.6, coverage_factor=0.1, source_length=2)
    # hypotheses: [BOS EOS] (log 0.3, len 2) and [BOS 4 EOS] (log 0.5 + log 0.9, len 3)
    short = math.log(0.3) / ((5 + 2) / 6) ** 0.6 + 0.1 * 2 * math.log(0.5)
    long = (math.log(0.5) + math.log(0.9)) / ((5 + 3) / 6) ** 0.6 + 0.1 * 2 * math.log(1.0)
    assert long > short
    assert out[0, :3].tolist() == [2, 4, 3] and lengths.item() == 3


@pytest.mark.parametrize("revision", ["v0.5", "v0.6"])
def test_decode_step_matches_the_teacher_forced_forward(revision):
    torch.manual_seed(1)
    model = GNMT(30, 8, dropout=0.0, revision=revision).eval()
    src, lengths, tgt = torch.tensor([[2, 5, 6, 3]]), torch.tensor([4]), torch.tensor([[2, 7, 8]])
    full = torch.log_softmax(model(src, lengths, tgt), -1)[0]
    static, state = model.encode(src, lengths), None
    for t in range(3):
        log_probs, _, state = model.decode_step(tgt[:, t], static, state)
        assert torch.allclose(log_probs[0], full[t], atol=1e-5)
