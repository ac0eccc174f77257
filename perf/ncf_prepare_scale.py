"""How long `mlperf-train prepare ncf` takes on a MovieLens-20M-sized ratings.csv, and its
peak memory.

    python perf/ncf_prepare_scale.py [--folder /tmp/ncf-scale] [--users 138493] [--items 26744] [--rows 20000263]

Writes (once) a ratings.csv of the real size in the real format (no latent structure:
timing only): users with 20+ ratings, a long tail of heavy raters, items by a power-law
popularity, half-star ratings, 1995-2015 timestamps, rows sorted by user then movie as in
ml-20m. Then runs the real `prepare` command in a child process and reports its wall time
and peak resident memory (ru_maxrss of the child).
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def write_big_ratings(path: Path, num_users: int, num_items: int, num_rows: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    # 22 + a geometric tail with the mean that gives about num_rows ratings once repeated
    # (user, movie) draws are merged (about 5 % of them with this popularity curve)
    extra_mean = 1.053 * num_rows / num_users - 22
    counts = np.minimum(22 + rng.geometric(1 / (extra_mean + 1), size=num_users) - 1, num_items // 4)
    users = np.repeat(np.arange(num_users, dtype=np.int64), counts)
    popularity = 1.0 / (np.arange(num_items) + 10.0) ** 0.8
    items = rng.choice(num_items, size=len(users), p=popularity / popularity.sum())
    keys = np.unique(users * num_items + items)          # one rating per (user, movie), sorted
    users, items = keys // num_items, keys % num_items
    movie_ids = np.sort(rng.choice(np.arange(1, 131_263), size=num_items, replace=False))
    frame = pd.DataFrame({"userId": users + 1, "movieId": movie_ids[items],
                          "rating": rng.integers(1, 11, size=len(keys)) / 2.0,
                          "timestamp": rng.integers(789_652_009, 1_427_784_002, size=len(keys))})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.1f", chunksize=1_000_000)
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/ncf-scale"))
    parser.add_argument("--users", type=int, default=138_493)
    parser.add_argument("--items", type=int, default=26_744)
    parser.add_argument("--rows", type=int, default=20_000_263)
    args = parser.parse_args()

    source = args.folder / "ml-20m" / "ratings.csv"
    if not source.exists():
        started = time.perf_counter()
        rows = write_big_ratings(source, args.users, args.items, args.rows)
        print(f"wrote {source}: {rows:,} ratings, {source.stat().st_size / 2**20:.0f} MiB, "
              f"in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mlperf_train", "prepare", "ncf", "--source", str(source.parent),
                             "--data", str(args.folder / "prepared")], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(result.stdout.strip(), result.stderr.strip()[-2000:], sep="\n")
    size = sum(p.stat().st_size for p in (args.folder / "prepared").iterdir()) / 2**20
    print(f"prepare: {seconds:.1f} s wall, peak RSS {peak_mib:.0f} MiB, output {size:.0f} MiB "
          f"(exit {result.returncode})")


if __name__ == "__main__":
    main()
