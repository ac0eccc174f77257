"""A reference's real training step against a plain-PyTorch peer on the same batch (issue 18).

    /work/bin/heavy python perf/sidebyside.py resnet [--layout nchw|channels_last] [--size full|small]
    /work/bin/heavy python perf/sidebyside.py resnet-layout [--size full|small]   # ours CL vs ours NCHW
    /work/bin/heavy python perf/sidebyside.py transformer | ncf  [--pairs 7] [--min-seconds 2]
    /work/bin/heavy python perf/sidebyside.py ncf --preset reference.yaml --data DIR   # full-size NCF
    /work/bin/heavy python perf/sidebyside.py ssd | maskrcnn | gnmt | minigo  [--pairs 7] [--min-seconds 2]

"Ours" is the reference's own code through the contract (``mlperf_train/benchmark.py``):
``init`` (its artifacts, where it needs any, written untrained into a temporary folder;
``open_data`` on the small preset's generated data where the model's size is the data's),
``example_batch(state, "train")``, then ``train_step`` on that one batch over
and over. The peer (``perf/peers.py``) runs the same batch through the model a PyTorch user
would write, in a torchvision-style loop.

Measurement: one timed warm-up step per side sizes the repetitions (each measurement lasts at
least ``--min-seconds``), then ``--pairs`` pairs, the side that goes first alternating; inside
a pair the sides take turns step by step (A B B A ...), each side's steps summed. Then one
more step per side is counted by the harness's ``mlperf_train.flops.Counter``
(``torch.utils.flop_counter`` plus formulas for oneDNN LSTMs, ``roi_align`` and ``nms``):
after the pairs, because Mask R-CNN's work depends on the weights (its mask head runs on the
positive RoIs only). Prints each pair, then
``step_ratio=<ours/peer>``: the median of the per-pair throughput ratios (samples/s, so
above 1 means ours is faster), and ``mfu_ours=`` / ``mfu_peer=``: counted FLOP/s (forward
and backward; optimizer and element-wise work that the counter does not count are left
out) over the measured fp32 peak of the op class holding most of ours' counted FLOPs
(``perf/peak.py``: ``mlperf_train.roofline``'s measurement; issue 17's definition). Run it
through ``/work/bin/heavy`` (one thread) on a shared machine.

Adding a reference is a ``*_case`` function of a few lines and one entry in ``CASES``.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable

import torch
from mlperf_train import benchmark as contract
from mlperf_train import flops
from mlperf_train import datacache
from mlperf_train.benchmark import Artifacts
from mlperf_train.distributed import RunEnv
from mlperf_train.hparams import HPARAMS_DIR, load_preset

try:  # run as a script (perf/ on sys.path) or as ``python -m perf.sidebyside``
    import peak
    import peers
except ImportError:  # pragma: no cover
    from perf import peak, peers


@dataclasses.dataclass
class Side:
    name: str
    step: Callable[[], Any]   # one training step on the fixed batch
    flops: float = 0.0        # counted per step (filled by the warm-up)
    op_class: str = ""        # the op class holding most of those FLOPs: "conv" or "gemm"


@dataclasses.dataclass
class Case:
    title: str
    ours: Side
    peer: Side
    samples: int              # per step (images, sentences, samples)
    unit: str
    notes: tuple = ()


# --- building "ours" from the contract ----------------------------------------------------------
def reference(name: str, preset_file: str = "small.yaml", settings: dict | None = None,
              hparams: dict | None = None, reference_settings: bool = False, data: str = "none",
              data_root: Path | None = None, artifacts: Callable[[Path, Any], None] | None = None):
    """``(bench, state)``: the preset ``hparams/<name>/<preset_file>`` with ``settings`` and
    ``hparams`` overrides (on the Settings defaults, the reference's, when
    ``reference_settings``), through ``init``. ``data``: "none" (a temporary artifacts folder
    that ``artifacts(folder, preset)`` fills, when given), "artifacts" (the small preset's
    generated folder, for its artifacts) or "open" (also ``open_data`` on it); ``data_root``
    replaces the generated folder (a prepared dataset)."""
    bench = contract.get(name)
    preset = load_preset(HPARAMS_DIR / name / preset_file, None, "open", bench.Settings)
    base = bench.Settings() if reference_settings else preset.settings
    preset = dataclasses.replace(preset, settings=dataclasses.replace(base, **(settings or {})),
                                 hparams=types.MappingProxyType({**preset.hparams, **(hparams or {})}))
    env = RunEnv.from_environment()
    env.seed_everything(0)
    if data_root is not None:
        root = Path(data_root)
    elif data == "none":
        root = Path(tempfile.mkdtemp(prefix="sidebyside-"))
        if artifacts is not None:
            (root / contract.ARTIFACTS_DIR).mkdir()
            torch.manual_seed(0)
            artifacts(root / contract.ARTIFACTS_DIR, preset)
    else:
        small = load_preset(HPARAMS_DIR / name / "small.yaml", None, "open", bench.Settings)
        root = datacache.small_dataset(bench, small, env)
    state = bench.init(preset, env, Artifacts(root / contract.ARTIFACTS_DIR))
    if data == "open":
        bench.open_data(state, types.SimpleNamespace(root=root))
    return bench, state


def train_side(bench, state, batch) -> Side:
    return Side(f"{bench.name} train_step", lambda: bench.train_step(state, batch.data))


def same_optimizer(optimizer: torch.optim.Optimizer, **hyper) -> peers.MakeOptimizer:
    """The reference optimizer's class and defaults (``fused``/``foreach`` included) for the
    peer's parameters, with ``hyper`` overriding (e.g. a learning rate set per step)."""
    return lambda parameters: type(optimizer)(parameters, **{**optimizer.defaults, **hyper})


