"""references/coco: the generated data is in the real COCO 2017 layout, and the reader applies
the references' filters and category mapping to it."""
import json

import numpy as np
import pytest
import torch
from coco_fixtures import GENERATE
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from references.coco import layout, synthetic
from references.coco.dataset import CocoFormatError, CocoIndex, load_image


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return synthetic.write_coco(tmp_path_factory.mktemp("coco"), **GENERATE)


def annotations(root, split):
    return json.loads(layout.annotation_path(root, split).read_text())


def test_the_writer_produces_the_real_layout_readable_by_pycocotools(root):
    assert layout.missing(root) == []
    for split, count in (("train", GENERATE["num_train"]), ("val", GENERATE["num_val"])):
        gt = COCO(str(layout.annotation_path(root, split)))
        assert len(gt.getImgIds()) == count
        for image in gt.loadImgs(gt.getImgIds()):
            assert image["file_name"] == f"{image['id']:012d}.jpg"
            pixels = load_image(layout.image_dir(root, split) / image["file_name"])
            assert pixels.dtype == torch.uint8 and pixels.shape == (3, image["height"], image["width"])
        anns = gt.loadAnns(gt.getAnnIds())
        for ann in anns:
            # the stored area is the area of the segmentation's mask, as in the real files
            assert mask_utils.area(gt.annToRLE(ann)) == ann["area"] > 0
            x, y, w, h = ann["bbox"]
            image = gt.imgs[ann["image_id"]]
            assert 0 <= x and 0 <= y and x + w <= image["width"] and y + h <= image["height"]
        crowd = [a for a in anns if a["iscrowd"]]
        assert crowd and all(isinstance(a["segmentation"]["counts"], list) for a in crowd)  # uncompressed RLE
        assert all(isinstance(a["segmentation"], list) for a in anns if not a["iscrowd"])
        assert len(set(gt.getImgIds()) - {a["image_id"] for a in anns}) >= 1  # images without annotations
    assert sorted(gt.getCatIds()) == [1, 5, 7, 11]  # non-contiguous ids
    train, val = (set(COCO(str(layout.annotation_path(root, s))).getImgIds()) for s in ("train", "val"))
    assert not train & val  # image ids are unique across splits, as in the real set


def test_objects_never_share_pixels_so_polygons_are_the_visible_outlines(root):
    gt = COCO(str(layout.annotation_path(root, "val")))
    for image_id in gt.getImgIds():
        masks = [gt.annToMask(a) for a in gt.loadAnns(gt.getAnnIds(imgIds=image_id))]
        if masks:
            assert np.sum(masks, axis=0).max() <= 1


def test_generation_is_deterministic(root, tmp_path):
    again = synthetic.write_coco(tmp_path, **{**GENERATE, "num_train": 0})
    assert annotations(again, "val") == annotations(root, "val")
    name = annotations(root, "val")["images"][3]["file_name"]
    assert (layout.image_dir(again, "val") / name).read_bytes() == (layout.image_dir(root, "val") / name).read_bytes()


def test_one_greyscale_jpeg_is_read_as_rgb(root):
    from PIL import Image

    modes = [Image.open(p).mode for p in sorted(layout.image_dir(root, "train").iterdir())]
    assert modes.count("L") == 1
    grey = sorted(layout.image_dir(root, "train").iterdir())[modes.index("L")]
    pixels = load_image(grey)
    assert pixels.shape[0] == 3 and torch.equal(pixels[0], pixels[1])


def test_filters_and_category_mapping(root):
    data = annotations(root, "train")
    with_objects = {a["image_id"] for a in data["annotations"]}
    everything = CocoIndex(root, "train", skip_empty=False)
    kept = CocoIndex(root, "train", skip_empty=True, skip_crowd=False)
    assert everything.image_ids == sorted(i["id"] for i in data["images"])
    assert kept.image_ids == sorted(with_objects) and len(kept) < len(everything)
    empty = everything.record(everything.image_ids.index(min(set(everything.image_ids) - with_objects)))
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,) and empty.polygons == []
    assert kept.label_of == {1: 1, 5: 2, 7: 3, 11: 4} and kept.category_of == [0, 1, 5, 7, 11]
    assert kept.num_classes == 4
    by_image = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    no_crowd = CocoIndex(root, "train", skip_empty=True)
    num_crowd = 0
    for i, image_id in enumerate(kept.image_ids):
        record, anns = kept.record(i), by_image[image_id]
        assert record.image_id == image_id and record.path.endswith(f"train2017/{image_id:012d}.jpg")
        assert record.boxes.dtype == torch.float32 and record.labels.dtype == torch.int64
        expected = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32)
        expected[:, 2:] += expected[:, :2]
        assert torch.equal(record.boxes, expected)
        assert record.labels.tolist() == [kept.label_of[a["category_id"]] for a in anns]
        assert record.iscrowd.tolist() == [bool(a["iscrowd"]) for a in anns]
        assert [bool(p) for p in record.polygons] == [not a["iscrowd"] for a in anns]
        assert [r is not None for r in record.rles] == [bool(a["iscrowd"]) for a in anns]
        num_crowd += int(record.iscrowd.sum())
        filtered = no_crowd.record(i)
        assert filtered.num_objects == record.num_objects - int(record.iscrowd.sum())
        assert not filtered.iscrowd.any()
    assert num_crowd >= 1


