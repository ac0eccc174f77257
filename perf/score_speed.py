"""Times ``score`` against mlperf_logging's summarizer function on the same fixture folders,
in one process. Prints per-folder minutes from both, the total seconds of each over all
repeats (the first repeat included: both read cold files and build their state there), and
``speedup=<x>`` (official seconds / ours).

    python perf/score_speed.py [FIXTURES_DIR] [--repeat N]

The default folders are the published v0.7 results the tests use (``tests/data/mlperf_results/
v0.7``: whole folders, some single logs; the minutes must agree, and the official function
reads v0.6 stamps as milliseconds). Both sides judge every file: the official function runs
mlperf_logging's checker on each, ours runs the same checker engine plus the rules table
(``verdict.judge``), so a file that fails either does not count.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))      # time this checkout's scorer, not an installed one
DEFAULT_FIXTURES = ROOT / "tests" / "data" / "mlperf_results" / "v0.7"


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
    if not folders:
        raise SystemExit(f"no result_*.txt under {args.fixtures}")
    logging.disable(logging.WARNING)   # the official checker warns on the non-converged run
    official_s = ours_s = 0.0
    for repeat in range(args.repeat):
        for folder in folders:
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                official = _compute_strong_score_standalone(
                    os.path.basename(folder), "system", False, folder, "training", "0.7.0")[0]
            official_s += time.perf_counter() - start
            start = time.perf_counter()
            ours = score_folder(folder).minutes
            ours_s += time.perf_counter() - start
            if repeat == 0:
                print(f"{os.path.relpath(folder, args.fixtures)}: official={official} ours={ours}")
    num_files = sum(len(glob.glob(f"{f}/result_*.txt")) for f in folders)
    print(f"folders={len(folders)} files={num_files} repeat={args.repeat} "
          f"official_s={official_s:.3f} ours_s={ours_s:.3f}")
    print(f"speedup={official_s / ours_s:.1f}")


if __name__ == "__main__":
    main()
