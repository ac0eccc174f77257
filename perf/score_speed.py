"""Times ``score`` against mlperf_logging's summarizer function on the same fixture folders,
in one process. Prints per-folder minutes from both and ``speedup=<x>``.

    python perf/score_speed.py [FIXTURES_DIR] [--repeat N]
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import os
import time
from pathlib import Path

DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "mlperf_results" / "v0.7"


def _folders(root: str) -> list[str]:
    return sorted({os.path.dirname(p) for p in glob.glob(f"{root}/**/result_*.txt", recursive=True)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixtures", nargs="?", default=str(DEFAULT_FIXTURES))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from mlperf_logging.result_summarizer.result_summarizer import (
        _compute_strong_score_standalone)
    from mlperf_train.score import score_folder

    folders = _folders(args.fixtures)
    official_s = ours_s = 0.0
    for _ in range(args.repeat):
        for folder in folders:
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                official, _, _ = _compute_strong_score_standalone(
                    os.path.basename(folder), "system", False, folder, "training", "0.7.0")
            official_s += time.perf_counter() - start
            start = time.perf_counter()
            ours = score_folder(folder).minutes
            ours_s += time.perf_counter() - start
            if _ == 0:
                print(f"{folder}: official={official} ours={ours}")
    print(f"folders={len(folders)} repeat={args.repeat} official_s={official_s:.3f} ours_s={ours_s:.3f}")
    print(f"speedup={official_s / ours_s:.1f}")


if __name__ == "__main__":
    main()
