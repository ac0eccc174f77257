"""Measured work (``mlperf_train/flops.py``): the formulas for what the counter misses, each
against a hand formula on one layer, and counting on every implemented reference leaves its
training bit for bit as it was."""
import math

import pytest
import torch
import torchvision

from mlperf_train import benchmark as registry
from mlperf_train import flops
from mlperf_train.benchmark import Artifacts, Dataset, ExampleNeedsData
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import HPARAMS_DIR, load_preset

BENCHMARKS = registry.implemented()


def _count(fn) -> tuple[int, dict]:
    counter = flops.Counter()
    with counter:
        fn()
    return counter.total, {str(k): v for k, v in counter.mode.get_flop_counts()["Global"].items()}


def test_lstm_under_onednn_is_counted_by_the_hand_formula():
    seq, batch, inputs, hidden = 7, 3, 16, 32
    lstm = torch.nn.LSTM(inputs, hidden)
    x = torch.randn(seq, batch, inputs)
    with torch.backends.mkldnn.flags(enabled=True), torch.no_grad():
        forward, ops = _count(lambda: lstm(x))
    hand = 2 * seq * batch * 4 * hidden * (inputs + hidden)    # 4 gates, input and hidden matrices
    assert ops == {"aten.mkldnn_rnn_layer": hand}                # the counter alone says 0
    with torch.backends.mkldnn.flags(enabled=False), torch.no_grad():
        decomposed, ops = _count(lambda: lstm(x))
    assert decomposed == hand and "aten.addmm" in ops            # the counter's own count, oneDNN off
    with torch.backends.mkldnn.flags(enabled=True):
        total, ops = _count(lambda: lstm(x)[0].sum().backward())
    assert ops["aten.mkldnn_rnn_layer_backward"] == 2 * hand and total == 3 * hand


def test_roi_align_and_nms_by_hand():
    channels, pooled = 8, (7, 7)
    features = torch.randn(2, channels, 32, 32, requires_grad=True)
    rois = torch.tensor([[0, 0, 0, 10, 10], [1, 2, 2, 20, 30.0]])
    total, ops = _count(lambda: torchvision.ops.roi_align(features, rois, pooled, 0.5, 2, True).sum().backward())
    points = 2 * 2 * 2                                           # 2 rois x sampling_ratio^2
    assert ops["torchvision.roi_align"] == channels * 49 * (8 * points + 2)
    assert ops["torchvision._roi_align_backward"] == channels * 49 * 8 * points
    # adaptive grid: ceil(roi_h / 7) * ceil(roi_w / 7) points; at scale 1, aligned: 10x10 -> 2x2, 18x28 -> 3x4
    with torch.no_grad():
        _, ops = _count(lambda: torchvision.ops.roi_align(features, rois, pooled, 1.0, -1, True))
    assert ops["torchvision.roi_align"] == channels * 49 * (8 * (2 * 2 + 3 * 4) + 2)
    boxes = torch.rand(10, 2).mul(10).repeat(1, 2) + torch.tensor([0, 0, 5, 5])
    _, ops = _count(lambda: torchvision.ops.nms(boxes, torch.rand(10), 0.5))
    assert ops["torchvision.nms"] == 3 * 10 + 13 * 45


def test_op_class_and_precision():
    conv, linear = torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 4)
    counter = flops.Counter()
    with counter, torch.no_grad():
        conv(torch.randn(1, 3, 10, 10))
        linear.bfloat16()(torch.randn(2, 8).bfloat16())
    assert counter.by_class() == {"conv": 2 * 8 * 8 * 8 * 27, "gemm": 2 * 2 * 8 * 4}
    assert counter.precision() == "fp32"       # most FLOPs are the convolution's


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    made = {}

    def make(name):
        if name not in made:
            bench = registry.get(name)
            preset = load_preset(HPARAMS_DIR / name / "tiny.yaml", None, "closed", bench.Settings,
                                 expected_benchmark=name)
            folder = tmp_path_factory.mktemp(f"{name}-flops")
            bench.generate_small(folder, preset.settings, seed=0)
            made[name] = bench, preset, folder
        return made[name]
    return make


def _started(bench, preset, folder):
    env = RunEnv()
    env.seed_everything(0)
    env.dataset = Dataset(folder)
    state = bench.init(preset, env, Artifacts(folder / "artifacts"))
    return env, state


def _open(bench, env, state):
    env.dataset._open_for_run()
    bench.open_data(state, env.dataset)


def _weights(state) -> list[torch.Tensor]:
    found, seen = [], set()
    for _, value in flops._members(state):
        if isinstance(value, torch.nn.Module) and id(value) not in seen:
            seen.add(id(value))
            found += [t.detach().clone() for t in value.state_dict().values()]
    return found


@pytest.mark.parametrize("name", BENCHMARKS)
def test_counting_changes_no_training(name, tiny):
    bench, preset, folder = tiny(name)
    steps = []
    for count_first in (True, False):
        env, state = _started(bench, preset, folder)
        try:
            counted = None
            if count_first:
                try:
                    counted = flops.count(bench, state)           # before the clock, as the engine does
                except ExampleNeedsData:
                    pass
            _open(bench, env, state)
            if count_first and counted is None:
                counted = flops.count(bench, state)               # NCF: once the data is open
            if count_first:
                assert counted.train_flops_per_step > 0 and counted.eval_flops_per_sample > 0
                assert counted.op_class in ("gemm", "conv") and counted.precision in ("fp32", "bf16", "fp16")
                assert math.isclose(counted.train_flops_per_sample * counted.train_samples_per_step,
                                    counted.train_flops_per_step)
            example = bench.example_batch(state, "train")
            loss = bench.train_step(state, example.data)
            steps.append((float(loss), _weights(state), torch.get_rng_state(), torch.rand(3)))
        finally:
            bench.close(state)
    (loss_a, weights_a, rng_a, draw_a), (loss_b, weights_b, rng_b, draw_b) = steps
    assert loss_a == loss_b
    assert len(weights_a) == len(weights_b) and all(torch.equal(a, b) for a, b in zip(weights_a, weights_b))
    assert torch.equal(rng_a, rng_b) and torch.equal(draw_a, draw_b)


def test_resnet_counts_convolutions_and_transformer_gemms(tiny):
    expected = {"resnet": "conv", "transformer": "gemm", "ncf": "gemm"}
    for name, op_class in expected.items():
        bench, preset, folder = tiny(name)
        env, state = _started(bench, preset, folder)
        try:
            _open(bench, env, state)
            assert flops.count(bench, state).op_class == op_class, name
        finally:
            bench.close(state)


def test_cudnn_rnn_formula_takes_every_layer_and_direction():
    """``aten._cudnn_rnn(input, weights, ...)`` (no GPU here: the formula on its arguments):
    a 2-layer bidirectional LSTM's flat weight list, biases (1-D) left out."""
    seq, batch, inputs, hidden = 5, 3, 16, 32
    lstm = torch.nn.LSTM(inputs, hidden, num_layers=2, bidirectional=True)
    weights = [w for w in lstm._flat_weights]
    x = torch.randn(seq, batch, inputs)
    layer0 = 4 * hidden * (inputs + hidden)
    layer1 = 4 * hidden * (2 * hidden + hidden)
    hand = 2 * seq * batch * 2 * (layer0 + layer1)
    assert flops._cudnn_rnn(x, weights) == hand
    assert flops._cudnn_rnn_backward(x, weights) == 2 * hand
    packed = torch.randn(11, inputs)          # a packed sequence: 11 real tokens
    assert flops._cudnn_rnn(packed, weights) == 2 * 11 * 2 * (layer0 + layer1)
