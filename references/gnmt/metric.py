"""GNMT's training loss and its quality metric (spec gnmt.md §3 "Loss", §5).

BLEU: the BPE pieces are joined (``@@ `` removed), the text is detokenised with Moses'
rules (``sacremoses``, English rules: the reference runs ``detokenizer.perl`` without
``-l``), then scored as uncased sacreBLEU with the ``intl`` tokenizer against the raw
references, as summed statistics (``references/seq2seq/bleu.py``, shared with the
Transformer) so that ranks add up exactly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sacremoses import MosesDetokenizer

from references.seq2seq import bleu

PAD_ID = 0
BPE_SEPARATOR = "@@"


def label_smoothed_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per non-PAD target token (1 - s) * (-log p_gold) + s * mean_v(-log p_v), summed.
    Returns (the sum, the token count) as tensors on the logits' device; the reference's
    training loss is the sum divided by the batch size in sentences (not by tokens)."""
    log_probs = F.log_softmax(logits.float(), dim=-1)
    gold = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    smooth = -log_probs.mean(dim=-1)
    mask = targets != PAD_ID
    per_token = (1.0 - smoothing) * gold + smoothing * smooth
    return (per_token * mask).sum(), mask.sum()


def join_bpe(tokens: list[str]) -> str:
    """BPE pieces back to Moses tokens: ``"Ha@@ us ."`` -> ``"Haus ."``."""
    text = " ".join(tokens).replace(BPE_SEPARATOR + " ", "")
    return text.replace(BPE_SEPARATOR, "").strip()


class Detokenizer:
    """Moses detokenisation with English rules, as ``detokenizer.perl`` without ``-l``."""

    def __init__(self):
        self._moses = MosesDetokenizer(lang="en")

    def __call__(self, tokenized: str) -> str:
        return self._moses.detokenize(tokenized.split())


def bleu_statistics(hypotheses: list[str], references: list[str]) -> np.ndarray:
    """Detokenised hypotheses against raw references: uncased, ``intl`` tokenization."""
    return bleu.statistics(hypotheses, references, lowercase=True, tokenize="intl")


def bleu_points(stats: np.ndarray) -> float:
    return bleu.score(stats)
