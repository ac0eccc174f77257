"""``mlperf-train prepare``: one-time, untimed preprocessing of a real dataset."""
from __future__ import annotations

from pathlib import Path

from mlperf_train import benchmark as registry
from mlperf_train import progress
from mlperf_train.errors import UsageError
from mlperf_train.hparams import HPARAMS_DIR, load_preset


def prepare(name: str, source: Path, data: Path, hparams: Path | None) -> None:
    try:
        bench = registry.get(name)
    except KeyError as error:
        raise UsageError(str(error).strip('"')) from None
    if not source.exists():
        raise UsageError(f"--source {source}: does not exist")
    preset = load_preset(hparams or HPARAMS_DIR / name / "reference.yaml", None, "open", bench.Settings,
                         expected_benchmark=name)
    data.mkdir(parents=True, exist_ok=True)
    with progress.task(f"preparing {name}"):
        bench.prepare(source, data, preset.settings)
    print(f"{name}: prepared {source} into {data}")
