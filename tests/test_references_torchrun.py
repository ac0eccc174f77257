"""Every reference under ``torchrun --nproc_per_node=2`` on CPU (gloo), through the CLI.

NCF's small preset runs to its target; the others run one block and one evaluation.
"""

import pytest
import yaml

from helpers import read_events, run_cli
from mlperf_train.benchmark import implemented
from mlperf_train.hparams import default_preset_path

pytestmark = pytest.mark.slow


def torchrun_cli(*args, timeout=600):
    return run_cli("run", *args, nproc=2, timeout=timeout)


def one_block_preset(benchmark, tmp_path):
    """The small preset, cut to one epoch with one evaluation."""
    doc = yaml.safe_load(default_preset_path(benchmark).read_text())
    doc["max_epochs"] = 1
    doc["eval"] = {"every_epochs": 1}
    path = tmp_path / f"{benchmark}-one-block.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("benchmark", [b for b in implemented() if b != "ncf"])
def test_one_block_and_one_evaluation_on_two_ranks(benchmark, tmp_path):
    result = torchrun_cli(benchmark, "--hparams", one_block_preset(benchmark, tmp_path), "--runs", "1",
                          "--seed", "3", "--output", tmp_path, "--system", "ddp2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = read_events(tmp_path / "ddp2" / benchmark / "result_0.txt")
    keys = [e["key"] for e in log]
    assert keys.count("eval_accuracy") == 1 and keys.count("block_start") == 1 and keys.count("run_stop") == 1
    assert keys.count("global_batch_size") == 1


@pytest.mark.skipif("ncf" not in implemented(), reason="NCF reference not present")
def test_ncf_small_preset_reaches_its_target_on_two_ranks(tmp_path):
    result = torchrun_cli("ncf", "--runs", "1", "--seed", "1", "--output", tmp_path, "--system", "ddp2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = read_events(tmp_path / "ddp2" / "ncf" / "result_0.txt")
    stop = [e for e in log if e["key"] == "run_stop"][0]
    assert stop["metadata"]["status"] == "success"
