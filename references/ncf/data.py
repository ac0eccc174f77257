"""NCF data: the one-time preprocessing of ``ratings.csv`` and the per-epoch training set.

``prepare_ratings`` is the reference's ``convert.py`` (spec section 1), untimed, run once by
``mlperf-train prepare ncf``: keep users with at least ``min_ratings`` ratings, re-map user
and movie ids to 0..n-1 in order of first appearance, hold out each user's latest rating
as the test positive, and draw the evaluation negatives. The result is a folder of
``.npy`` arrays (int32, 4 bytes an id) and ``meta.json``, written last, so a folder without
it is an unfinished one.

``TrainingSet`` is the timed part: fresh training negatives every epoch, and the shuffled
order in which the global batches take the samples.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mlperf_train.errors import UsageError

FORMAT = "mlperf-train-ncf-1"
META = "meta.json"
COLUMNS = ["userId", "movieId", "timestamp"]
# Users per chunk of the evaluation-negative sampler: a chunk's positives are a dense
# boolean matrix (users x items), 2048 x 26,744 bytes = 55 MB at full scale.
EVAL_CHUNK_USERS = 2048


def read_ratings(csv_path: Path) -> pd.DataFrame:
    """The three columns NCF uses (the star value is ignored: every rating is a positive)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UsageError(f"prepare ncf: --source {csv_path}: no ratings.csv there")
    header = pd.read_csv(csv_path, nrows=0).columns.tolist()
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UsageError(f"prepare ncf: {csv_path}: header {','.join(header)}: missing column(s) "
                         f"{', '.join(missing)}; expected the ML-20M header userId,movieId,rating,timestamp")
    return pd.read_csv(csv_path, usecols=COLUMNS, engine="c",
                       dtype={"userId": np.int32, "movieId": np.int32, "timestamp": np.int64})


def leave_one_out(users: np.ndarray, items: np.ndarray, times: np.ndarray):
    """Sort each user's ratings by time and hold out the latest one.

    Returns (order, is_test): ``order`` sorts the rows by (user, timestamp) with a stable
    sort, so among ratings with the user's latest timestamp the one later in the file is
    the test positive (REF's pandas quicksort leaves that tie arbitrary).
    """
    order = np.argsort(times, kind="stable")
    order = order[np.argsort(users[order], kind="stable")]
    sorted_users = users[order]
    is_test = np.r_[sorted_users[1:] != sorted_users[:-1], True]
    return order, is_test


def sample_eval_negatives(offsets: np.ndarray, user_items: np.ndarray, num_items: int,
                          num_negatives: int, seed: int) -> np.ndarray:
    """``num_negatives`` items per user, uniform with replacement over the items that are
    not a positive (training or test) of that user: rejection sampling, chunk by chunk.
    Each row is returned sorted.

    ``user_items[offsets[u]:offsets[u + 1]]`` are user u's positives.
    """
    num_users = len(offsets) - 1
    counts = np.diff(offsets)
    if (counts >= num_items).any():
        user = int(np.argmax(counts >= num_items))
        raise UsageError(f"prepare ncf: user {user} rated every item; no evaluation negative is possible")
    rng = np.random.default_rng(seed)
    negatives = np.empty((num_users, num_negatives), dtype=np.int32)
    for first in range(0, num_users, EVAL_CHUNK_USERS):
        last = min(first + EVAL_CHUNK_USERS, num_users)
        rows = np.repeat(np.arange(last - first), counts[first:last])
        is_positive = np.zeros((last - first, num_items), dtype=bool)
        is_positive[rows, user_items[offsets[first]:offsets[last]]] = True
        draws = rng.integers(0, num_items, size=(last - first, num_negatives))
        bad_rows, bad_cols = np.nonzero(is_positive[np.arange(last - first)[:, None], draws])
        while len(bad_rows):
            redraw = rng.integers(0, num_items, size=len(bad_rows))
            draws[bad_rows, bad_cols] = redraw
            still = is_positive[bad_rows, redraw]
            bad_rows, bad_cols = bad_rows[still], bad_cols[still]
        negatives[first:last] = draws
    # Each user's draws in item order: the metric ignores the order, and sorted rows let it
    # find repeated draws (counted once) in one pass instead of a sort on the clock.
    negatives.sort(axis=1)
    return negatives


