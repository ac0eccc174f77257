"""A small ``ratings.csv`` in exactly the MovieLens-20M format, with latent structure.

The file looks like ``ml-20m/ratings.csv``: a ``userId,movieId,rating,timestamp`` header,
users numbered 1..N, sparse movieIds (a sample of 1..130,000), half-star ratings from 0.5
to 5.0, Unix-second timestamps in 1995..2015, rows sorted by user then movieId (as in the
real file, so the latest rating is rarely the user's last row) and some same-second
ratings (as in the real file, so the split's tie rule is exercised). The same ``prepare``
code then processes it (spec section 9).

Structure, so that HR@10 is learnable: user and item factors u, v ~ N(0, 1) of dimension
K; a user picks items without replacement with p ∝ exp(5 u·v / √K + 0.5 log-Zipf
popularity). The number of ratings per user is clip(14 + Geometric(1/30), 15, 300), so
about 16 % of users fall under the 20-ratings filter. The order in which a user rated
their items is random: the held-out latest item is a draw from the same taste as the
rest, which is what leave-one-out evaluation assumes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FIRST_TIMESTAMP = 789_652_009   # 1995-01-09, the first rating of ML-20M
LAST_TIMESTAMP = 1_427_784_002  # 2015-03-31, the last one
MAX_MOVIE_ID = 130_000


def ratings_frame(num_users: int, num_items: int, dim: int, seed: int) -> pd.DataFrame:
    """The synthetic ratings as a frame with the four ML-20M columns, in file order."""
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(size=(num_users, dim))
    item_factors = rng.normal(size=(num_items, dim))
    log_zipf = -np.log(rng.permutation(num_items) + 1.0)
    movie_ids = np.sort(rng.choice(np.arange(1, MAX_MOVIE_ID + 1), size=num_items, replace=False))
    # Capped so that tiny test catalogues keep room for the evaluation negatives.
    counts = np.clip(14 + rng.geometric(1 / 30, size=num_users), 15, min(300, num_items // 3))

    affinity = 5.0 * (user_factors @ item_factors.T) / np.sqrt(dim)
    # Gumbel top-k: the k largest of logits + Gumbel noise are a sample without replacement
    # with p ∝ exp(logits); one sort per row does every user at once.
    keys = affinity + 0.5 * log_zipf + rng.gumbel(size=affinity.shape)
    ranked = np.argsort(-keys, axis=1)
    chosen = np.arange(num_items)[None, :] < counts[:, None]          # first counts[u] of each row
    users = np.repeat(np.arange(num_users), counts)
    items = ranked[chosen]                                            # row by row, counts[u] each

    # Stars (ignored by NCF, kept realistic): the user's own standardised affinity around
    # ML-20M's mean of 3.5, in half stars.
    picked = affinity[users, items]
    starts_of_users = np.r_[0, np.cumsum(counts)[:-1]]
    mean = np.add.reduceat(picked, starts_of_users) / counts
    spread = np.sqrt(np.add.reduceat((picked - np.repeat(mean, counts)) ** 2, starts_of_users) / counts) + 1e-9
    z = (picked - np.repeat(mean, counts)) / np.repeat(spread, counts)
    stars = np.clip(np.round((3.5 + z) * 2.0) / 2.0, 0.5, 5.0)
    # Each user's history: a random order of their items, one rating every few minutes to
    # days, 10 % of them in the same second as the previous one.
    gaps = rng.exponential(3600.0, size=len(users)).astype(np.int64) + 1
    gaps[rng.random(len(users)) < 0.1] = 0
    position = rng.random(len(users))                                 # random order within a user
    order = np.lexsort((position, users))
    span = LAST_TIMESTAMP - FIRST_TIMESTAMP
    starts = FIRST_TIMESTAMP + rng.integers(0, span // 2, size=num_users)
    # A running sum of the gaps that restarts at each user (rows of `order` are grouped by user).
    elapsed = np.cumsum(gaps[order])
    elapsed -= np.repeat(elapsed[starts_of_users] - gaps[order][starts_of_users], counts)
    times = np.empty(len(users), dtype=np.int64)
    times[order] = np.minimum(starts[users[order]] + elapsed, LAST_TIMESTAMP)

    frame = pd.DataFrame({"userId": users + 1, "movieId": movie_ids[items], "rating": stars,
                          "timestamp": times})
    return frame.sort_values(["userId", "movieId"], kind="stable", ignore_index=True)


def write_ratings(path: Path, num_users: int, num_items: int, dim: int, seed: int) -> None:
    """Write the synthetic ``ratings.csv`` (deterministic in ``seed``)."""
    frame = ratings_frame(num_users, num_items, dim, seed)
    frame.to_csv(path, index=False, float_format="%.1f")
