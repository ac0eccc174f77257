"""Programs that tests/test_distributed.py launches under torchrun.

    python dist_workers.py equivalence OUT.json   # loss trajectory of a deterministic model
    python dist_workers.py series OUT_DIR MODE    # the toy benchmark through run_series
"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlperf_train import series  # noqa: E402
from mlperf_train.distributed import RunEnv  # noqa: E402

GLOBAL_BATCH, NUM_STEPS = 16, 12


def equivalence(out: str) -> None:
    env = RunEnv.from_environment(device="cpu")
    env.seed_everything(0)
    torch.set_num_threads(1)
    inputs = torch.randn(GLOBAL_BATCH * NUM_STEPS, 8)
    targets = inputs @ torch.randn(8, 1) + 0.1 * torch.randn(GLOBAL_BATCH * NUM_STEPS, 1)
    model = env.wrap_model(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(NUM_STEPS):
        batch = slice(step * GLOBAL_BATCH, (step + 1) * GLOBAL_BATCH)
        x, y = env.shard_batch(inputs[batch]), env.shard_batch(targets[batch])
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        global_loss = env.all_reduce_sum(loss.detach().clone()) / env.world_size
        losses.append(global_loss.item())
    if env.is_main:
        Path(out).write_text(json.dumps(losses))
    env.shutdown()


def toy_series(out: str, mode: str) -> int:
    from toy_benchmark import ToyBenchmark, toy_preset, toy_rules

    env = RunEnv.from_environment(device="cpu")
    settings = {"epoch_seconds": 0.2}
    # the same settings on every rank: they key the data cache
    faults = {"sigterm-rank1": {"signal_in_epoch": 2}, "crash-rank1": {"crash_in_epoch": 2},
              "exit-rank1": {"exit_in_epoch": 2}}
    if mode in faults:
        settings.update(faults[mode], fault_rank=1)
    preset = toy_preset(target=0.3 if mode == "success" else 0.9, max_epochs=6, **settings)
    series.load_series_preset = lambda config: (ToyBenchmark(), preset)
    series.benchmark_rules = lambda name, ruleset: toy_rules()
    series._print_aggregate = lambda folder, ruleset: None
    config = series.SeriesConfig(benchmark="toy", runs=1, seed=5, output=Path(out), system="sys")
    try:
        return series.run_series(config, env)
    finally:
        env.shutdown()


if __name__ == "__main__":
    if sys.argv[1] == "equivalence":
        equivalence(sys.argv[2])
    else:
        sys.exit(toy_series(sys.argv[2], sys.argv[3]))
