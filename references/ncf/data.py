"""One-time, untimed NCF preprocessing of an ML-20M style ``ratings.csv`` into ``ncf.npz``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlperf_train.errors import UsageError


def prepare_ratings(csv_path: Path, out_dir: Path, min_ratings: int, eval_negatives: int, seed: int = 0) -> None:
    if not Path(csv_path).exists():
        raise UsageError(f"prepare ncf: source = {csv_path}: no ratings.csv there")
    df = pd.read_csv(csv_path, usecols=["userId", "movieId", "timestamp"])
    counts = df.groupby("userId")["movieId"].transform("size")
    df = df[counts >= min_ratings]
    users = df["userId"].astype("category").cat.codes.to_numpy(np.int64)
    items = df["movieId"].astype("category").cat.codes.to_numpy(np.int64)
    times = df["timestamp"].to_numpy(np.int64)
    num_users, num_items = int(users.max()) + 1, int(items.max()) + 1
    # Latest rating per user is the test positive (stable sort: ties keep file order).
    order = np.lexsort((times, users))
    users, items = users[order], items[order]
    last = np.r_[users[1:] != users[:-1], True]
    test_items = items[last]
    train_users, train_items = users[~last], items[~last]
    # Eval negatives: never a positive (train or test) of the user.
    rng = np.random.default_rng(seed)
    pos_keys = np.unique(users * num_items + items)
    negs = rng.integers(0, num_items, size=(num_users, eval_negatives))
    while True:
        keys = np.arange(num_users)[:, None] * num_items + negs
        bad = np.isin(keys, pos_keys)
        if not bad.any():
            break
        negs[bad] = rng.integers(0, num_items, size=int(bad.sum()))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out_dir) / "ncf.npz", train_users=train_users.astype(np.int32),
             train_items=train_items.astype(np.int32), test_items=test_items.astype(np.int32),
             eval_negatives=negs.astype(np.int32), num_users=num_users, num_items=num_items)
