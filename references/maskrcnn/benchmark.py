"""Mask R-CNN R-50-FPN on COCO 2017: the harness plug-in (spec: shared/spec/maskrcnn.md)."""
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
from references.maskrcnn import detectron_weights
from references.maskrcnn.data import EvalImages, GroupedShardSampler, TrainImages, pad_batch, resized_size
from references.maskrcnn.metric import coco_quality, detections_of
from references.maskrcnn.model import MaskRCNN, ModelSize
from references.maskrcnn.optim import WARMUP_METHODS, Recipe

R50_MD5 = "b19105fdd7baafb40480251377de18f2"   # mlcommons/training object_detection/weights.md5


def _closed(default, **constraints):
    return setting(default, closed=True, **constraints)


@dataclasses.dataclass(frozen=True)
class MaskrcnnSettings:
    """Defaults are the reference's (spec §2); ``closed`` fields keep them in a closed run of
    the reference preset. Image sizes, LR schedule and proposal count are hparams (logged
    MLPerf keys); these are the sizes the small preset shrinks besides them."""

    num_classes: int = _closed(81, allowed={"min": 2})          # with background
    width: int = _closed(64, allowed={"min": 1})                # ResNet res2 inner width
    fpn_channels: int = _closed(256, allowed={"min": 1})
    fc_dim: int = _closed(1024, allowed={"min": 1})
    anchor_sizes: tuple = _closed((32, 64, 128, 256, 512), allowed={"length": 5, "list_of": "number"})
    rpn_pre_nms_top_n_train: int = _closed(2000, allowed={"min": 1})
    rpn_pre_nms_top_n_test: int = _closed(1000, allowed={"min": 1})
    rpn_post_nms_top_n_test: int = _closed(1000, allowed={"min": 1})
    roi_batch_size_per_image: int = _closed(512, allowed={"min": 1})
    warmup_method: str = setting("linear", allowed={"one_of": list(WARMUP_METHODS)})
    # the pretrained backbone under artifacts/ (spec §2: Detectron's R-50.pkl)
    backbone_weights: str = setting("R-50.pkl")
    # throughput only
    num_workers: int = setting(4, allowed={"min": 0})
    eval_batch_size: int = setting(2, allowed={"min": 1})      # images per forward, per rank
    # the small generated dataset and its pretrained backbone (small presets only)
    synth_classes: int = setting(4, allowed={"min": 1})
    synth_train_images: int = setting(1000, allowed={"min": 1})
    synth_val_images: int = setting(200, allowed={"min": 1})
    synth_min_side: int = setting(160, allowed={"min": 16})
    synth_max_side: int = setting(320, allowed={"min": 16})
    pretrain_steps: int = setting(300, allowed={"min": 0})     # 0: untrained stand-in weights
    # whole train images whose statistics become the folded BatchNorm's (0: the crops')
    bn_calibration_images: int = setting(64, allowed={"min": 0})
    # rms the saved body's C2..C5 get on whole train images (0: as pretrained); see backbone_rms
    backbone_feature_rms: float = setting(0.0, allowed={"min": 0})

    def __post_init__(self):
        object.__setattr__(self, "anchor_sizes", tuple(self.anchor_sizes))

    def model_size(self, candidates: int) -> ModelSize:
        return ModelSize(num_classes=self.num_classes, width=self.width, fpn_channels=self.fpn_channels,
                         fc_dim=self.fc_dim, anchor_sizes=self.anchor_sizes,
                         rpn_pre_nms_top_n_train=self.rpn_pre_nms_top_n_train,
                         rpn_pre_nms_top_n_test=self.rpn_pre_nms_top_n_test,
                         rpn_post_nms_top_n_train=candidates, rpn_post_nms_top_n_test=self.rpn_post_nms_top_n_test,
                         roi_batch_size_per_image=self.roi_batch_size_per_image)


