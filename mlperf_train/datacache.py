"""Small-preset datasets, generated once in the real on-disk format and cached (untimed).

The cache key is the benchmark and its settings, so changing a data setting in a small
preset gives a fresh dataset. Generation happens on each node's local rank 0 into a
temporary folder that is renamed when complete: a killed generation leaves no half dataset.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from mlperf_train import progress
from mlperf_train.benchmark import Benchmark
from mlperf_train.distributed import RunEnv

# The generated data depends on the settings only, never on a run's seed.
DATA_SEED = 0
# Other ranks wait this long for local rank 0 to generate (longer than any collective
# timeout: generating a small image dataset can take minutes).
GENERATION_WAIT_SECONDS = 2 * 3600


def cache_root() -> Path:
    return Path(os.environ.get("MLPERF_TRAIN_CACHE", Path.home() / ".cache" / "mlperf-train"))


def settings_key(settings) -> str:
    fields = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else dict(settings)
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def small_dataset(bench: Benchmark, preset, env: RunEnv) -> Path:
    target = cache_root() / "data" / f"{bench.name}-{settings_key(preset.settings)}"
    if env.local_rank == 0 and not target.is_dir():
        print(f"generating the {bench.name} small dataset in {target} (once, untimed)", flush=True)
        scratch = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        with progress.task(f"generating {bench.name} data"):
            bench.generate_small(scratch, preset.settings, DATA_SEED)
        try:
            os.replace(scratch, target)
        except OSError:  # another process finished first: theirs is as good as ours
            shutil.rmtree(scratch, ignore_errors=True)
    deadline = time.monotonic() + GENERATION_WAIT_SECONDS
    while not target.is_dir():  # not a barrier: generation may outlast the collective timeout
        if time.monotonic() > deadline:
            raise TimeoutError(f"local rank 0 did not finish generating {target}")
        time.sleep(0.5)
    return target
