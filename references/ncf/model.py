"""NeuMF (spec section 2): a GMF tower and an MLP tower over separate embeddings, joined
by one linear layer that gives a logit (the sigmoid is applied only to rank at eval)."""
from __future__ import annotations

import math

import torch
from torch import nn


class NeuMF(nn.Module):
    def __init__(self, num_users: int, num_items: int, mf_dim: int, layers: tuple[int, ...],
                 sparse: bool = False, device: torch.device | str | None = None):
        super().__init__()
        if layers[0] % 2:
            raise ValueError(f"layers[0] = {layers[0]}: the MLP input is two embeddings of layers[0] / 2")
        # sparse=True gives row-sparse embedding gradients for Lazy Adam (torch SparseAdam)
        self.mf_user = nn.Embedding(num_users, mf_dim, sparse=sparse, device=device)
        self.mf_item = nn.Embedding(num_items, mf_dim, sparse=sparse, device=device)
        self.mlp_user = nn.Embedding(num_users, layers[0] // 2, sparse=sparse, device=device)
        self.mlp_item = nn.Embedding(num_items, layers[0] // 2, sparse=sparse, device=device)
        self.mlp = nn.ModuleList(nn.Linear(a, b, device=device) for a, b in zip(layers[:-1], layers[1:]))
        self.final = nn.Linear(mf_dim + layers[-1], 1, device=device)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """REF's initialisation. Biases keep nn.Linear's default U(+-1/sqrt(in)), as REF's do."""
        for embedding in self.embeddings():
            nn.init.normal_(embedding.weight, mean=0.0, std=0.01)
        for linear in self.mlp:
            nn.init.xavier_uniform_(linear.weight)               # Glorot: sqrt(6 / (in + out))
        limit = math.sqrt(3.0 / self.final.in_features)          # LeCun uniform
        nn.init.uniform_(self.final.weight, -limit, limit)

    def embeddings(self) -> list[nn.Embedding]:
        return [self.mf_user, self.mf_item, self.mlp_user, self.mlp_item]

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gmf = self.mf_user(users) * self.mf_item(items)
        mlp = torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=-1)
        for linear in self.mlp:
            mlp = torch.relu(linear(mlp))
        return self.final(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)