# --- cases ---------------------------------------------------------------------------------------
RESNET_FULL = dict(hparams={"global_batch_size": 32}, reference_settings=True)
RESNET_SMALL = dict(hparams={}, reference_settings=False)
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def resnet_state(size: str, layout: str | None, batch: int | None):
    """ResNet-50 at full width (the reference settings, batch 32) or at the small preset's
    sizes. ``layout`` None keeps what ``init`` chose for the device; else it is forced."""
    options = dict(RESNET_FULL if size == "full" else RESNET_SMALL)
    if batch:
        options["hparams"] = {"global_batch_size": batch}
    bench, state = reference("resnet", **options)
    chosen = state.memory_format
    if layout is not None and LAYOUTS[layout] != state.memory_format:
        state.model.to(memory_format=LAYOUTS[layout])  # parameters stay the optimizer's
        state.memory_format = LAYOUTS[layout]
    state.schedule = state.recipe.schedule_for(1_281_167, state.global_batch_size)  # no data opened
    forced = "" if state.memory_format == chosen else f" (forced; init chose {chosen})"
    return bench, state, forced


def resnet_case(args) -> Case:
    bench, state, forced = resnet_state(args.size, args.layout, args.batch)
    batch = bench.example_batch(state, "train")
    images, labels = batch.data
    channels_last = state.memory_format == torch.channels_last
    peer_step = peers.resnet_peer(images, labels % 1000, same_optimizer(state.optimizer, lr=0.1, weight_decay=1e-4),
                                  channels_last)
    s = state.settings
    return Case(f"resnet {args.size} (width {s.width}, {s.image_size} px), batch {batch.num_samples}, "
                f"{'channels_last' if channels_last else 'NCHW'}{forced}; peer torchvision resnet50",
                train_side(bench, state, batch), Side("torchvision resnet50", peer_step),
                batch.num_samples, "images")


def resnet_layout_case(args) -> Case:
    """Ours in channels_last against ours in NCHW: the per-device layout choice."""
    bench, cl_state, _ = resnet_state(args.size, "channels_last", args.batch)
    _, nchw_state, _ = resnet_state(args.size, "nchw", args.batch)
    batch = bench.example_batch(cl_state, "train")
    return Case(f"resnet {args.size}: ours channels_last (as 'ours') against ours NCHW (as 'peer'), "
                f"batch {batch.num_samples}", train_side(bench, cl_state, batch),
                Side("resnet train_step NCHW", lambda: bench.train_step(nchw_state, batch.data)),
                batch.num_samples, "images")


