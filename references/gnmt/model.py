"""GNMT: the LSTM encoder-decoder with normalized Bahdanau attention (spec gnmt.md §2).

Batch-first throughout (the reference is time-major; the arithmetic is the same). Two
revisions differ where the spec says so: ``"v0.6"`` ([R06], the v0.6 and v0.7 reference:
dropout on the embeddings, dropout after the concat in the decoder, U(-0.1, 0.1) init) and
``"v0.5"`` ([R05]: no embedding dropout, dropout before the concat, PyTorch's default init).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD_ID = 0
MASKED_SCORE = -65504.0  # what the reference writes into padded source positions (fp16's lowest)
REVISIONS = ("v0.5", "v0.6")


class BahdanauAttention(nn.Module):
    """score(q, k) = g * (v / |v|) . tanh(W_q q + W_k k + b); softmax over the source
    positions the mask leaves open; the context is the weighted sum of the keys."""

    def __init__(self, hidden: int):
        super().__init__()
        self.linear_q = nn.Linear(hidden, hidden, bias=False)
        self.linear_k = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Parameter(torch.empty(hidden).uniform_(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden)))
        self.g = nn.Parameter(torch.tensor(1.0 / math.sqrt(hidden)))
        self.b = nn.Parameter(torch.zeros(hidden))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, processed_keys: torch.Tensor,
                pad_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query (b, t_q, h), keys and ``processed_keys`` = W_k keys (b, t_k, h), pad_mask
        (b, t_k) True at padding. Returns context (b, t_q, h) and weights (b, t_q, t_k)."""
        q = self.linear_q(query)
        total = torch.tanh(q.unsqueeze(2) + processed_keys.unsqueeze(1) + self.b)  # (b, t_q, t_k, h)
        scores = total.matmul(self.v / self.v.norm() * self.g)
        scores = scores.masked_fill(pad_mask.unsqueeze(1), MASKED_SCORE)
        weights = F.softmax(scores, dim=-1)
        return torch.bmm(weights, keys), weights


class Encoder(nn.Module):
    """L1 bidirectional (packed), L2 2h -> h, L3.. h -> h with residuals."""

    def __init__(self, hidden: int, num_layers: int, dropout: float, embed_dropout: bool):
        super().__init__()
        self.layers = nn.ModuleList([nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True),
                                     nn.LSTM(2 * hidden, hidden, batch_first=True)])
        self.layers.extend(nn.LSTM(hidden, hidden, batch_first=True) for _ in range(num_layers - 2))
        self.dropout = nn.Dropout(dropout)
        self.embed_dropout = embed_dropout

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(embedded) if self.embed_dropout else embedded
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        x, _ = pad_packed_sequence(self.layers[0](packed)[0], batch_first=True, total_length=embedded.shape[1])
        x, _ = self.layers[1](self.dropout(x))
        for layer in self.layers[2:]:
            x = x + layer(self.dropout(x))[0]
        return x


class Decoder(nn.Module):
    """L1 (its output is the attention query), L2 on [h, context], L3.. with residuals;
    the classifier maps the last layer to the vocabulary."""

    def __init__(self, hidden: int, num_layers: int, vocab_size: int, dropout: float, revision: str):
        super().__init__()
        self.attention_rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.attention = BahdanauAttention(hidden)
        self.layers = nn.ModuleList(nn.LSTM(2 * hidden, hidden, batch_first=True) for _ in range(num_layers - 1))
        self.classifier = nn.Linear(hidden, vocab_size)
        self.dropout = nn.Dropout(dropout)
        self.revision = revision

    def _with_context(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.revision == "v0.5":  # [R05]: dropout before the concat, on h only
            return torch.cat([self.dropout(x), context], dim=2)
        return self.dropout(torch.cat([x, context], dim=2))

    def forward(self, embedded, keys, processed_keys, pad_mask, state=None):
        """embedded (b, t, h) target-side inputs; ``state`` the per-layer (h, c) to start from
        (None: zeros). Returns logits (b, t, V), attention weights (b, t, t_src), new state."""
        state = state or [None] * (1 + len(self.layers))
        x = self.dropout(embedded) if self.revision != "v0.5" else embedded
        x, first = self.attention_rnn(x, state[0])
        context, weights = self.attention(x, keys, processed_keys, pad_mask)
        new_state = [first]
        for i, layer in enumerate(self.layers):
            y, hc = layer(self._with_context(x, context), state[i + 1])
            new_state.append(hc)
            x = y if i == 0 else x + y
        return self.classifier(x), weights, new_state


class GNMT(nn.Module):
    """The whole model; the embedding is shared by encoder and decoder (not the classifier)."""

    def __init__(self, vocab_size: int, hidden: int = 1024, num_layers: int = 4, dropout: float = 0.2,
                 revision: str = "v0.6", init_weight: float = 0.1):
        super().__init__()
        if revision not in REVISIONS or num_layers < 2:
            raise ValueError(f"revision must be one of {REVISIONS} and num_layers >= 2")
        self.embedding = nn.Embedding(vocab_size, hidden, padding_idx=PAD_ID)
        self.encoder = Encoder(hidden, num_layers, dropout, embed_dropout=revision != "v0.5")
        self.decoder = Decoder(hidden, num_layers, vocab_size, dropout, revision)
        if revision == "v0.6":
            self.init_uniform(init_weight)

    @torch.no_grad()
    def init_uniform(self, w: float) -> None:
        """[R06]: every weight and bias U(-w, w), except the LSTMs' b_hh = 0, the attention's
        g = 1/sqrt(h) and b = 0."""
        for name, p in self.named_parameters():
            if name.endswith("attention.g") or name.endswith("attention.b"):
                continue
            if "bias_hh" in name:
                p.zero_()
            else:
                p.uniform_(-w, w)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> dict:
        """src (b, t_src) ids padded with 0, src_lengths (b,). Returns the decoder's static
        inputs: keys (b, t_src, h), processed keys, pad mask (b, t_src)."""
        keys = self.encoder(self.embedding(src), src_lengths)
        positions = torch.arange(src.shape[1], device=src.device)
        return {"keys": keys, "processed_keys": self.decoder.attention.linear_k(keys),
                "pad_mask": positions[None, :] >= src_lengths.to(src.device)[:, None]}

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (b, t_tgt, V) for decoder inputs ``tgt_in`` (BOS ...)."""
        static = self.encode(src, src_lengths)
        logits, _, _ = self.decoder(self.embedding(tgt_in), static["keys"], static["processed_keys"],
                                    static["pad_mask"])
        return logits

    def decode_step(self, words: torch.Tensor, static: dict, state) -> tuple[torch.Tensor, torch.Tensor, list]:
        """One inference step: words (n,) -> log-probabilities (n, V), attention (n, t_src),
        and the new per-layer state."""
        logits, weights, state = self.decoder(self.embedding(words[:, None]), static["keys"],
                                              static["processed_keys"], static["pad_mask"], state)
        return F.log_softmax(logits[:, 0].float(), dim=-1), weights[:, 0], state
