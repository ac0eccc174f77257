"""Mask R-CNN's tiny preset on however many processes torchrun starts
(tests/test_maskrcnn_reference.py): ``train`` runs one block, saves the weights and
evaluates them; ``eval`` evaluates saved weights. Rank 0 writes the quality as JSON.

    python maskrcnn_eval_worker.py train|eval DATA_DIR WEIGHTS.pt OUT.json
"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlperf_train.benchmark import Artifacts, Dataset  # noqa: E402
from mlperf_train.distributed import RunEnv  # noqa: E402
from mlperf_train.hparams import HPARAMS_DIR, load_preset  # noqa: E402
from references.maskrcnn.benchmark import BENCHMARK  # noqa: E402


def main(mode: str, data_dir: str, weights: str, out: str) -> None:
    env = RunEnv.from_environment(device="cpu")
    env.seed_everything(0)
    torch.set_num_threads(1)
    preset = load_preset(HPARAMS_DIR / "maskrcnn" / "tiny.yaml", None, "closed", BENCHMARK.Settings,
                         expected_benchmark="maskrcnn")
    state = BENCHMARK.init(preset, env, Artifacts(Path(data_dir) / "artifacts"))
    if mode == "eval":
        state.model.load_state_dict(torch.load(weights))
    dataset = Dataset(Path(data_dir))
    dataset._open_for_run()
    BENCHMARK.open_data(state, dataset)
    if mode == "train":
        BENCHMARK.train_epoch(state, 1, lambda *args, **kwargs: None)
        if env.is_main:
            torch.save(state.model.state_dict(), weights)
    result = BENCHMARK.evaluate(state, 1)
    if env.is_main:
        Path(out).write_text(json.dumps(dict(result.quality)))
    BENCHMARK.close(state)
    env.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:5])
