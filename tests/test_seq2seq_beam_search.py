"""Beam search on a Markov chain small enough to follow by hand."""
import math

import pytest
import torch

from references.seq2seq.beam_search import beam_search, length_penalty

START, EOS, A, B = 0, 1, 2, 3
TINY = 1e-9
# P(next | last token). Greedy takes A (0.6) and ends with "A EOS" (0.204); a beam of two
# also keeps B (0.4), and "B EOS" (0.36) wins.
CHAIN = {START: {EOS: TINY, A: 0.6, B: 0.4 - TINY},
         A: {EOS: 0.34, A: 0.33, B: 0.33},
         B: {EOS: 0.9, A: 0.05, B: 0.05}}


def chain_step(last_ids, step, cache):
    table = torch.full((4, 4), TINY)
    for last, row in CHAIN.items():
        for nxt, p in row.items():
            table[last, nxt] = p
    return table[last_ids].log()


def search(beam, alpha=0.0, max_len=10, batch=1):
    return beam_search(chain_step, {}, batch, beam, max_len, alpha, EOS)


def test_greedy_and_beam_by_hand():
    seq, score = search(beam=1)
    assert seq[0].tolist()[:2] == [A, EOS] and score[0].item() == pytest.approx(math.log(0.6 * 0.34), rel=1e-5)
    seq, score = search(beam=2)
    assert seq[0].tolist()[:2] == [B, EOS] and score[0].item() == pytest.approx(math.log(0.4 * 0.9), rel=1e-5)


def test_length_penalty_divides_the_finished_score():
    seq, score = search(beam=2, alpha=0.6)
    assert seq[0].tolist()[:2] == [B, EOS]
    assert score[0].item() == pytest.approx(math.log(0.4 * 0.9) / length_penalty(2, 0.6), rel=1e-5)
    assert length_penalty(1, 0.6) == pytest.approx(1.0)


def test_stops_early_and_pads_after_eos():
    seq, _ = search(beam=2, max_len=50)
    assert seq.shape[1] < 50 and seq[0, 2:].eq(0).all()


def test_no_finished_sequence_returns_the_best_alive_one():
    seq, score = search(beam=1, max_len=1)  # the 2 best first steps are A and B: nothing ended
    assert seq[0].tolist() == [A] and score[0].item() == pytest.approx(math.log(0.6), rel=1e-5)


def test_cache_follows_the_beams():
    """An order-2 chain whose previous token lives in the cache: the score of the returned
    sequence, recomputed from the sequence itself, matches only if the search reordered
    the cache with the beams."""
    torch.manual_seed(0)
    vocab, batch = 7, 3
    table = torch.randn(vocab, vocab, vocab).log_softmax(-1)

    def step(last_ids, step_index, cache):
        prev = cache.get("prev", torch.zeros_like(last_ids))
        cache["prev"] = last_ids.clone()
        return table[prev, last_ids]

    seq, score = beam_search(step, {}, batch, 4, 6, 0.0, EOS)
    for b in range(batch):
        tokens = [START, START] + seq[b].tolist()
        end = tokens.index(EOS, 2) + 1 if EOS in tokens[2:] else len(tokens)
        total = sum(table[tokens[i - 2], tokens[i - 1], tokens[i]].item() for i in range(2, end))
        assert score[b].item() == pytest.approx(total, rel=1e-4, abs=1e-4)
