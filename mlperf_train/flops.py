"""Measured work: the FLOPs of one training step and of one evaluation sample.

The harness runs the reference's own ``train_step`` on ``example_batch(state, "train")`` and
``eval_step`` on ``example_batch(state, "eval")`` (real shapes, generated content, no data
access) under ``torch.utils.flop_counter.FlopCounterMode``, before the clock, and then puts
back everything the step changed (:func:`restored`): weights, buffers, gradients, optimizer
and scheduler state, train/eval flags, scalar fields of the state, every random generator.
Training after a count is bit for bit the training without one (``tests/test_flops.py``).

What is counted is the counter's convention: multiply-adds of GEMMs (``mm``, ``addmm``,
``bmm``, ``baddbmm``), convolutions and attention, as 2 FLOPs each, forward and backward;
elementwise work, normalisation and embedding lookups count 0. Where the counter sees an op
but has no formula, :data:`FORMULAS` adds one, keyed by the op (so a new reference that uses
it is counted without any code of its own):

- recurrent layers (LSTM, GRU, RNN) under oneDNN on CPU (``mkldnn_rnn_layer``) and cuDNN
  (``_cudnn_rnn``): the counter counts them 0. Forward: 2 FLOPs per weight of every gate
  matrix (input-hidden and hidden-hidden) per token, which is exactly what the counter gives
  the same layer when it runs decomposed into ``addmm`` (oneDNN off). Backward: twice the
  forward (input and weight gradients), the GEMM convention;
- ``torchvision.ops.roi_align``: per output element, 8 FLOPs per sampling point (a bilinear
  interpolation: 4 multiplies and 4 adds into the bin's sum) and 1 for the average; the
  sampling grid is ``sampling_ratio``² or, adaptive (``sampling_ratio <= 0``), ``ceil(roi_h /
  pooled_h) * ceil(roi_w / pooled_w)`` per roi, as torchvision computes it. Its backward
  scatters the same 8 FLOPs per sampling point;
- ``torchvision.ops.nms``: an upper bound, 3 FLOPs per box for its area and 13 per box pair
  (``N (N - 1) / 2``) for an IoU and its comparison with the threshold (intersection: 2 max,
  2 min, 2 subtractions, 2 clamps, 1 multiply; union: 1 add, 1 subtract; 1 divide, 1 compare).

**MFU** (model FLOPs utilisation) of a run = achieved training FLOPS (training FLOPs per
sample x training samples processed / time to train) / the measured peak (``roofline.json``,
``mlperf-train roofline``) of the op class that holds most of the model's FLOPs (``gemm`` or
``conv``, :attr:`FlopCount.op_class`) at the run's precision (:attr:`FlopCount.precision`,
the dtype holding most of the counted FLOPs), times the number of ranks. The step-speed
work uses the same definition.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random
from collections import defaultdict
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten
CONV, GEMM = "conv", "gemm"
PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """One reference's measured work, on this rank's example batches."""

    train_flops_per_step: int        # forward + backward + optimizer of this rank's share
    train_samples_per_step: int      # this rank's share of a global batch
    eval_flops_per_sample: float
    op_class: str                    # "gemm" or "conv": which holds most training FLOPs
    precision: str                   # "fp32", "bf16", ...: the dtype holding most training FLOPs
    by_class: dict                   # {"gemm": flops, "conv": flops} of one training step

    @property
    def train_flops_per_sample(self) -> float:
        return self.train_flops_per_step / max(self.train_samples_per_step, 1)

    def logged(self, world_size: int, device: str) -> tuple[float, dict]:
        """(value, metadata) of ``mlperf_train_flops_per_sample``."""
        return self.train_flops_per_sample, {
            "eval_flops_per_sample": self.eval_flops_per_sample, "train_flops_per_step": self.train_flops_per_step,
            "train_samples_per_step": self.train_samples_per_step, "op_class": self.op_class,
            "precision": self.precision, "world_size": world_size, "device": device,
            "flops_by_class": self.by_class, "method": "torch.utils.flop_counter + mlperf_train.flops formulas"}


# --- formulas for work the counter misses ------------------------------------------------
def _shape(value) -> tuple:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else tuple(value)


def rnn_layer_flops(tokens: int, weights) -> int:
    """Forward FLOPs of a recurrent layer: 2 per gate-matrix weight per token (``weights``:
    the 2-D gate matrices, ``(gates * hidden, inputs)`` and ``(gates * hidden, hidden)``)."""
    return 2 * tokens * sum(math.prod(_shape(w)) for w in weights if len(_shape(w)) == 2)


def _rnn_tokens(input) -> int:
    """Tokens of a recurrent layer's input: (T, B, I) or (B, T, I) padded, (sum of the batch
    sizes, I) packed (its real tokens), (T, I) unbatched."""
    shape = _shape(input)
    return shape[0] * shape[1] if len(shape) == 3 else shape[0]


def _mkldnn_rnn(input, w_ih, w_hh, *args, out_val=None, **kwargs) -> int:
    return rnn_layer_flops(_rnn_tokens(input), (w_ih, w_hh))


def _mkldnn_rnn_backward(input, w_ih, w_hh, *args, out_val=None, **kwargs) -> int:
    return 2 * rnn_layer_flops(_rnn_tokens(input), (w_ih, w_hh))


def _cudnn_rnn(input, weights, *args, out_val=None, **kwargs) -> int:
    return rnn_layer_flops(_rnn_tokens(input), weights)   # every layer's and direction's matrices


def _cudnn_rnn_backward(input, weights, *args, out_val=None, **kwargs) -> int:
    return 2 * rnn_layer_flops(_rnn_tokens(input), weights)


def roi_align_flops(rois: torch.Tensor, channels: int, pooled_height: int, pooled_width: int,
                    spatial_scale: float, sampling_ratio: int, aligned: bool) -> int:
    """FLOPs of ``roi_align`` (forward): 8 per sampling point per output element, plus 1 per
    output element (the bin's average). ``rois``: (K, 5) boxes ``(batch, x1, y1, x2, y2)``."""
    num_rois = rois.shape[0]
    if sampling_ratio > 0:
        points = num_rois * sampling_ratio * sampling_ratio
    else:   # torchvision's adaptive grid: ceil(roi size / pooled size) per roi
        boxes = rois[:, 1:].double() * spatial_scale - (0.5 if aligned else 0.0)
        height, width = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
        if not aligned:
            height, width = height.clamp(min=1.0), width.clamp(min=1.0)
        grid = torch.ceil(height / pooled_height) * torch.ceil(width / pooled_width)
        points = int(grid.sum())
    return channels * pooled_height * pooled_width * (8 * points + num_rois)


def _roi_align(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned, *,
               out_val=None) -> int:
    return roi_align_flops(rois, input.shape[1], pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned)


def _roi_align_backward(grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height,
                        width, sampling_ratio, aligned, *, out_val=None) -> int:
    forward = roi_align_flops(rois, channels, pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned)
    return forward - channels * pooled_height * pooled_width * rois.shape[0]   # no average to undo


def nms_flops(num_boxes: int) -> int:
    """Upper bound of ``nms`` FLOPs for ``num_boxes`` boxes (module docstring)."""
    return 3 * num_boxes + 13 * (num_boxes * (num_boxes - 1) // 2)


def _nms(boxes, scores, iou_threshold, *, out_val=None) -> int:
    return nms_flops(boxes.shape[0])


def _torchvision_formulas() -> dict:
    try:
        import torchvision  # noqa: F401 - registers torch.ops.torchvision
        ops = torch.ops.torchvision
        return {ops.roi_align: _roi_align, ops._roi_align_backward: _roi_align_backward, ops.nms: _nms}
    except (ImportError, AttributeError, RuntimeError):
        return {}


def formulas() -> dict:
    """{op packet: raw formula(*args, out_val, **kwargs) -> FLOPs} for what the counter misses."""
    return {aten.mkldnn_rnn_layer: _mkldnn_rnn, aten.mkldnn_rnn_layer_backward: _mkldnn_rnn_backward,
            aten._cudnn_rnn: _cudnn_rnn, aten._cudnn_rnn_backward: _cudnn_rnn_backward, **_torchvision_formulas()}


_CONV_OPS = {"convolution", "convolution_backward", "_convolution", "cudnn_convolution",
             "cudnn_convolution_transpose", "mkldnn_convolution"}


def op_class(packet) -> str:
    return CONV if getattr(packet, "__name__", str(packet)).split(".")[-1] in _CONV_OPS else GEMM


def _first_float_dtype(args) -> torch.dtype | None:
    for value in args:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype
        if isinstance(value, (list, tuple)):
            found = _first_float_dtype(value)
            if found is not None:
                return found
    return None


class Counter:
    """``torch.utils.flop_counter.FlopCounterMode`` with :func:`formulas` added and every
    counted op also tallied by op class and dtype (for MFU's peak)."""

    def __init__(self):
        self.tally: dict[tuple[str, Any], int] = defaultdict(int)
        base = FlopCounterMode(display=False).flop_registry   # the counter's own formulas
        mapping = {packet: self._tallied(packet, formula) for packet, formula in {**base, **formulas()}.items()}
        self.mode = FlopCounterMode(display=False, custom_mapping=mapping)

    def _tallied(self, packet, formula: Callable) -> Callable:
        def count(*args, out_val=None, **kwargs):
            flops = int(formula(*args, out_val=out_val, **kwargs))
            self.tally[(op_class(packet), _first_float_dtype(args))] += flops
            return flops
        count._get_raw = True    # the counter hands raw tensors; base formulas are shape-wrapped already
        return count

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)

    @property
    def total(self) -> int:
        return self.mode.get_total_flops()

    def by_class(self) -> dict[str, int]:
        result = {GEMM: 0, CONV: 0}
        for (cls, _), flops in self.tally.items():
            result[cls] += flops
        return result

    def precision(self) -> str:
        by_dtype: dict = defaultdict(int)
        for (_, dtype), flops in self.tally.items():
            by_dtype[dtype] += flops
        dtype = max(by_dtype, key=by_dtype.get) if by_dtype else torch.float32
        return PRECISION_NAMES.get(dtype, str(dtype).replace("torch.", ""))


# --- putting the state back ----------------------------------------------------------------
def _members(state: Any) -> Iterator[tuple[str, Any]]:
    """The state's fields and the items of list/tuple/dict fields (optimizer lists)."""
    for field in dataclasses.fields(state):
        value = getattr(state, field.name)
        yield field.name, value
        if isinstance(value, (list, tuple)):
            yield from ((f"{field.name}[{i}]", item) for i, item in enumerate(value))
        elif isinstance(value, dict):
            yield from ((f"{field.name}[{k!r}]", item) for k, item in value.items())


_SCALARS = (int, float, bool, str, type(None))


def _host_copy(tree):
    """A copy of a state dict with every tensor cloned to host memory: a full-scale model and
    its optimizer state do not fit twice on every device. ``load_state_dict`` moves them back."""
    from torch.utils._pytree import tree_map

    return tree_map(lambda v: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else copy.deepcopy(v),
                    tree)


@contextlib.contextmanager
def restored(state: Any):
    """Runs the body, then puts back what one training or evaluation step changes: every
    ``state_dict`` holder among the state's fields (modules: weights and buffers; optimizers;
    schedulers; grad scalers), modules' gradients and train/eval flags, torch generators in the
    state, scalar fields (step counters), and the process's random generators (Python,
    NumPy, torch CPU and CUDA). Other objects must not change in a step."""
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
           torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
    scalars = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
               if isinstance(getattr(state, f.name), _SCALARS)}
    saved, seen = [], set()
    for _, value in _members(state):
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, torch.nn.Module):
            grads = [(p, None if p.grad is None else p.grad.clone()) for p in value.parameters()]
            flags = [(m, m.training) for m in value.modules()]
            saved.append((value, _host_copy(value.state_dict()), grads, flags))
        elif isinstance(value, torch.Generator):
            saved.append((value, value.get_state(), None, None))
        elif callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None)):
            saved.append((value, _host_copy(value.state_dict()), None, None))
    try:
        yield
    finally:
        for value, snapshot, grads, flags in saved:
            if isinstance(value, torch.Generator):
                value.set_state(snapshot)
                continue
            value.load_state_dict(snapshot)
            for param, grad in grads or ():
                param.grad = grad
            for module, training in flags or ():
                module.training = training
        for name, value in scalars.items():
            setattr(state, name, value)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        if rng[3] is not None:
            torch.cuda.set_rng_state_all(rng[3])


def count(benchmark: Any, state: Any) -> FlopCount:
    """Counts one training step and one evaluation batch of ``benchmark`` on ``state`` and
    leaves ``state`` as it was. Every rank must call it (a training step may all-reduce).
    Raises what ``example_batch`` raises (``benchmark.ExampleNeedsData`` when the model
    exists only once the data is open)."""
    with restored(state):
        train = benchmark.example_batch(state, "train")
        with Counter() as train_counter:
            benchmark.train_step(state, train.data)
        evaluation = benchmark.example_batch(state, "eval")
        with torch.no_grad(), Counter() as eval_counter:
            benchmark.eval_step(state, evaluation.data)
    by_class = train_counter.by_class()
    return FlopCount(train_flops_per_step=train_counter.total, train_samples_per_step=train.num_samples,
                     eval_flops_per_sample=eval_counter.total / max(evaluation.num_samples, 1),
                     op_class=max(by_class, key=by_class.get), precision=train_counter.precision(),
                     by_class=by_class)
