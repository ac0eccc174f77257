"""ResNet-50 v1.5 on ImageNet: the harness plug-in (spec: shared/spec/resnet.md)."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
import torch.utils.data

from mlperf_train.benchmark import Benchmark, EvalResult, ExampleBatch, ExampleNeedsData, TrainStats
from mlperf_train.settings import setting
from references.resnet.data import EvalImages, ImageIndex, ShardedBatchSampler, TrainImages
from references.resnet.metric import top1_correct
from references.resnet.model import ResNet
from references.resnet.optim import recipe_from_hparams
from references.resnet.prepare import prepare_imagenet
from references.resnet.synthetic import write_raw_imagenet

# Device types that train in channels_last. On the CPU (oneDNN) the step is 1.2-1.4x faster in
# channels_last (perf/sidebyside.py, README "Speed"), but its other rounding sends the small
# preset's seed 1 to top-1 0.912 after 12 epochs instead of its target 0.95: the CPU stays NCHW
# until the small preset is recalibrated in channels_last.
CHANNELS_LAST_DEVICES = ("cuda",)
TUPLE_FIELDS = ("blocks", "crop_aspect_ratio_range", "crop_area_range", "channel_means")


def _closed(default, **constraints):
    return setting(default, closed=True, **constraints)


@dataclasses.dataclass(frozen=True)
class ResnetSettings:
    """Defaults are the reference's. ``closed`` fields keep their default in a closed run
    of the reference preset; the small preset shrinks images and width."""

    # model (spec §2)
    width: int = _closed(64, allowed={"min": 1})    # stem channels = first stage's inner width
    blocks: tuple = _closed((3, 4, 6, 3), allowed={"length": 4, "list_of": "int"})
    num_outputs: int = setting(1001, allowed={"min": 2})   # classes (1000) or classes + 1 (REF: 1001)
    tf_same_max_pool: bool = setting(True)      # REF; False pads 1 px each side (NVIDIA MXNet)
    truncated_normal_init: bool = setting(True)  # v0.7 tunable "truncated norm initialization"
    # v0.7 allows 0 or 0.1 (spec §4); REF 0
    label_smoothing: float = setting(0.0, allowed={"min": 0.0, "max": 1.0}, allowed_closed={"one_of": [0.0, 0.1]})
    # input pipeline (spec §1)
    image_size: int = _closed(224, allowed={"min": 8})
    eval_resize: int = _closed(256, allowed={"min": 8})   # short side before the centre crop
    crop_min_object_covered: float = _closed(0.1)
    crop_aspect_ratio_range: tuple = _closed((0.75, 1.33), allowed={"length": 2})
    crop_area_range: tuple = _closed((0.05, 1.0), allowed={"length": 2})
    crop_max_attempts: int = _closed(100, allowed={"min": 1})
    channel_means: tuple = _closed((123.68, 116.78, 103.94), allowed={"length": 3})
    # throughput only: no effect on the numbers computed
    num_workers: int = setting(8, allowed={"min": 0})          # loader processes per rank
    eval_batch_size: int = setting(250, allowed={"min": 1})    # per rank
    channels_last: bool = setting(True)                        # on CHANNELS_LAST_DEVICES
    # the small generated dataset (small preset only)
    synth_classes: int = setting(10, allowed={"min": 2})
    synth_train_per_class: int = setting(300, allowed={"min": 1})
    synth_val_per_class: int = setting(50, allowed={"min": 1})
    synth_min_size: int = setting(64, allowed={"min": 8})
    synth_max_size: int = setting(160, allowed={"min": 8})

    def __post_init__(self):
        for name in TUPLE_FIELDS:  # YAML gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclasses.dataclass
class ResnetState:
    env: Any
    settings: ResnetSettings
    recipe: Any                                 # optim.Recipe
    global_batch_size: int
    model: torch.nn.Module                      # the bare model (evaluation, BN statistics)
    ddp_model: torch.nn.Module                  # what training calls (DDP on several ranks)
    optimizer: torch.optim.Optimizer
    loss_fn: torch.nn.Module
    memory_format: torch.memory_format
    step: int = 0                               # global optimizer steps (the schedule's clock)
    train_index: ImageIndex | None = None
    val_index: ImageIndex | None = None
    sampler: ShardedBatchSampler | None = None
    train_loader: torch.utils.data.DataLoader | None = None
    eval_loader: torch.utils.data.DataLoader | None = None
    schedule: Callable[[int], float] | None = None


class ResnetBenchmark(Benchmark):
    name = "resnet"
    metric = "top-1"
    Settings = ResnetSettings
    State = ResnetState

    # --- before any run ----------------------------------------------------------------
    def prepare(self, source, data_dir, settings):
        summary = prepare_imagenet(Path(source), Path(data_dir))
        print(f"resnet: {summary['classes']} classes, {summary['train']} train and {summary['val']} val "
              f"images, {len(summary['reencoded'])} re-encoded")

    def generate_small(self, data_dir, settings, seed=0):
        raw = Path(data_dir) / "raw"
        write_raw_imagenet(raw, settings.synth_classes, settings.synth_train_per_class,
                           settings.synth_val_per_class, settings.synth_min_size, settings.synth_max_size, seed)
        prepare_imagenet(raw, Path(data_dir))
        shutil.rmtree(raw)  # the prepared tree holds hard links or copies

    # --- one run -----------------------------------------------------------------------
    def init(self, preset, env, artifacts):
        s, hp = preset.settings, preset.hparams
        recipe = recipe_from_hparams(hp)
        batch = int(hp["global_batch_size"])
        model = ResNet(s.num_outputs, s.blocks, s.width, s.tf_same_max_pool, s.truncated_normal_init)
        faster = s.channels_last and env.device.type in CHANNELS_LAST_DEVICES
        memory_format = torch.channels_last if faster else torch.contiguous_format
        model = model.to(env.device, memory_format=memory_format)
        return ResnetState(
            env=env, settings=s, recipe=recipe, global_batch_size=batch, model=model,
            ddp_model=env.wrap_model(model), optimizer=recipe.build_optimizer(model),
            loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=s.label_smoothing), memory_format=memory_format)

    def open_data(self, state, dataset):
        s, env = state.settings, state.env
        root = Path(dataset.root)
        state.train_index, state.val_index = ImageIndex(root, "train"), ImageIndex(root, "val")
        label_offset = s.num_outputs - len(state.train_index.classes)
        if label_offset not in (0, 1):
            raise ValueError(f"settings.num_outputs = {s.num_outputs}: the data has {len(state.train_index.classes)} "
                             f"classes; the rules allow that many outputs or one more")
        state.sampler = ShardedBatchSampler(len(state.train_index), state.global_batch_size, env.rank,
                                            env.world_size, env.seed)
        loader_options = dict(num_workers=s.num_workers, persistent_workers=s.num_workers > 0,
                              pin_memory=env.device.type == "cuda")
        state.train_loader = torch.utils.data.DataLoader(
            TrainImages(state.train_index, s, env.seed, label_offset), batch_sampler=state.sampler, **loader_options)
        state.eval_loader = torch.utils.data.DataLoader(
            EvalImages(state.val_index, s, label_offset, env.shard(len(state.val_index))),
            batch_size=s.eval_batch_size, **loader_options)
        state.schedule = state.recipe.schedule_for(len(state.train_index), state.global_batch_size)

    def logged_data_keys(self, state):
        return {"train_samples": len(state.train_index), "eval_samples": len(state.val_index)}

    def train_epoch(self, state, epoch, progress):
        state.ddp_model.train()
        state.sampler.set_epoch(epoch)
        loss_sum, count = torch.zeros((), device=state.env.device), 0
        total = len(state.sampler) * (state.global_batch_size // state.env.world_size)
        for batch in state.train_loader:
            loss = self.train_step(state, batch)
            loss_sum += loss * len(batch[1])
            count += len(batch[1])
            progress(count, total, loss)
        return TrainStats(num_samples=count, loss=float(loss_sum) / max(count, 1))

    def train_step(self, state, batch):
        """One SGD/LARS step on (images (b, 3, H, W) float, labels (b,) int64); returns the
        mean cross-entropy as a device tensor."""
        env, model, optimizer = state.env, state.ddp_model, state.optimizer
        images, labels = batch
        images = images.to(env.device, non_blocking=True, memory_format=state.memory_format)
        labels = labels.to(env.device, non_blocking=True)
        lr = state.schedule(state.step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = state.loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.step += 1
        return loss.detach()

    def example_batch(self, state, split="train"):
        """Normal noise of the pipeline's output shape and random labels: one rank's share of
        a global batch ("train"), or one evaluation batch ("eval"). The learning-rate
        schedule's length is the data's, so a training step needs the data open first."""
        if split == "train" and state.schedule is None:
            raise ExampleNeedsData("ResNet's schedule is made in open_data (its steps per epoch are the data's)")
        s, env = state.settings, state.env
        size = len(env.shard(state.global_batch_size)) if split == "train" else s.eval_batch_size
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(size, 3, s.image_size, s.image_size, generator=generator)
        labels = torch.randint(0, s.num_outputs, (size,), generator=generator)
        return ExampleBatch((images, labels), size)

    @torch.no_grad()
    def eval_step(self, state, batch):
        """Logits, shape (b, num_outputs)."""
        state.model.eval()
        images = batch[0].to(state.env.device, memory_format=state.memory_format)
        return state.model(images)

    def close(self, state):
        for loader in (state.train_loader, state.eval_loader):
            iterator = getattr(loader, "_iterator", None)  # persistent workers live here
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()

    @torch.no_grad()
    def evaluate(self, state, epoch):
        env, model = state.env, state.model  # not the DDP wrapper: shards differ in batch count
        if env.is_distributed:  # batch-norm statistics are per rank; evaluate with their mean
            for buffer in (b for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var"))):
                buffer.copy_(env.all_reduce_sum(buffer.clone()) / env.world_size)
        model.eval()
        correct, count = torch.zeros((), dtype=torch.int64, device=env.device), 0
        for images, labels in state.eval_loader:
            images = images.to(env.device, non_blocking=True, memory_format=state.memory_format)
            correct += top1_correct(model(images), labels.to(env.device, non_blocking=True))
            count += len(labels)
        totals = env.all_reduce_sum(torch.stack([correct.double(), torch.tensor(float(count), device=env.device,
                                                                                 dtype=torch.float64)]))
        if int(totals[1]) != len(state.val_index):
            raise RuntimeError(f"evaluated {int(totals[1])} of {len(state.val_index)} validation images")
        return EvalResult({"top1_accuracy": float(totals[0]) / len(state.val_index)})

    def world_size_problems(self, preset, world_size):
        span, batch = preset.hparams.get("model_bn_span"), int(preset.hparams["global_batch_size"])
        if span is not None and span != batch // world_size:
            return [("hparams.model_bn_span", span, f"batch norm here spans one rank's batch: "
                     f"global_batch_size / {world_size} processes = {batch // world_size}")]
        return []

    def logged_hparams(self, preset, env):
        if "model_bn_span" in preset.hparams:
            return {}
        # BN statistics are computed over one rank's batch (no synchronised BN).
        return {"model_bn_span": int(preset.hparams["global_batch_size"]) // env.world_size}


BENCHMARK = ResnetBenchmark()
