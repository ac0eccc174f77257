"""Evaluate saved GNMT weights on the tiny preset's data, on every rank of a torchrun group.

    python gnmt_eval_worker.py DATA_DIR WEIGHTS OUT.json [PRESET.yaml]

PRESET (default ``hparams/gnmt/tiny.yaml``) gives the model's settings the weights were saved with.
"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlperf_train.benchmark import Artifacts, Dataset  # noqa: E402
from mlperf_train.distributed import RunEnv  # noqa: E402
from mlperf_train.hparams import HPARAMS_DIR, load_preset  # noqa: E402
from references.gnmt import metric  # noqa: E402
from references.gnmt.benchmark import BENCHMARK, GNMTSettings  # noqa: E402


TINY = HPARAMS_DIR / "gnmt" / "tiny.yaml"


def evaluate(data_dir: str, weights: str, env: RunEnv, preset_path=TINY) -> dict:
    preset = load_preset(Path(preset_path), None, "closed", GNMTSettings)
    env.seed_everything(7)
    state = BENCHMARK.init(preset, env, Artifacts(Path(data_dir) / "artifacts"))
    state.raw_model.load_state_dict(torch.load(weights))
    dataset = Dataset(Path(data_dir))
    dataset._open_for_run()
    BENCHMARK.open_data(state, dataset)
    summed = []  # the BLEU statistics after the reduction over ranks
    score = metric.bleu_points
    metric.bleu_points = lambda stats: summed.append(stats.tolist()) or score(stats)
    try:
        result = BENCHMARK.evaluate(state, 1)
    finally:
        metric.bleu_points = score
    return {"bleu": result.quality["bleu_uncased"], **result.extras, "my_test": len(state.my_test),
            "stats": summed[0]}


if __name__ == "__main__":
    torch.set_num_threads(1)
    run_env = RunEnv.from_environment(device="cpu")
    out = evaluate(sys.argv[1], sys.argv[2], run_env, *sys.argv[4:5])
    if run_env.is_main:
        Path(sys.argv[3]).write_text(json.dumps(out))
    run_env.shutdown()
