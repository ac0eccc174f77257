"""ResNet input pipeline: crop sampler, TF1 resize, shapes and ranges, determinism,
sharding, and `prepare` on a raw tree with a PNG, a CMYK JPEG and a flat val folder."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from references.resnet.benchmark import ResnetSettings
from references.resnet.data import (EvalImages, ImageIndex, ShardedBatchSampler, TrainImages, eval_resized_size,
                                    resize_bilinear, sample_distorted_crop, source_positions)
from references.resnet.prepare import prepare_imagenet, val_labels
from references.resnet.synthetic import write_raw_imagenet

TINY = ResnetSettings(image_size=32, eval_resize=37, width=4, blocks=(1, 1, 1, 1), num_outputs=5, num_workers=0,
                      synth_classes=4, synth_train_per_class=6, synth_val_per_class=3,
                      synth_min_size=40, synth_max_size=64)


@pytest.fixture(scope="module")
def raw_and_prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    write_raw_imagenet(root / "raw", TINY.synth_classes, TINY.synth_train_per_class, TINY.synth_val_per_class,
                       TINY.synth_min_size, TINY.synth_max_size, seed=0)
    summary = prepare_imagenet(root / "raw", root / "prepared")
    return root / "raw", root / "prepared", summary


def test_crop_sampler_keeps_the_reference_constraints():
    rng = np.random.default_rng(0)
    for height, width in [(375, 500), (500, 333), (64, 64), (97, 160)]:
        for _ in range(300):
            top, left, h, w = sample_distorted_crop(height, width, rng)
            assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
            assert h * w >= 0.1 * height * width - 1e-6        # min_object_covered beats area 0.05
            if (h, w) != (height, width):
                assert 0.75 - 0.02 <= w / h <= 1.33 + 0.02      # aspect up to rounding


def test_crop_sampler_falls_back_to_the_whole_image():
    # a 1-pixel-high strip: no crop with aspect 3:4..4:3 covers 10% of it
    assert sample_distorted_crop(1, 200, np.random.default_rng(0)) == (0, 0, 1, 200)


def test_resize_is_tf1_legacy_bilinear():
    image = torch.tensor([[[0, 10, 20, 30]]], dtype=torch.uint8).expand(3, 1, 4)
    # downsampling 4 -> 2 samples source pixels 0 and 2 (half-pixel centres would give 5, 25)
    assert resize_bilinear(image, 1, 2)[0, 0].tolist() == [0.0, 20.0]
    # upsampling 4 -> 8: source = x / 2, the last sample clamps to the edge
    assert resize_bilinear(image, 1, 8)[0, 0].tolist() == [0, 5, 10, 15, 20, 25, 30, 30]
    assert source_positions(37, 224)[-1] < 37 and source_positions(4, 2).tolist() == [0.0, 2.0]
    # against the same arithmetic written per pixel, on a random image
    image = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    out = resize_bilinear(image, 3, 4)
    for y in range(3):
        for x in range(4):
            sy, sx = y * 5 / 3, x * 7 / 4
            y0, x0 = int(sy), int(sx)
            y1, x1 = min(y0 + 1, 4), min(x0 + 1, 6)
            p = image.float()
            top = p[:, y0, x0] + (p[:, y0, x1] - p[:, y0, x0]) * (sx - x0)
            bottom = p[:, y1, x0] + (p[:, y1, x1] - p[:, y1, x0]) * (sx - x0)
            assert torch.allclose(out[:, y, x], top + (bottom - top) * (sy - y0), atol=1e-3)


def test_eval_size_truncates_like_tf():
    assert eval_resized_size(375, 500, 256) == (256, 341)
    assert eval_resized_size(500, 375, 256) == (341, 256)
    assert eval_resized_size(64, 160, 73) == (73, 182)


def test_prepare_sorts_val_and_reencodes_what_decoders_trip_on(raw_and_prepared):
    raw, prepared, summary = raw_and_prepared
    assert summary["train"] == 24 and summary["val"] == 12 and summary["classes"] == 4
    kinds = sorted(summary["reencoded"].values())
    assert kinds == ["re-encoded JPEG CMYK", "re-encoded JPEG CMYK", "re-encoded PNG RGB"]
    labels = val_labels(raw, raw / "val")
    for line in (prepared / "val.txt").read_text().split():
        wnid, name = line.split("/")
        assert labels[name[:-len(".JPEG")]] == wnid
    for path in (prepared / "train").rglob("*.JPEG"):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode in ("RGB", "L")
    assert json.loads((prepared / "prepare_summary.json").read_text())["val"] == 12


def test_devkit_ground_truth_labels(tmp_path):
    from scipy.io import savemat
    (tmp_path / "val").mkdir()
    for n in (1, 2, 3):
        Image.new("RGB", (8, 8)).save(tmp_path / "val" / f"ILSVRC2012_val_{n:08d}.JPEG")
    devkit = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    synsets = np.array([(1, "n02"), (2, "n01")], dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O")])
    savemat(devkit / "meta.mat", {"synsets": synsets})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("2\n1\n2\n")
    assert val_labels(tmp_path, tmp_path / "val") == {
        "ILSVRC2012_val_00000001": "n01", "ILSVRC2012_val_00000002": "n02", "ILSVRC2012_val_00000003": "n01"}


def test_raw_png_and_cmyk_decode_as_rgb(raw_and_prepared):
    raw, _, _ = raw_and_prepared
    index = ImageIndex(raw, "train")   # no index files: scans the folders
    for i in range(len(index)):
        assert index.read(i).shape[0] == 3


def test_train_and_eval_samples(raw_and_prepared):
    _, prepared, _ = raw_and_prepared
    index = ImageIndex(prepared, "train")
    assert index.classes == sorted(index.classes) and len(index) == 24
    train = TrainImages(index, TINY, seed=5, label_offset=1)
    pixels, label = train[(3, 1)]
    assert pixels.shape == (3, 32, 32) and pixels.dtype == torch.float32
    means = torch.tensor(TINY.channel_means).view(3, 1, 1)
    assert (pixels >= -means - 1e-3).all() and (pixels <= 255 - means + 1e-3).all()
    assert label == index.labels[3] + 1
    assert torch.equal(pixels, TrainImages(index, TINY, seed=5, label_offset=1)[(3, 1)][0])
    assert not torch.equal(pixels, train[(3, 2)][0])            # a new epoch, a new crop
    assert not torch.equal(pixels, TrainImages(index, TINY, 6, 1)[(3, 1)][0])
    val = ImageIndex(prepared, "val")
    evaluation = EvalImages(val, TINY, label_offset=0, indices=range(len(val)))
    pixels, label = evaluation[2]
    assert pixels.shape == (3, 32, 32) and label == val.labels[2]
    image = val.read(2)
    height, width = eval_resized_size(image.shape[1], image.shape[2], 37)
    full = resize_bilinear(image, height, width) - means
    top, left = (height - 32) // 2, (width - 32) // 2
    assert torch.allclose(pixels, full[:, top:top + 32, left:left + 32], atol=1e-3)


def test_sharded_batches_cover_every_sample_once_per_epoch():
    num_samples, batch = 103, 16
    per_rank = [list(ShardedBatchSampler(num_samples, batch, rank, 4, seed=1)) for rank in range(4)]
    assert all(len(steps) == 7 for steps in per_rank)              # 6 full batches + 7 // 4 per rank
    seen = [i for steps in per_rank for step in steps for i, epoch in step]
    assert len(seen) == len(set(seen)) == 96 + 4
    single = [i for step in ShardedBatchSampler(num_samples, batch, 0, 1, seed=1) for i, _ in step]
    assert sorted(single) == list(range(num_samples))
    assert single[:16] == [i for rank in range(4) for i, _ in per_rank[rank][0]]  # same global batches
    sampler = ShardedBatchSampler(num_samples, batch, 0, 1, seed=1)
    sampler.set_epoch(2)
    assert [i for step in sampler for i, _ in step] != single


def test_loader_workers_do_not_change_the_batches(raw_and_prepared):
    _, prepared, _ = raw_and_prepared
    train = TrainImages(ImageIndex(prepared, "train"), TINY, seed=2, label_offset=0)

    def first_batches(num_workers):
        sampler = ShardedBatchSampler(len(train), 8, rank=0, world_size=1, seed=2)
        loader = torch.utils.data.DataLoader(train, batch_sampler=sampler, num_workers=num_workers)
        return [images for images, _ in loader][:2]

    assert all(torch.equal(a, b) for a, b in zip(first_batches(0), first_batches(2)))