def calibrate_batchnorm(features: torch.nn.Module, data_dir: Path, num_images: int, seed: int,
                        batch_size: int = 16, side: int = 256) -> None:
    """Re-estimates every BatchNorm's running mean and variance of ``features`` over
    ``num_images`` whole train images (BGR×255, resized to ``side``², ``batch_size`` a
    forward, the plain average over the batches).

    Why: the statistics left by pretraining on 64-px object crops do not fit whole images,
    whose background colour varies from image to image; the folded FrozenBN body then
    amplified that variation (res4 std 0.5 on one image, 230 on another), and at the rules'
    LR 0.02 the first steps blew up the ROI classifier's logits (loss NaN within 15
    iterations for seeds 2 and 3). Batches of several images put the between-image variance
    into the statistics, as REF's ImageNet statistics hold for the images it sees. Untimed
    (``generate_small``).
    """
    for module in features.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None   # cumulative average over the calibration batches
    features.train()
    with torch.no_grad():
        for batch in _whole_images(data_dir, num_images, seed, batch_size, side):
            features(batch)


def _whole_images(data_dir: Path, num_images: int, seed: int, batch_size: int, side: int):
    """Batches (float [b, 3, side, side], BGR×255 normalised) of ``num_images`` train images
    drawn by ``seed``."""
    from references.coco.dataset import load_image
    from references.maskrcnn.data import normalise, resize_image

    index = CocoIndex(data_dir, "train", skip_empty=False, skip_crowd=True)
    order = torch.randperm(len(index), generator=torch.Generator().manual_seed(seed)).tolist()[:num_images]
    for start in range(0, len(order), batch_size):
        yield torch.stack([normalise(resize_image(load_image(index.record(i).path), (side, side)))
                           for i in order[start:start + batch_size]])


@torch.no_grad()
def backbone_rms(body: torch.nn.Module, data_dir: Path, num_images: int = 32, seed: int = 0,
                 batch_size: int = 16, side: int = 256) -> float:
    """The rms of the FPN's inputs: √(mean over C2..C5 of each map's mean square), eval mode
    (BN running statistics, as the folded FrozenBN computes), on ``num_images`` whole train
    images at ``side``². Each stage counts equally, whatever its number of values."""
    body.eval()
    squares = torch.zeros(4)
    batches = 0
    for batch in _whole_images(data_dir, num_images, seed, batch_size, side):
        x = body.maxpool(body.relu(body.bn1(body.conv1(batch))))
        for k, stage in enumerate((body.layer1, body.layer2, body.layer3, body.layer4)):
            x = stage(x)
            squares[k] += x.pow(2).mean()
        batches += 1
    return float((squares / batches).mean().sqrt())


@dataclasses.dataclass
class MaskrcnnState:
    env: Any
    settings: MaskrcnnSettings
    recipe: Recipe
    global_batch_size: int
    min_size: int
    max_size: int
    model: MaskRCNN                             # the bare model (evaluation)
    ddp_model: torch.nn.Module                  # what training calls
    optimizer: torch.optim.Optimizer
    step: int = 0                               # global iterations (the schedule's clock)
    train_index: CocoIndex | None = None
    val_index: CocoIndex | None = None
    sampler: GroupedShardSampler | None = None
    train_loader: torch.utils.data.DataLoader | None = None
    eval_loader: torch.utils.data.DataLoader | None = None