def transformer_case(args) -> Case:
    """The small preset's sizes: the big model's step (16 × 256 tokens) takes about a minute."""
    bench, state = reference("transformer")
    batch = bench.example_batch(state, "train")
    s = state.settings
    src, tgt = batch.data
    peer_step = peers.transformer_peer(src, tgt, same_optimizer(state.optimizer, lr=1e-4), s.vocab_size,
                                       s.d_model, s.num_heads, s.ffn_inner, s.num_layers, s.dropout,
                                       s.label_smoothing)
    return Case(f"transformer small preset (d {s.d_model}, {s.num_layers}+{s.num_layers} layers, vocab "
                f"{s.vocab_size}), {src.shape[0]} × {src.shape[1]} tokens; peer torch.nn.Transformer",
                train_side(bench, state, batch), Side("nn.Transformer", peer_step),
                batch.num_samples, "sentences")


def ncf_case(args) -> Case:
    """The small preset's model and batch (the model's size is its generated data's), or
    ``--preset reference.yaml --data DIR`` on a prepared dataset (``perf/ncf_prepare_scale.py``
    writes one of ML-20M's size)."""
    bench, state = reference("ncf", preset_file=args.preset, data="open", data_root=args.data)
    batch = bench.example_batch(state, "train")
    model, s = state.model, state.settings
    b = batch.data
    peer_step = peers.ncf_peer(b.users, b.items, b.labels, same_optimizer(state.optimizers[0]),
                               model.mf_user.num_embeddings, model.mf_item.num_embeddings, s.mf_dim, s.layers)
    return Case(f"ncf {Path(args.preset).stem} preset ({model.mf_user.num_embeddings} users, {model.mf_item.num_embeddings} items, "
                f"mf {s.mf_dim}, layers {list(s.layers)}), batch {batch.num_samples}; peer plain NeuMF, "
                f"same optimizer ({type(state.optimizers[0]).__name__}, fused={state.optimizers[0].defaults.get('fused')})",
                train_side(bench, state, batch), Side("plain NeuMF", peer_step), batch.num_samples, "samples")


def ssd_case(args) -> Case:
    """The small preset's sizes (width 8, 300 px, 8,732 boxes, batch 16): at full width a
    step of 32 images is about half a minute on one thread. The backbone file is an
    untrained ResNet-34 at that width. Peer: the same network written from torchvision's
    resnet34 with torchvision SSD's head layout and hard-negative mining (perf/peers.py)."""
    from references.ssd.model import resnet34_at_width

    def backbone(folder, preset):
        torch.save(resnet34_at_width(preset.settings.width).state_dict(), folder / preset.settings.backbone_file)
    bench, state = reference("ssd", artifacts=backbone)
    batch = bench.example_batch(state, "train")
    images, offsets, labels = batch.data
    s = state.settings
    peer_step = peers.ssd_peer(images, offsets, labels, same_optimizer(state.optimizer), s.num_classes, s.width)
    return Case(f"ssd small preset (width {s.width}, {s.image_size} px, {labels.shape[1]} boxes, {s.num_classes} "
                f"classes), batch {batch.num_samples}; peer the same network in a plain loop",
                train_side(bench, state, batch), Side("plain SSD300", peer_step), batch.num_samples, "images")


def maskrcnn_case(args) -> Case:
    """The reference's network (R-50-FPN, FPN 256, FC 1024, 512 RoIs per image, 81 classes)
    on the small preset's image size (200 px short side) and the reference's 2 images per
    rank: at 800 px a step takes tens of seconds on one thread. The backbone file is an
    untrained R-50 in Detectron's format. Peer: torchvision's ``maskrcnn_resnet50_fpn``
    (as built for a pretrained backbone) on the same images, box-shaped masks from the
    example's rectangular polygons, the same proposals per image."""
    from references.maskrcnn import detectron_weights
    from references.maskrcnn.backbone import resnet_body

    def backbone(folder, preset):
        detectron_weights.save_from(resnet_body(preset.settings.width), folder / preset.settings.backbone_weights)
    hparams = {"global_batch_size": args.batch or 2, "min_image_size": 200, "max_image_size": 333,
               "num_image_candidates": 1000}
    bench, state = reference("maskrcnn", hparams=hparams, reference_settings=True, artifacts=backbone)
    batch = bench.example_batch(state, "train")
    padded, sizes, targets = batch.data
    images, peer_targets = [], []
    for image, (h, w), target in zip(padded, sizes, targets):
        images.append(image[:, :h, :w])
        masks = torch.zeros(len(target["boxes"]), h, w, dtype=torch.uint8)
        for mask, (x1, y1, x2, y2) in zip(masks, target["boxes"].round().long().tolist()):
            mask[y1:y2, x1:x2] = 1
        peer_targets.append({"boxes": target["boxes"], "labels": target["labels"], "masks": masks})
    s = state.settings
    # our SGD sets weight decay per group (weights 1e-4, biases 0), not in its defaults; the
    # peer decays every parameter by 1e-4, as torchvision's detection recipe
    peer_step = peers.maskrcnn_peer(images, peer_targets, same_optimizer(state.optimizer, weight_decay=1e-4),
                                    s.num_classes, state.min_size, state.max_size, 1000 // len(images),
                                    s.roi_batch_size_per_image)
    return Case(f"maskrcnn: the reference's network (width {s.width}, FPN {s.fpn_channels}, FC {s.fc_dim}, "
                f"{s.roi_batch_size_per_image} RoIs/image), batch {batch.num_samples} of {tuple(sizes[0])} px; peer "
                f"torchvision maskrcnn_resnet50_fpn", train_side(bench, state, batch),
                Side("torchvision maskrcnn", peer_step), batch.num_samples, "images")


