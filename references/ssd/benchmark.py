"""SSD-ResNet-34 on COCO 2017: the harness plug-in (spec: shared/spec/ssd.md)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.utils.data

from mlperf_train.benchmark import Benchmark, EvalResult, ExampleBatch, TrainStats
from mlperf_train.errors import UsageError
from mlperf_train.settings import setting
from references.coco import layout
from references.coco.dataset import CocoIndex
from references.coco.evaluation import coco_eval, gather_detections
from references.ssd import boxes as box_ops
from references.ssd import synthetic
from references.ssd.data import EvalImages, TrainImages
from references.ssd.loss import ssd_loss
from references.ssd.metric import detect, to_coco
from references.ssd.model import SSD300, load_resnet34_state, resnet34_at_width
from references.ssd.optim import recipe_from_hparams

REFERENCE_BACKBONE = "resnet34-333f7ec4.pth"
BACKBONE_SOURCE = ("torchvision's ImageNet ResNet-34 state dict (https://download.pytorch.org/models/"
                   f"{REFERENCE_BACKBONE}; rules v0.7: the reference checkpoint)")


def _closed(default, **constraints):
    return setting(default, closed=True, **constraints)


@dataclasses.dataclass(frozen=True)
class SsdSettings:
    """Defaults are the reference's. ``closed`` fields keep their default in a closed run
    of the reference preset; the small preset narrows the model and uses generated data."""

    # model (spec §2)
    width: int = _closed(64, allowed={"min": 1})             # ResNet-34 stem channels; others scale with it
    num_classes: int = _closed(81, allowed={"min": 2})       # COCO's 80 + background
    image_size: int = _closed(300, allowed={"one_of": [300]})  # the default boxes are made for 300
    backbone_file: str = _closed(REFERENCE_BACKBONE)         # under the data folder's artifacts/
    # throughput only: no effect on the numbers computed
    num_workers: int = setting(4, allowed={"min": 0})        # loader processes per rank
    eval_batch_size: int = setting(32, allowed={"min": 1})   # per rank
    # the small generated dataset and its pretrained backbone (small preset only)
    synth_classes: int = setting(4, allowed={"min": 1})
    synth_train: int = setting(256, allowed={"min": 1})
    synth_val: int = setting(128, allowed={"min": 1})
    synth_min_size: int = setting(160, allowed={"min": 32})
    synth_max_size: int = setting(320, allowed={"min": 32})
    pretrain_steps: int = setting(400, allowed={"min": 0})
    # rms of the pretrained trunk's 38×38 map on whole train images, set by an exact rescaling
    # of its residual stream (references/coco/resnet_scale.py): Xavier heads need inputs near 1
    backbone_feature_rms: float = setting(0.75, allowed={"min": 0.01})


@dataclasses.dataclass
class SsdState:
    env: Any
    settings: SsdSettings
    recipe: Any                                 # optim.Recipe
    global_batch_size: int
    max_samples: int
    dboxes: torch.Tensor                        # (8732, 4) cxcywh
    model: torch.nn.Module                      # the bare model (evaluation, BN statistics)
    ddp_model: torch.nn.Module                  # what training calls (DDP on several ranks)
    optimizer: torch.optim.Optimizer
    step: int = 0                               # optimizer steps so far (the warmup's clock)
    epoch: int = 1                              # the epoch being trained (the decay's clock)
    train_index: Any = None                     # references.coco.dataset.CocoIndex
    val_index: Any = None
    sampler: torch.utils.data.DistributedSampler | None = None
    train_loader: torch.utils.data.DataLoader | None = None
    eval_loader: torch.utils.data.DataLoader | None = None


class SsdBenchmark(Benchmark):
    name = "ssd"
    metric = "mAP"
    Settings = SsdSettings
    State = SsdState

    # --- before any run ----------------------------------------------------------------
    def prepare(self, source, data_dir, settings):
        layout.link_into(Path(source), Path(data_dir))

    def generate_small(self, data_dir, settings, seed=0):
        synthetic.generate_small(Path(data_dir), settings, seed)

    def required_artifacts(self, preset):
        s = preset.settings
        if s.backbone_file == REFERENCE_BACKBONE:
            return {s.backbone_file: BACKBONE_SOURCE}
        return {s.backbone_file: f"a ResNet-34 at width {s.width} in torchvision's state-dict format "
                                 "(generate_small pretrains it on the generated images)"}

    # --- one run -----------------------------------------------------------------------
    def init(self, preset, env, artifacts):
        s, hp = preset.settings, preset.hparams
        net = resnet34_at_width(s.width)
        path = artifacts.path(s.backbone_file, self.required_artifacts(preset)[s.backbone_file])
        try:
            load_resnet34_state(net, path)
        except ValueError as error:
            raise UsageError(str(error)) from None
        model = SSD300(s.num_classes, s.width, net).to(env.device)   # heads: Xavier, seeded by the engine
        # BN running statistics stay per rank (REF's apex DDP does not broadcast buffers);
        # evaluate() averages them, as the v0.7 reference
        recipe = recipe_from_hparams(hp)
        return SsdState(env=env, settings=s, recipe=recipe, global_batch_size=int(hp["global_batch_size"]),
                        max_samples=int(hp["max_samples"]), dboxes=box_ops.default_boxes(s.image_size),
                        model=model, ddp_model=env.wrap_model(model, broadcast_buffers=False),
                        optimizer=recipe.build_optimizer(model))

    def open_data(self, state, dataset):
        s, env = state.settings, state.env
        root = Path(dataset.root)
        layout.require(root)
        # spec §1: images without annotations are dropped; crowd boxes are ordinary ground truth
        state.train_index = CocoIndex(root, "train", skip_empty=True, skip_crowd=False)
        state.val_index = CocoIndex(root, "val", skip_empty=True, skip_crowd=False)
        layout.require_classes(s.num_classes, state.train_index.num_classes, root)
        train = TrainImages(state.train_index, s.image_size, state.max_samples, state.dboxes)
        state.sampler = torch.utils.data.DistributedSampler(train, num_replicas=env.world_size, rank=env.rank,
                                                            shuffle=True, seed=env.seed, drop_last=False)
        options = dict(num_workers=s.num_workers, persistent_workers=s.num_workers > 0,
                       pin_memory=env.device.type == "cuda")
        state.train_loader = torch.utils.data.DataLoader(
            train, batch_size=state.global_batch_size // env.world_size, sampler=state.sampler, **options)
        state.eval_loader = torch.utils.data.DataLoader(
            EvalImages(state.val_index, s.image_size, env.shard(len(state.val_index.image_ids))),
            batch_size=s.eval_batch_size, **options)

    def logged_data_keys(self, state):
        return {"train_samples": len(state.train_index.image_ids), "eval_samples": len(state.val_index.image_ids)}

    def train_epoch(self, state, epoch, progress):
        state.ddp_model.train()
        state.sampler.set_epoch(epoch)
        state.epoch = epoch
        loss_sum, count = torch.zeros((), device=state.env.device), 0
        total = len(state.sampler)
        for batch in state.train_loader:
            loss = self._step(state, batch, epoch)
            loss_sum += loss * len(batch[0])
            count += len(batch[0])
            progress(count, total, loss)
        return TrainStats(num_samples=count, loss=float(loss_sum) / max(count, 1))

    def train_step(self, state, batch):
        return self._step(state, batch, getattr(state, "epoch", 1))

    def _step(self, state, batch, epoch):
        """One SGD step on (images (b, 3, 300, 300), offsets (b, 8732, 4), labels (b, 8732));
        returns the loss as a device tensor."""
        device = state.env.device
        images, offsets, labels = (t.to(device, non_blocking=True) for t in batch)
        lr = state.recipe.learning_rate(state.step, epoch)
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        locs, scores = state.ddp_model(images)
        loss = ssd_loss(locs, scores, offsets, labels)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.step += 1
        return loss.detach()

    def example_batch(self, state, split="train"):
        """Normal noise of the pipeline's output shape with one box per image ("train": one
        rank's share of a global batch; "eval": one evaluation batch)."""
        s, env = state.settings, state.env
        size = len(env.shard(state.global_batch_size)) if split == "train" else s.eval_batch_size
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(size, 3, s.image_size, s.image_size, generator=generator)
        if split == "eval":
            return ExampleBatch((images,), size)
        targets = [box_ops.encode(torch.tensor([[0.2, 0.2, 0.7, 0.8]]), torch.tensor([1]), state.dboxes)
                   for _ in range(size)]
        return ExampleBatch((images, torch.stack([t[0] for t in targets]), torch.stack([t[1] for t in targets])), size)

    @torch.no_grad()
    def eval_step(self, state, batch):
        """Detections per image: (boxes (k, 4) normalised ltrb, scores (k,), labels (k,))."""
        state.model.eval()
        locs, scores = state.model(batch[0].to(state.env.device))
        return detect(locs, scores, state.dboxes.to(state.env.device))

    @torch.no_grad()
    def evaluate(self, state, epoch):
        env, model = state.env, state.model  # not the DDP wrapper: shards differ in batch count
        if env.is_distributed:  # v0.7 REF: average the per-rank BN statistics before evaluating
            for buffer in (b for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var"))):
                buffer.copy_(env.all_reduce_sum(buffer.clone()) / env.world_size)
        model.eval()
        dboxes = state.dboxes.to(env.device)
        category_of = state.val_index.category_of
        local, count = [], 0
        for images, image_ids, heights, widths in state.eval_loader:
            locs, scores = model(images.to(env.device, non_blocking=True))
            detections = [tuple(t.cpu() for t in d) for d in detect(locs, scores, dboxes)]
            local += to_coco(detections, image_ids.tolist(), heights.tolist(), widths.tolist(), category_of)
            count += len(image_ids)
        total = int(env.all_reduce_sum(torch.tensor(count, dtype=torch.int64)))
        if total != len(state.val_index.image_ids):
            raise RuntimeError(f"evaluated {total} of {len(state.val_index.image_ids)} validation images")
        detections = gather_detections(local, env)
        stats = coco_eval(state.val_index.coco, detections, "bbox")
        return EvalResult({"mAP": float(stats["AP"])})

    def close(self, state):
        for loader in (state.train_loader, state.eval_loader):
            iterator = getattr(loader, "_iterator", None)  # persistent workers live here
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                try:
                    iterator._shutdown_workers()
                except RuntimeError:  # a worker already ended by the same signal: nothing left to end
                    pass

    def world_size_problems(self, preset, world_size):
        span, batch = preset.hparams.get("model_bn_span"), int(preset.hparams["global_batch_size"])
        problems = []   # (the series checks that the batch divides among the processes)
        if span is not None and span != batch // world_size:
            problems.append(("hparams.model_bn_span", span, f"batch norm here spans one rank's batch: "
                             f"global_batch_size / {world_size} processes = {batch // world_size}"))
        return problems

    def logged_hparams(self, preset, env):
        if "model_bn_span" in preset.hparams:
            return {}
        # BN statistics are computed over one rank's batch (no synchronised BN, spec §2)
        return {"model_bn_span": int(preset.hparams["global_batch_size"]) // env.world_size}


BENCHMARK = SsdBenchmark()