class MaskrcnnBenchmark(Benchmark):
    name = "maskrcnn"
    metric = "BBOX/SEGM AP"
    Settings = MaskrcnnSettings
    State = MaskrcnnState

    # --- before any run ----------------------------------------------------------------
    def prepare(self, source, data_dir, settings):
        """COCO 2017 is read as downloaded: check the layout and link it into ``data_dir``."""
        layout.link_into(Path(source), Path(data_dir))

    def generate_small(self, data_dir, settings, seed=0):
        from references.coco.pretrain import object_crops, pretrain_classifier
        from references.coco.resnet_scale import scale_residual_stream
        from references.coco.synthetic import write_coco
        from references.maskrcnn.backbone import resnet_body
        from references.maskrcnn.data import normalise

        s, data_dir = settings, Path(data_dir)
        sides = (s.synth_min_side, s.synth_max_side)
        write_coco(data_dir, num_train=s.synth_train_images, num_val=s.synth_val_images,
                   num_classes=s.synth_classes, seed=seed, image_size=(sides, sides))
        # The reference starts from ImageNet weights; the small preset from a body of its own
        # width pretrained (BatchNorm, untimed) on crops of the generated shapes, folded and
        # written as Detectron's R-50.pkl so the real conversion and FrozenBN path run.
        torch.manual_seed(seed)
        body = resnet_body(s.width, norm_layer=torch.nn.BatchNorm2d)
        features = torch.nn.Sequential(body.conv1, body.bn1, body.relu, body.maxpool,
                                       body.layer1, body.layer2, body.layer3, body.layer4)
        to_input = lambda images: torch.stack([normalise(i) for i in images])  # noqa: E731
        if s.pretrain_steps > 0:
            pretrain_classifier(features, s.width * 32, data_dir, steps=s.pretrain_steps, seed=seed,
                                normalize=to_input)
        else:  # stand-in weights: random convs with BN statistics of real crops, so no blow-up
            crops, _, _ = object_crops(data_dir, crop_size=64, max_crops=32, seed=seed)
            for module in body.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.reset_running_stats()
                    module.momentum = None   # a plain average over the calibration pass
            with torch.no_grad():
                features.train()(to_input(crops))
        if s.bn_calibration_images > 0:
            calibrate_batchnorm(features, data_dir, s.bn_calibration_images, seed)
        body.eval()
        if s.backbone_feature_rms > 0:
            # the ROI box head diverged at the warmup's LR on FPN inputs at rms ~1.8
            # (README section 5): scale the whole stream, the body's function up to the factor
            scale_residual_stream(body, s.backbone_feature_rms / backbone_rms(body, data_dir, seed=seed), stages=4)
        detectron_weights.save_from(body, data_dir / "artifacts" / s.backbone_weights)

    def required_artifacts(self, preset):
        return {preset.settings.backbone_weights:
                f"Detectron's ImageNetPretrained/MSRA/R-50.pkl (MD5 {R50_MD5}); small presets make theirs in generate_small"}

    # --- one run -----------------------------------------------------------------------
    def init(self, preset, env, artifacts):
        s, hp = preset.settings, preset.hparams
        model = MaskRCNN(s.model_size(int(hp["num_image_candidates"])))
        weights = artifacts.path(s.backbone_weights, "the pretrained backbone (Detectron's R-50.pkl format)")
        try:
            detectron_weights.load_into(model.backbone.body, weights)
        except detectron_weights.WeightsFileError as error:
            raise UsageError(str(error)) from None
        model = model.to(env.device)
        recipe = Recipe.from_hparams(hp, s.warmup_method)
        return MaskrcnnState(env=env, settings=s, recipe=recipe, global_batch_size=int(hp["global_batch_size"]),
                             min_size=int(hp["min_image_size"]), max_size=int(hp["max_image_size"]),
                             model=model, ddp_model=env.wrap_model(model), optimizer=recipe.build_optimizer(model))

    def open_data(self, state, dataset):
        s, env = state.settings, state.env
        root = Path(dataset.root)
        layout.require(root)
        # Train: images without usable boxes dropped, crowd objects out of the targets
        # (spec §1); test: every image.
        state.train_index = CocoIndex(root, "train", skip_empty=True, skip_crowd=True, skip_degenerate=True)
        state.val_index = CocoIndex(root, "val", skip_empty=False, skip_crowd=True)
        layout.require_classes(s.num_classes, state.train_index.num_classes, root)
        portrait = []
        for i in range(len(state.train_index)):
            record = state.train_index.record(i)
            portrait.append(record.height >= record.width)
        state.sampler = GroupedShardSampler(portrait, state.global_batch_size, env.rank, env.world_size, env.seed)
        options = dict(num_workers=s.num_workers, persistent_workers=s.num_workers > 0,
                       pin_memory=env.device.type == "cuda")
        state.train_loader = torch.utils.data.DataLoader(
            TrainImages(state.train_index, state.min_size, state.max_size), batch_sampler=state.sampler,
            collate_fn=pad_batch, **options)
        state.eval_loader = torch.utils.data.DataLoader(
            EvalImages(state.val_index, state.min_size, state.max_size, env.shard(len(state.val_index))),
            batch_size=s.eval_batch_size, collate_fn=pad_batch, **options)

    def logged_data_keys(self, state):
        return {"train_samples": len(state.train_index), "eval_samples": len(state.val_index)}

    def train_epoch(self, state, epoch, progress):
        state.ddp_model.train()
        state.sampler.set_epoch(epoch)
        loss_sum, count = torch.zeros((), device=state.env.device), 0
        total = len(state.sampler) * state.sampler.local_batch
        for batch in state.train_loader:
            loss = self.train_step(state, batch)
            loss_sum += loss * len(batch[1])
            count += len(batch[1])
            progress(count, total, loss)
        return TrainStats(num_samples=count, loss=float(loss_sum) / max(count, 1))

    def train_step(self, state, batch):
        """One SGD step on (images (b, 3, H, W), sizes [(h, w)], targets); returns the sum of
        the five losses as a device tensor."""
        device = state.env.device
        images, sizes, targets = batch
        targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device), "polygons": t["polygons"]}
                   for t in targets]
        state.recipe.set_lr(state.optimizer, state.step)
        state.ddp_model.train()
        losses = state.ddp_model(images.to(device, non_blocking=True), sizes, targets)
        loss = sum(losses.values())
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.step += 1
        return loss.detach()

    def example_batch(self, state, split="train"):
        """Noise images of the pipeline's output size with two boxes each (train: one rank's
        share of a global batch; eval: one evaluation batch)."""
        generator = torch.Generator().manual_seed(0)
        h, w = resized_size(480, 640, state.min_size, state.max_size)
        if split == "train":
            count = state.global_batch_size // state.env.world_size
            box = torch.tensor([[w * 0.1, h * 0.1, w * 0.5, h * 0.6], [w * 0.4, h * 0.3, w * 0.9, h * 0.9]])
            polygons = [[[float(x1), float(y1), float(x2), float(y1), float(x2), float(y2), float(x1), float(y2)]]
                        for x1, y1, x2, y2 in box.tolist()]
            items = [(torch.randn(3, h, w, generator=generator) * 50,
                      {"boxes": box.clone(), "labels": torch.tensor([1, state.settings.num_classes - 1]),
                       "polygons": polygons}) for _ in range(count)]
        else:
            count = state.settings.eval_batch_size
            items = [(torch.randn(3, h, w, generator=generator) * 50, {"image_id": j, "original": (h, w)})
                     for j in range(count)]
        return ExampleBatch(pad_batch(items), count)

    @torch.no_grad()
    def eval_step(self, state, batch):
        """Detections with pasted, thresholded, RLE-encoded masks (COCO result dicts)."""
        state.model.eval()
        images, sizes, infos = batch
        outputs = state.model(images.to(state.env.device), sizes)
        return detections_of(outputs, sizes, infos, list(range(state.settings.num_classes)))

    @torch.no_grad()
    def evaluate(self, state, epoch):
        env, model = state.env, state.model
        model.eval()
        local, count = [], 0
        for images, sizes, infos in state.eval_loader:
            outputs = model(images.to(env.device, non_blocking=True), sizes)
            local += detections_of(outputs, sizes, infos, state.val_index.category_of)
            count += len(infos)
        evaluated = int(env.all_reduce_sum(torch.tensor(float(count), device=env.device)))
        if evaluated != len(state.val_index):
            raise RuntimeError(f"evaluated {evaluated} of {len(state.val_index)} validation images")
        quality = coco_quality(state.val_index.coco, local, env)
        return EvalResult(quality)

    def close(self, state):
        for loader in (state.train_loader, state.eval_loader):
            iterator = getattr(loader, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()

    def logged_hparams(self, preset, env):
        return {}


BENCHMARK = MaskrcnnBenchmark()