def gnmt_case(args) -> Case:
    """The small preset's sizes (hidden and vocabulary as in hparams/gnmt/small.yaml, 32 × 50 tokens): the full
    model's step (hidden 1024, vocabulary 32k, 128 × 50 tokens) takes about a minute.
    Peer: nn.LSTM layers of the same shape (perf/peers.py), the same Adam and clipping."""
    bench, state = reference("gnmt")
    batch = bench.example_batch(state, "train")
    s = state.settings
    src, _, decoder_in, decoder_out = batch.data
    tgt = torch.cat([decoder_in, decoder_out[:, -1:]], dim=1)  # BOS ... EOS: the peer shifts it itself
    peer_step = peers.gnmt_peer(src, tgt, same_optimizer(state.optimizer), s.vocab_size, s.hidden_size,
                                s.num_layers, s.dropout, s.label_smoothing, s.grad_clip_norm)
    return Case(f"gnmt small preset (hidden {s.hidden_size}, {s.num_layers} layers, vocab {s.vocab_size}), "
                f"{src.shape[0]} × {src.shape[1]} tokens; peer nn.LSTM encoder-decoder",
                train_side(bench, state, batch), Side("nn.LSTM GNMT", peer_step), batch.num_samples, "sentences")


def minigo_case(args) -> Case:
    """The reference's network (9×9, 32 filters, 9 blocks, value FC 64) at ``--batch``
    positions (default 4096, the reference's train_batch_size); the bootstrap and target
    files are an untrained network. Peer: the same tower in plain modules, the same loss."""
    from references.minigo import artifacts as art
    from references.minigo import train
    from references.minigo.model import DualNet

    def untrained(folder, preset):
        kwargs = art.model_kwargs(preset.settings)
        for name in (art.BOOTSTRAP, art.TARGET):
            art.save_model(folder / name, DualNet(**kwargs), kwargs, 0)
        train.write_chunk(folder / art.BOOTSTRAP_CHUNK, train.records_to_chunk([]))
    bench, state = reference("minigo", hparams={"global_batch_size": args.batch or 4096}, reference_settings=True,
                             artifacts=untrained)
    batch = bench.example_batch(state, "train")
    s, b = state.settings, batch.data
    board = b["planes"].shape[-1]
    peer_step = peers.minigo_peer(b["planes"], b["pi"], b["z"], same_optimizer(state.optimizer), board,
                                  s.filters, s.blocks, s.value_fc, s.value_weight)
    return Case(f"minigo: the reference's network ({board}×{board}, {s.filters} filters, {s.blocks} blocks), batch "
                f"{batch.num_samples}; peer plain residual tower", train_side(bench, state, batch),
                Side("plain Go net", peer_step), batch.num_samples, "positions")


CASES: dict[str, Callable[[Any], Case]] = {
    "ssd": ssd_case,
    "gnmt": gnmt_case,
    "maskrcnn": maskrcnn_case,
    "minigo": minigo_case,
    "resnet": resnet_case,
    "resnet-layout": resnet_layout_case,
    "transformer": transformer_case,
    "ncf": ncf_case,
}


# --- measuring -----------------------------------------------------------------------------------
def seconds_per_step(side: Side, repetitions: int, sync: Callable[[], None]) -> float:
    started = time.perf_counter()
    for _ in range(repetitions):
        side.step()
    sync()
    return (time.perf_counter() - started) / repetitions


