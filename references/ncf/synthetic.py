"""Synthetic ``ratings.csv`` in the ML-20M format, with latent user/item factors (spec §9)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_ratings(path: Path, num_users: int, num_items: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    user_f = rng.normal(size=(num_users, dim))
    item_f = rng.normal(size=(num_items, dim))
    log_zipf = -np.log(rng.permutation(num_items) + 1.0)
    movie_ids = np.sort(rng.choice(np.arange(1, 130_001), size=num_items, replace=False))
    # Capped so that tiny test catalogues keep room for the eval negatives.
    counts = np.clip(14 + rng.geometric(1 / 30, size=num_users), 15, min(300, num_items // 3))
    lines, clock = [], 1_000_000_000
    for u in range(num_users):
        affinity = 5.0 * item_f @ user_f[u] / np.sqrt(dim)
        # Gumbel top-k: sampling without replacement with p ∝ exp(logits).
        keys = affinity + 0.5 * log_zipf + rng.gumbel(size=num_items)
        chosen = np.argpartition(-keys, counts[u])[:counts[u]]
        rng.shuffle(chosen)
        for i in chosen:
            stars = np.clip(np.round((3.0 + affinity[i] / 3.0) * 2) / 2, 0.5, 5.0)
            clock += int(rng.integers(1, 100))
            lines.append(f"{u + 1},{movie_ids[i]},{stars:.1f},{clock}")
    Path(path).write_text("userId,movieId,rating,timestamp\n" + "\n".join(lines) + "\n")
