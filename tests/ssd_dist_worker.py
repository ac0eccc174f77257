"""Run by tests/test_ssd_reference.py under ``torchrun --nproc_per_node=2``: one epoch and one
evaluation of SSD on two ranks (predictions gathered), then, on rank 0, the same weights
evaluated by one process. Writes ``{"two": mAP, "one": mAP, "samples": n}`` to OUT.

    python ssd_dist_worker.py PRESET.yaml DATA_DIR OUT.json
"""
import json
import sys
from pathlib import Path

import torch

from mlperf_train.benchmark import Artifacts, Dataset, no_progress
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import load_preset
from references.ssd.benchmark import BENCHMARK, SsdSettings


def open_state(preset, env, data):
    env.seed_everything(3)
    state = BENCHMARK.init(preset, env, Artifacts(data / "artifacts"))
    dataset = Dataset(data)
    dataset._open_for_run()
    BENCHMARK.open_data(state, dataset)
    return state


def main(preset_path: str, data: str, out: str) -> None:
    torch.set_num_threads(1)
    data = Path(data)
    preset = load_preset(Path(preset_path), settings_class=SsdSettings, expected_benchmark="ssd")
    env = RunEnv.from_environment(device="cpu")
    state = open_state(preset, env, data)
    stats = BENCHMARK.train_epoch(state, 1, no_progress)
    samples = int(env.all_reduce_sum(torch.tensor(stats.num_samples)))
    two = BENCHMARK.evaluate(state, 1).quality["mAP"]
    if env.is_main:
        single = open_state(preset, RunEnv(), data)
        single.model.load_state_dict(state.model.state_dict())
        one = BENCHMARK.evaluate(single, 1).quality["mAP"]
        BENCHMARK.close(single)
        Path(out).write_text(json.dumps({"two": two, "one": one, "samples": samples}))
    BENCHMARK.close(state)
    env.barrier()
    env.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
