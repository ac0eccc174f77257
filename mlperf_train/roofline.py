"""``mlperf-train roofline``: this device's measured peak, beside the logs it belongs to.

HPC AI500 bounds a system by micro-benchmarks of the ops that dominate AI training; here
those are GEMMs and convolutions at the layer shapes that dominate each reference
(:data:`SHAPES`), in fp32 and bf16, and the memory bandwidth (a large tensor copy: bytes read
plus bytes written per second). Each op runs repeatedly until :data:`MIN_SECONDS` have passed
(after a warm-up); its rate is the best of :data:`REPEATS` such timings. The peak of an op
class at a precision is the best rate over its shapes.

On CPU one op does at most :data:`CPU_MAX_FLOPS_PER_OP`: the leading (batch or token)
dimension, then a conv's image height, shrink until it fits (and further while one op takes
over :data:`CPU_MAX_PROBE_SECONDS`: bf16 without native CPU support is tens of times slower),
so that the whole measurement takes about a minute; the channels, kernel and the GEMM's inner and outer widths stay the
reference's. Torch's own settings apply (threads,
TF32), the same ones a run on this machine gets, so a run's MFU compares like with like.

The result is ``<output>/<system>/roofline.json``; ``report`` reads it beside the logs of
``<output>/<system>/<benchmark>/`` (the system name the logs carry in ``submission_platform``).
A CUDA roofline is one GPU's: a run's peak is it times its ranks. On CPU the ranks share
one device: the peak is the roofline's as measured.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mlperf_train.errors import UsageError

ROOFLINE_FILE = "roofline.json"
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
MIN_SECONDS = 0.05
REPEATS = 3
CPU_MAX_FLOPS_PER_OP = 2e9
CPU_MAX_PROBE_SECONDS = 0.25

# Dominant layer shapes per reference. GEMM: (M tokens/rows, K inner, N outputs);
# conv: (batch, C in, H, W, C out, kernel, stride).
SHAPES = {
    "gemm": [
        ("transformer", "FFN in (Transformer big: 1024 -> 4096, ~5120 tokens a batch)", (5120, 1024, 4096)),
        ("transformer", "attention projection (1024 -> 1024)", (5120, 1024, 1024)),
        ("gnmt", "LSTM gates (batch 128; input + hidden 2048 -> 4 x 1024)", (128, 2048, 4096)),
        ("ncf", "NeuMF MLP (256 -> 256, 65536 samples of a 1M global batch)", (65536, 256, 256)),
        ("resnet", "classifier (2048 -> 1001, batch 256)", (256, 2048, 1001)),
    ],
    "conv": [
        ("resnet", "ResNet-50 stage 3, 3x3 256 ch at 14x14 (batch 32)", (32, 256, 14, 14, 256, 3, 1)),
        ("resnet", "ResNet-50 stage 3, 1x1 1024 -> 256 at 14x14 (batch 32)", (32, 1024, 14, 14, 256, 1, 1)),
        ("ssd", "SSD ResNet-34 backbone, 3x3 256 ch at 38x38 (batch 32)", (32, 256, 38, 38, 256, 3, 1)),
        ("maskrcnn", "Mask R-CNN FPN, 3x3 256 ch at 200x336 (batch 2)", (2, 256, 200, 336, 256, 3, 1)),
        ("minigo", "MiniGo residual tower, 3x3 at 9x9 (batch 256)", (256, 128, 9, 9, 128, 3, 1)),
    ],
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(work: float, run, device: torch.device) -> float:
    """Best of REPEATS timings of ``run`` repeated for at least MIN_SECONDS: ``work`` per second."""
    run()
    _sync(device)
    best = 0.0
    for _ in range(REPEATS):
        count, start = 0, time.perf_counter()
        while True:
            run()
            count += 1
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= MIN_SECONDS:
                break
        best = max(best, work * count / elapsed)
    return best


def _fitted(shape: tuple, flops_of, device: torch.device, shrinkable=(0,), max_flops: float = CPU_MAX_FLOPS_PER_OP):
    """``shape`` on CUDA; on CPU, its ``shrinkable`` dimensions halved in turn, each down to
    1, until one op does at most ``max_flops``."""
    shape = list(shape)
    if device.type == "cuda":
        return tuple(shape)
    for dim in shrinkable:
        while flops_of(*shape) > max_flops and shape[dim] > 1:
            shape[dim] = max(1, shape[dim] // 2)
    return tuple(shape)


def _probe(make, shape: tuple, flops_of, device: torch.device, shrinkable) -> tuple:
    """The CPU shape to time: fitted, then smaller while one op takes over
    CPU_MAX_PROBE_SECONDS (bf16 without native CPU support runs tens of times slower)."""
    fitted = _fitted(shape, flops_of, device, shrinkable)
    if device.type == "cuda":
        return fitted
    while True:
        run = make(fitted)
        start = time.perf_counter()
        run()
        if time.perf_counter() - start <= CPU_MAX_PROBE_SECONDS or flops_of(*fitted) < 1e6:
            return fitted
        fitted = _fitted(fitted, flops_of, device, shrinkable, flops_of(*fitted) / 4)


def gemm_flops(m: int, k: int, n: int) -> int:
    return 2 * m * k * n


def conv_flops(batch: int, c_in: int, height: int, width: int, c_out: int, kernel: int, stride: int) -> int:
    """Same padding: 2 FLOPs per multiply-add, one per weight per output position."""
    out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
    return 2 * batch * out_h * out_w * c_out * c_in * kernel * kernel


def measure_gemm(shape: tuple, dtype: torch.dtype, device: torch.device) -> tuple[tuple, float]:
    def make(shape):
        m, k, n = shape
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        return lambda: torch.mm(a, b)

    shape = _probe(make, shape, gemm_flops, device, (0,))
    return shape, _rate(gemm_flops(*shape), make(shape), device)


def measure_conv(shape: tuple, dtype: torch.dtype, device: torch.device) -> tuple[tuple, float]:
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format

    def make(shape):
        batch, c_in, height, width, c_out, kernel, stride = shape
        x = torch.randn(batch, c_in, height, width, device=device, dtype=dtype).to(memory_format=memory_format)
        w = torch.randn(c_out, c_in, kernel, kernel, device=device, dtype=dtype).to(memory_format=memory_format)
        return lambda: F.conv2d(x, w, stride=stride, padding=kernel // 2)

    shape = _probe(make, shape, conv_flops, device, (0, 2))
    return shape, _rate(conv_flops(*shape), make(shape), device)


def measure_bandwidth(device: torch.device, num_bytes: int | None = None) -> float:
    """Bytes per second of a tensor copy (read + write)."""
    num_bytes = num_bytes or (1 << 30 if device.type == "cuda" else 1 << 26)
    source = torch.empty(num_bytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    target = torch.empty_like(source)
    return _rate(2 * num_bytes, lambda: target.copy_(source), device)


def measure(device: torch.device, precisions=tuple(PRECISIONS), classes=("gemm", "conv")) -> dict:
    """The roofline as a dict (what ``roofline.json`` holds)."""
    result = {"device": _device_name(device), "device_type": device.type, "torch": torch.__version__,
              "threads": torch.get_num_threads() if device.type == "cpu" else None,
              "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "method": f"best of {REPEATS} timings of >= {MIN_SECONDS} s each, after a warm-up"
                        + ("" if device.type == "cuda" else f"; on CPU at most {CPU_MAX_FLOPS_PER_OP:.0e} FLOPs per op"),
              "peak_flops": {}, "ops": []}
    for op_class in classes:
        run = measure_gemm if op_class == "gemm" else measure_conv
        for precision in precisions:
            best = 0.0
            for benchmark, what, shape in SHAPES[op_class]:
                measured_shape, flops = run(shape, PRECISIONS[precision], device)
                best = max(best, flops)
                result["ops"].append({"class": op_class, "precision": precision, "benchmark": benchmark,
                                      "what": what, "shape": list(measured_shape), "flops": flops})
            result["peak_flops"].setdefault(op_class, {})[precision] = best
    result["memory_bandwidth_bytes_per_s"] = measure_bandwidth(device)
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def load(path: Path) -> dict | None:
    """A ``roofline.json`` or None when there is none (or it is unreadable)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def peak(roofline: dict | None, op_class: str, precision: str, world_size: int = 1) -> float | None:
    """The peak a run of ``world_size`` ranks compares with (module docstring)."""
    if not roofline:
        return None
    value = roofline.get("peak_flops", {}).get(op_class, {}).get(precision)
    if not value:
        return None
    return value * (world_size if roofline.get("device_type") == "cuda" else 1)


def main(args) -> int:
    from mlperf_train.distributed import RunEnv
    from mlperf_train.series import default_system_name

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    system = args.system or default_system_name(RunEnv(world_size=int(os.environ.get("WORLD_SIZE", "1")),
                                                       device=device))
    result = measure(device)
    result["system"] = system
    path = Path(args.output) / system / ROOFLINE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    for op in result["ops"]:
        print(f"{op['class']:4} {op['precision']}  {op['flops'] / 1e9:10.1f} GFLOPS  {op['benchmark']}: {op['what']}")
    for op_class, peaks in result["peak_flops"].items():
        print(f"peak {op_class}: " + ", ".join(f"{p} {v / 1e9:.1f} GFLOPS" for p, v in peaks.items()))
    print(f"memory bandwidth: {result['memory_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s")
    print(f"wrote {path}")
    return 0
