"""Transformer (pre-LN, shared embeddings) as in the MLPerf reference, spec transformer.md §2.

- every sublayer: y = x + Dropout(Sublayer(LayerNorm(x))); a final LayerNorm per stack;
  LayerNorm epsilon 1e-6;
- attention projections without bias; queries scaled by d_head^-1/2; -1e9 on padded keys;
- FFN: Linear(d, ffn) + ReLU, dropout, Linear(ffn, d);
- one V x d embedding for encoder input, decoder input and output logits (h E^T); inputs
  scaled by sqrt(d), pad rows zeroed; sinusoidal positions concat[sin, cos];
- decoder input: the target shifted right behind a zero vector;
- init: Glorot-uniform kernels, zero biases, embedding N(0, d^-1/2).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NEG_INF = -1e9
PAD_ID = 0


def position_encoding(length: int, d_model: int, device=None) -> torch.Tensor:
    """[length, d_model]: sin of d/2 timescales from 1 to 1e4, then cos of the same."""
    num_timescales = d_model // 2
    log_increment = math.log(1.0e4) / max(num_timescales - 1, 1)
    inv_timescales = torch.exp(torch.arange(num_timescales, dtype=torch.float32, device=device) * -log_increment)
    scaled = torch.arange(length, dtype=torch.float32, device=device)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class Attention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float, cross: bool = False):
        super().__init__()
        self.num_heads, self.dropout, self.cross = num_heads, dropout, cross
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> [B, H, T, d/H]
        return x.view(x.shape[0], x.shape[1], self.num_heads, -1).transpose(1, 2)

    def forward(self, x, memory=None, bias=None, causal=False, cache=None, prefix=""):
        """``bias``: [B, 1, 1, S], added to the logits. With ``cache`` (incremental
        decoding), self-attention appends this step's keys and values to those stored
        under ``prefix``; encoder-decoder attention reads the ones ``start_cache`` stored."""
        q = self.heads(self.q(x))
        if self.cross and cache is not None:
            k, v = cache[f"{prefix}k"], cache[f"{prefix}v"]
        else:
            source = memory if self.cross else x
            k, v = self.heads(self.k(source)), self.heads(self.v(source))
            if cache is not None:
                if f"{prefix}k" in cache:
                    k = torch.cat([cache[f"{prefix}k"], k], dim=2)
                    v = torch.cat([cache[f"{prefix}v"], v], dim=2)
                cache[f"{prefix}k"], cache[f"{prefix}v"] = k, v
        # scaled_dot_product_attention scales q by d_head^-1/2, as the reference does.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_inner: int, relu_dropout: float):
        super().__init__()
        self.filter = nn.Linear(d_model, ffn_inner)
        self.output = nn.Linear(ffn_inner, d_model)
        self.relu_dropout = nn.Dropout(relu_dropout)

    def forward(self, x):
        return self.output(self.relu_dropout(F.relu(self.filter(x))))


class Residual(nn.Module):
    """x + Dropout(sublayer(LayerNorm(x)))."""

    def __init__(self, sublayer: nn.Module, d_model: int, dropout: float):
        super().__init__()
        self.sublayer, self.norm, self.dropout = sublayer, nn.LayerNorm(d_model, eps=1e-6), nn.Dropout(dropout)

    def forward(self, x, *args, **kwargs):
        return x + self.dropout(self.sublayer(self.norm(x), *args, **kwargs))


class EncoderLayer(nn.Module):
    def __init__(self, d, heads, ffn, dropout, attention_dropout, relu_dropout):
        super().__init__()
        self.self_attention = Residual(Attention(d, heads, attention_dropout), d, dropout)
        self.ffn = Residual(FeedForward(d, ffn, relu_dropout), d, dropout)

    def forward(self, x, bias):
        return self.ffn(self.self_attention(x, bias=bias))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads, ffn, dropout, attention_dropout, relu_dropout):
        super().__init__()
        self.self_attention = Residual(Attention(d, heads, attention_dropout), d, dropout)
        self.encdec_attention = Residual(Attention(d, heads, attention_dropout, cross=True), d, dropout)
        self.ffn = Residual(FeedForward(d, ffn, relu_dropout), d, dropout)

    def forward(self, x, memory, memory_bias, cache=None, static=None, index=0):
        """``cache``/``static`` (decoding only): this layer's own keys and values so far, and
        the encoder's, stored under names that carry the layer ``index``."""
        x = self.self_attention(x, causal=cache is None, cache=cache, prefix=f"self{index}_")
        x = self.encdec_attention(x, memory, bias=memory_bias, cache=static, prefix=f"encdec{index}_")
        return self.ffn(x)