def prepare_ratings(csv_path: Path, out_dir: Path, min_ratings: int, num_eval_negatives: int,
                    seed: int = 0) -> dict:
    """``ratings.csv`` -> the prepared folder; returns the metadata it wrote."""
    frame = read_ratings(csv_path)
    # 1. the minimum-ratings filter
    user_codes, _ = pd.factorize(frame["userId"])
    keep = np.bincount(user_codes)[user_codes] >= min_ratings
    if not keep.any():
        raise UsageError(f"prepare ncf: {csv_path}: no user has {min_ratings} ratings")
    frame = frame[keep]
    # 2. ids 0..n-1 in order of first appearance (pandas.factorize does exactly that)
    users, user_ids = pd.factorize(frame["userId"])
    items, movie_ids = pd.factorize(frame["movieId"])
    times = frame["timestamp"].to_numpy()
    del frame
    num_users, num_items = len(user_ids), len(movie_ids)
    # 3. leave-one-out by latest timestamp
    order, is_test = leave_one_out(users, items, times)
    sorted_items = items[order].astype(np.int32)
    counts = np.bincount(users, minlength=num_users)
    offsets = np.r_[0, np.cumsum(counts)]
    test_items = sorted_items[is_test]
    train_items = sorted_items[~is_test]
    train_offsets = np.r_[0, np.cumsum(counts - 1)]
    # 4. evaluation negatives, never a positive of the user (the rule; see README)
    negatives = sample_eval_negatives(offsets, sorted_items, num_items, num_eval_negatives, seed)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / META).unlink(missing_ok=True)
    arrays = {"train_items": train_items, "train_offsets": train_offsets.astype(np.int64),
              "test_items": test_items, "eval_negatives": negatives,
              "user_ids": np.asarray(user_ids, dtype=np.int64), "movie_ids": np.asarray(movie_ids, dtype=np.int64)}
    for name, array in arrays.items():
        np.save(out_dir / f"{name}.npy", array)
    meta = {"format": FORMAT, "num_users": num_users, "num_items": num_items,
            "num_ratings": int(len(users)), "num_train": int(len(train_items)),
            "min_ratings": min_ratings, "num_eval_negatives": num_eval_negatives,
            "eval_negatives_seed": seed, "eval_negatives_exclude": "all positives of the user",
            "source": Path(csv_path).name}
    (out_dir / META).write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def load_meta(root: Path) -> dict:
    path = Path(root) / META
    if not path.is_file():
        raise FileNotFoundError(f"{root}: no {META}; prepare the data with `mlperf-train prepare ncf`")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}; prepare the data again")
    return meta


def load_eval_shard(root: Path, users: range) -> tuple[np.ndarray, np.ndarray]:
    """(test items, evaluation negatives) of the users in ``users`` (memory-mapped read)."""
    test = np.load(Path(root) / "test_items.npy", mmap_mode="r")
    negatives = np.load(Path(root) / "eval_negatives.npy", mmap_mode="r")
    return np.array(test[users.start:users.stop]), np.array(negatives[users.start:users.stop])


class TrainingSet:
    """The training positives and, each epoch, their negatives in a shuffled order.

    Sample s of an epoch: s < P is positive s, otherwise the negative number s - P, drawn
    for positive (s - P) mod P, so its user is that positive's user. Every rank draws the
    same epoch from the same generator and keeps its slice of each global batch.
    """

    def __init__(self, root: Path, num_users: int, num_items: int, num_negatives: int, device: torch.device):
        offsets = np.load(Path(root) / "train_offsets.npy")
        items = np.load(Path(root) / "train_items.npy")
        users = np.repeat(np.arange(num_users, dtype=np.int64), np.diff(offsets))
        self.num_items, self.num_negatives = num_items, num_negatives
        self.users = torch.from_numpy(users).to(device)
        self.items = torch.from_numpy(items.astype(np.int64)).to(device)
        # (user, item) as one sorted int64 key: membership is one binary search
        self.positive_keys = torch.sort(self.users * num_items + self.items).values
        self.num_positives = len(items)
        self.epoch_items = self.order = None

    @property
    def samples_per_epoch(self) -> int:
        return self.num_positives * (1 + self.num_negatives)

    def _is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users * self.num_items + items
        at = torch.searchsorted(self.positive_keys, keys).clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[at] == keys

    def sample_negatives(self, generator: torch.Generator) -> torch.Tensor:
        """``num_negatives`` items per positive, uniform over all items with replacement,
        redrawn while (user, item) is a training positive (REF: the held-out test item may
        be drawn). Row j of the result is negative j, for positive j mod P."""
        count, device = self.num_positives * self.num_negatives, self.users.device
        items = torch.randint(0, self.num_items, (count,), generator=generator, device=device)
        users = self.users.repeat(self.num_negatives)
        todo = torch.nonzero(self._is_positive(users, items)).squeeze(1)
        while len(todo):
            redraw = torch.randint(0, self.num_items, (len(todo),), generator=generator, device=device)
            items[todo] = redraw
            todo = todo[self._is_positive(users[todo], redraw)]
        return items

    def new_epoch(self, generator: torch.Generator) -> None:
        self.epoch_items = torch.cat([self.items, self.sample_negatives(generator)])
        self.order = torch.randperm(self.samples_per_epoch, generator=generator, device=self.users.device)

    def batch(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(users, items, labels) of the epoch's samples with these indices."""
        users = self.users[samples % self.num_positives]
        labels = (samples < self.num_positives).to(torch.float32)
        return users, self.epoch_items[samples], labels
