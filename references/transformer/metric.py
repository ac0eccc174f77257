"""The training loss and the quality metric of the Transformer reference (spec §3, §5)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from references.seq2seq import bleu

PAD_ID = 0


def label_smoothed_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over non-pad target tokens, their count), both tensors on the logits' device so
    that a training step never waits for the device to report a number. Soft targets put 1 - smoothing on the
    gold token and smoothing / (V - 1) on every other; the constant entropy of the soft
    targets is subtracted, so a perfect prediction of them scores 0 (as the reference)."""
    vocab_size = logits.shape[-1]
    confidence, low = 1.0 - smoothing, smoothing / (vocab_size - 1)
    log_probs = F.log_softmax(logits.float(), dim=-1)
    gold = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    cross_entropy = -(confidence * gold + low * (log_probs.sum(dim=-1) - gold))
    entropy = -(confidence * math.log(confidence) + (vocab_size - 1) * low * math.log(low + 1e-20)) \
        if smoothing > 0 else 0.0
    mask = targets != PAD_ID
    return ((cross_entropy - entropy) * mask).sum(), mask.sum()


def bleu_statistics(hypotheses: list[str], references: list[str]) -> np.ndarray:
    """This benchmark's BLEU: uncased, mteval-v14 international tokenization, no
    detokenizer (the hypothesis is the subtokenizer's decode), raw reference lines."""
    return bleu.statistics(hypotheses, references, lowercase=True, tokenize="intl")


def bleu_points(stats: np.ndarray) -> float:
    return bleu.score(stats)
