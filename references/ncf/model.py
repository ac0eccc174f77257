"""NeuMF: GMF and MLP towers over separate embeddings, joined by one logit layer."""
from __future__ import annotations

import torch
from torch import nn


class NeuMF(nn.Module):
    def __init__(self, num_users: int, num_items: int, mf_dim: int, layers: tuple[int, ...], sparse: bool = False):
        super().__init__()
        self.mf_user = nn.Embedding(num_users, mf_dim, sparse=sparse)
        self.mf_item = nn.Embedding(num_items, mf_dim, sparse=sparse)
        self.mlp_user = nn.Embedding(num_users, layers[0] // 2, sparse=sparse)
        self.mlp_item = nn.Embedding(num_items, layers[0] // 2, sparse=sparse)
        for emb in (self.mf_user, self.mf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(emb.weight, std=0.01)
        self.mlp = nn.Sequential(*[m for a, b in zip(layers[:-1], layers[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        self.final = nn.Linear(mf_dim + layers[-1], 1)
        nn.init.kaiming_uniform_(self.final.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.final.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gmf = self.mf_user(users) * self.mf_item(items)
        mlp = self.mlp(torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=-1))
        return self.final(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)