def count_flops(side: Side, sync) -> float:
    """The harness's count (``mlperf_train.flops.Counter``: torch's counter plus formulas for
    what it misses, e.g. oneDNN LSTMs and ``roi_align``) of one step, and its dominant op class."""
    with flops.Counter() as counter:
        side.step()
    sync()
    side.flops = float(counter.total)
    by_class = counter.by_class()
    side.op_class = max(by_class, key=by_class.get)
    return side.flops


def measure(case: Case, pairs: int, min_seconds: float) -> dict:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sides = (case.ours, case.peer)
    repetitions = max(1, round(min_seconds / max(min(seconds_per_step(s, 1, sync) for s in sides), 1e-6)))
    print(f"{case.title}\n{torch.get_num_threads()} thread(s); {repetitions} step(s) per measurement", flush=True)
    ratios, cpu_ratios, times = [], [], {s.name: [] for s in sides}
    for index in range(pairs):
        first = sides if index % 2 == 0 else sides[::-1]
        wall, cpu = {s.name: 0.0 for s in sides}, {s.name: 0.0 for s in sides}
        for repetition in range(repetitions):  # A B B A ...: a drifting load hits both sides alike
            for side in (first if repetition % 2 == 0 else first[::-1]):
                started, started_cpu = time.perf_counter(), time.process_time()
                side.step()
                sync()
                wall[side.name] += time.perf_counter() - started
                cpu[side.name] += time.process_time() - started_cpu
        for name, value in wall.items():
            times[name].append(value / repetitions)
        ratio = wall[case.peer.name] / wall[case.ours.name]
        ratios.append(ratio)
        cpu_ratios.append(cpu[case.peer.name] / cpu[case.ours.name])
        print(f"pair {index} ({first[0].name} first): ours {case.samples * repetitions / wall[case.ours.name]:.2f} "
              f"{case.unit}/s, peer {case.samples * repetitions / wall[case.peer.name]:.2f} {case.unit}/s, "
              f"ours/peer {ratio:.3f} (CPU time: {cpu_ratios[-1]:.3f})", flush=True)
    for side in sides:  # after the pairs: where the work depends on the weights (sampled RoIs), as timed
        count_flops(side, sync)
    print(f"counted GFLOP per step (one more step each): ours {case.ours.flops / 1e9:.2f}, "
          f"peer {case.peer.flops / 1e9:.2f}", flush=True)
    peak_flops = peak.peak_flops_per_second(case.ours.op_class)
    result = {"step_ratio": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
              "cpu_ratio": statistics.median(cpu_ratios), "peak": peak_flops, "op_class": case.ours.op_class}
    for key, side in (("ours", case.ours), ("peer", case.peer)):
        step_seconds = statistics.median(times[side.name])
        result[f"{key}_per_s"] = case.samples / step_seconds
        result[f"mfu_{key}"] = side.flops / step_seconds / peak_flops
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="shortest measurement of one side")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default=None,
                        help="resnet: force a layout (default: what init picks for the device)")
    parser.add_argument("--size", choices=["full", "small"], default="full", help="resnet: model and batch size")
    parser.add_argument("--batch", type=int, default=None,
                        help="resnet, maskrcnn, minigo: batch size (default: resnet 32 full, preset small; maskrcnn 2; "
                             "minigo 4096)")
    parser.add_argument("--preset", default="small.yaml", help="ncf: the hparams file under hparams/<bench>/")
    parser.add_argument("--data", type=Path, default=None, help="ncf: a prepared dataset (default: the small one)")
    args = parser.parse_args()
    case = CASES[args.case](args)
    r = measure(case, args.pairs, args.min_seconds)
    print(f"ours {r['ours_per_s']:.2f} {case.unit}/s, peer {r['peer_per_s']:.2f} {case.unit}/s (medians)")
    print(f"step_ratio={r['step_ratio']:.3f} (median of {args.pairs} pairs; range {r['min']:.3f}-{r['max']:.3f}; "
          f"the same on process CPU time: {r['cpu_ratio']:.3f})")
    print(f"mfu_ours={r['mfu_ours']:.3f} mfu_peer={r['mfu_peer']:.3f} (counted FLOP/s over the measured "
          f"{r['op_class']} peak, {r['peak'] / 1e9:.1f} GFLOP/s at {torch.get_num_threads()} thread(s), "
          f"mlperf_train.roofline)")


if __name__ == "__main__":
    main()