def test_degenerate_only_images_are_dropped_when_asked(tmp_path):
    data = {"images": [{"id": 7, "file_name": "a.jpg", "height": 10, "width": 10},
                       {"id": 3, "file_name": "b.jpg", "height": 10, "width": 10}],
            "categories": [{"id": 90, "name": "x"}, {"id": 2, "name": "y"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 90, "bbox": [1, 1, 1, 5], "iscrowd": 0},
                            {"id": 2, "image_id": 3, "category_id": 2, "bbox": [1, 1, 3, 5], "iscrowd": 0}]}
    layout.annotation_path(tmp_path, "val").parent.mkdir()
    layout.annotation_path(tmp_path, "val").write_text(json.dumps(data))
    assert CocoIndex(tmp_path, "val", skip_empty=True).image_ids == [3, 7]
    index = CocoIndex(tmp_path, "val", skip_empty=True, skip_degenerate=True)
    assert index.image_ids == [3] and index.category_of == [0, 2, 90]
    assert index.record(0).labels.tolist() == [1]


def test_bad_input_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(CocoFormatError, match="instances_val2017.json: annotation file not found"):
        CocoIndex(tmp_path, "val", skip_empty=True)
    path = layout.annotation_path(tmp_path, "val")
    path.parent.mkdir()
    path.write_text('{"images": [], "categories": []}')
    with pytest.raises(CocoFormatError, match="'annotations' missing"):
        CocoIndex(tmp_path, "val", skip_empty=True)
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a", "height": 1, "width": 1}],
                                "categories": [{"id": 1}],
                                "annotations": [{"id": 5, "image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1]}]}))
    with pytest.raises(CocoFormatError, match="annotation id 5: category_id 4 is not in 'categories'"):
        CocoIndex(tmp_path, "val", skip_empty=True)
    assert layout.missing(tmp_path) == [str(tmp_path / "train2017"), str(tmp_path / "annotations/instances_train2017.json"),
                                        str(tmp_path / "val2017")]


def test_pretraining_learns_the_shapes(root):
    from references.coco.pretrain import pretrain_classifier

    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.BatchNorm2d(16),
                                   torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU())
    history = []
    state = pretrain_classifier(backbone, 32, root, steps=60, seed=0, batch_size=32, crop_size=32, lr=0.1,
                                history=history)
    assert set(state) == set(backbone.state_dict())
    first, last = history[0], history[-1]
    assert last[1] < 0.6 * first[1], history


def test_cmyk_jpeg_and_png_under_a_jpg_name_are_read_as_pil_reads_them(tmp_path):
    from PIL import Image

    pixels = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray(pixels).save(tmp_path / "png.jpg", format="PNG")
    for name in ("cmyk.jpg", "png.jpg"):
        with Image.open(tmp_path / name) as image:
            expected = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(load_image(tmp_path / name), expected)


def test_prepare_links_the_coco_layout_and_names_what_is_missing(tmp_path):
    from mlperf_train.errors import UsageError
    from references.coco import layout

    source = tmp_path / "coco"
    for part in ("train2017", "val2017", "annotations"):
        (source / part).mkdir(parents=True)
    (source / "annotations" / "instances_train2017.json").write_text("{}")
    (source / "annotations" / "instances_val2017.json").write_text("{}")
    layout.link_into(source, tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["annotations", "train2017", "val2017"]
    assert (tmp_path / "data" / "train2017").resolve() == (source / "train2017").resolve()

    (source / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(UsageError, match="instances_val2017.json"):
        layout.link_into(source, tmp_path / "again")


def test_open_data_checks_name_the_folder_and_the_rule(tmp_path):
    from mlperf_train.errors import UsageError
    from references.coco import layout

    with pytest.raises(UsageError, match=rf"{tmp_path}: not the COCO 2017 layout; missing .*train2017"):
        layout.require(tmp_path)
    layout.require_classes(81, 80, tmp_path)
    with pytest.raises(UsageError, match=r"the data has 4 categories; settings.num_classes = 81 must be that \+ 1"):
        layout.require_classes(81, 4, tmp_path)