class Transformer(nn.Module):
    def __init__(self, vocab_size: int, d_model: int = 1024, num_heads: int = 16, ffn_inner: int = 4096,
                 num_layers: int = 6, dropout: float = 0.1, attention_dropout: float = 0.1,
                 relu_dropout: float = 0.1):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Parameter(torch.empty(vocab_size, d_model))
        args = (d_model, num_heads, ffn_inner, dropout, attention_dropout, relu_dropout)
        self.encoder = nn.ModuleList(EncoderLayer(*args) for _ in range(num_layers))
        self.decoder = nn.ModuleList(DecoderLayer(*args) for _ in range(num_layers))
        self.encoder_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.decoder_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.input_dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.normal_(self.embedding, mean=0.0, std=self.d_model ** -0.5)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)  # variance scaling 1.0, fan_avg, uniform
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embedding) * self.d_model ** 0.5 * (ids != PAD_ID).unsqueeze(-1)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src [B, S] -> (memory [B, S, d], key bias [B, 1, 1, S])."""
        bias = (src == PAD_ID).to(self.embedding.dtype)[:, None, None, :] * NEG_INF
        x = self.embed(src) + position_encoding(src.shape[1], self.d_model, src.device)
        x = self.input_dropout(x)
        for layer in self.encoder:
            x = layer(x, bias)
        return self.encoder_norm(x), bias

    def decode(self, tgt: torch.Tensor, memory, memory_bias) -> torch.Tensor:
        """Teacher forcing: logits [B, T, V] for target ids [B, T]."""
        x = F.pad(self.embed(tgt), (0, 0, 1, 0))[:, :-1]  # shift right behind a zero vector
        x = self.input_dropout(x + position_encoding(tgt.shape[1], self.d_model, tgt.device))
        for layer in self.decoder:
            x = layer(x, memory, memory_bias)
        return self.decoder_norm(x) @ self.embedding.t()

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        memory, bias = self.encode(src)
        return self.decode(tgt, memory, bias)

    # --- incremental decoding for beam search ----------------------------------------------
    def start_cache(self, memory: torch.Tensor, memory_bias: torch.Tensor) -> dict:
        """Per-layer encoder keys and values, computed once per sentence. They are the same
        for every beam of a sentence, so the search never needs to reorder them."""
        static = {"memory_bias": memory_bias}
        for i, layer in enumerate(self.decoder):
            attention = layer.encdec_attention.sublayer
            static[f"encdec{i}_k"] = attention.heads(attention.k(memory))
            static[f"encdec{i}_v"] = attention.heads(attention.v(memory))
        return static

    def decode_step(self, last_ids: torch.Tensor, step: int, cache: dict, static: dict) -> torch.Tensor:
        """Log-probabilities [N, V] of the next token after ``last_ids`` [N] at ``step``
        (the first step's input is the start id 0, which embeds to the zero vector).
        ``cache`` holds the decoder's own keys and values so far; ``static`` the encoder's."""
        x = self.embed(last_ids[:, None]) + position_encoding(step + 1, self.d_model, last_ids.device)[step]
        for i, layer in enumerate(self.decoder):
            x = layer(x, None, static["memory_bias"], cache=cache, static=static, index=i)
        logits = self.decoder_norm(x[:, 0]) @ self.embedding.t()
        return F.log_softmax(logits.float(), dim=-1)
