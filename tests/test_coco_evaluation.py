"""references/coco/evaluation.py: a hand-made case with a known AP, the 12 statistics equal to
pycocotools' on the same detections (crowd regions included, bbox and segm), detections
gathered across 2 gloo processes, and the mask RLE round trip."""
import contextlib
import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from coco_fixtures import GENERATE, noisy_detections
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from references.coco import layout, synthetic
from references.coco.evaluation import STAT_NAMES, coco_eval, detections_for_image, encode_masks, gather_detections

WORKER = Path(__file__).resolve().parent / "coco_gather_worker.py"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return synthetic.write_coco(tmp_path_factory.mktemp("coco"), **{**GENERATE, "num_train": 0})


def pycocotools_stats(annotation_file, detections, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotation_file))
        evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(detections)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STAT_NAMES, evaluator.stats.tolist()))


def hand_made_gt():
    return {"images": [{"id": 1, "height": 100, "width": 100, "file_name": "1.jpg"},
                       {"id": 2, "height": 100, "width": 100, "file_name": "2.jpg"}],
            "categories": [{"id": 3, "name": "a"}, {"id": 8, "name": "b"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0,
                 "segmentation": [[10, 10, 50, 10, 50, 50, 10, 50]]},
                {"id": 2, "image_id": 2, "category_id": 3, "bbox": [50, 50, 40, 40], "area": 1600, "iscrowd": 0,
                 "segmentation": [[50, 50, 90, 50, 90, 90, 50, 90]]},
                # a crowd region: a detection inside it is neither true nor false positive
                {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 30, 30], "area": 900, "iscrowd": 1,
                 "segmentation": {"counts": [0, 30, 70] * 30 + [7000], "size": [100, 100]}}]}


def test_a_hand_made_case_has_its_known_average_precision():
    gt = hand_made_gt()
    detections = [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "score": 0.9},  # exact: TP
                  {"image_id": 2, "category_id": 3, "bbox": [5, 5, 20, 20], "score": 0.95},   # on the crowd: ignored
                  {"image_id": 1, "category_id": 3, "bbox": [60, 60, 20, 20], "score": 0.8}]  # FP
    stats = coco_eval(gt, detections, "bbox")
    # precision 1 up to recall 0.5 (1 of 2 found), then nothing: 51 of COCO's 101 recall points
    assert stats["AP"] == pytest.approx(51 / 101) and stats["AP50"] == pytest.approx(51 / 101)
    assert stats["AR100"] == pytest.approx(0.5) and stats["APs"] == -1 and stats["APm"] == pytest.approx(51 / 101)
    # category 8 has no ground truth: it takes no part; perfect detections give 1
    perfect = [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "score": 0.9},
               {"image_id": 2, "category_id": 3, "bbox": [50, 50, 40, 40], "score": 0.8}]
    assert coco_eval(gt, perfect, "bbox")["AP"] == 1.0
    assert coco_eval(gt, [], "bbox")["AP"] == 0.0
    with pytest.raises(ValueError, match=r"1 image ids not in the ground truth \(e.g. \[99\]\)"):
        coco_eval(gt, [{**detections[0], "image_id": 99}], "bbox")
    with pytest.raises(ValueError, match="needs the keys image_id, category_id, score, bbox"):
        coco_eval(gt, [{"image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]}], "bbox")
    with pytest.raises(ValueError, match="needs the keys image_id, category_id, score, segmentation"):
        coco_eval(gt, detections, "segm")


def test_all_twelve_stats_equal_pycocotools_bbox_with_crowd_regions(root):
    path = layout.annotation_path(root, "val")
    gt = json.loads(path.read_text())
    assert any(a["iscrowd"] for a in gt["annotations"])
    for seed in (0, 1):
        detections = noisy_detections(gt, seed=seed)
        ours = coco_eval(path, detections, "bbox")
        assert 0.1 < ours["AP"] < 0.9, ours
        assert ours == pycocotools_stats(path, detections, "bbox")  # exactly


def test_all_twelve_stats_equal_pycocotools_segm_with_crowd_regions(root):
    path = layout.annotation_path(root, "val")
    gt = json.loads(path.read_text())
    detections = noisy_detections(gt, seed=2, with_masks=True)
    ours = coco_eval(path, detections, "segm")
    assert 0.05 < ours["AP"] < 0.9, ours
    assert ours == pycocotools_stats(path, detections, "segm")


def test_the_order_of_images_does_not_change_the_result(root):
    # how images are split over ranks must not matter; each image's own order is kept (COCOeval
    # ranks equal scores of one image in input order, as pycocotools does)
    path = layout.annotation_path(root, "val")
    detections = noisy_detections(json.loads(path.read_text()), seed=4)
    image_ids = sorted({d["image_id"] for d in detections})
    order = [image_ids[i] for i in np.random.default_rng(0).permutation(len(image_ids))]
    shuffled = [d for image_id in order for d in detections if d["image_id"] == image_id]
    assert shuffled != detections
    assert gather_detections(shuffled) == gather_detections(detections)
    assert coco_eval(path, shuffled, "bbox") == coco_eval(path, detections, "bbox")


def test_detections_gathered_over_two_gloo_processes_equal_one_process(root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLPERF_TRAIN_COLLECTIVE_TIMEOUT_S": "30"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv_backend=c10d",
               "--rdzv_endpoint=localhost:0", "--monitor_interval=0.2", str(WORKER), str(root), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0 == rank1
    path = layout.annotation_path(root, "val")
    everything = noisy_detections(json.loads(path.read_text()), seed=11)
    assert rank0["detections"] == json.loads(json.dumps(gather_detections(everything)))
    assert rank0["stats"] == coco_eval(path, everything, "bbox")


def test_encode_masks_round_trips_through_pycocotools():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 17, 23)) < 0.3
    masks[2] = False
    for given in (masks, torch.from_numpy(masks), torch.from_numpy(masks.astype(np.uint8))):
        rles = encode_masks(given)
        assert [r["size"] for r in rles] == [[17, 23]] * 3 and all(isinstance(r["counts"], str) for r in rles)
        decoded = mask_utils.decode(rles)  # [H, W, N]
        assert np.array_equal(decoded.transpose(2, 0, 1), masks.astype(np.uint8))
        assert mask_utils.area(rles).tolist() == masks.sum((1, 2)).tolist()
    assert encode_masks(np.zeros((0, 5, 5), np.uint8)) == []
    json.dumps(rles)  # serialisable as it is
    with pytest.raises(ValueError, match=r"expected \[N, H, W\]"):
        encode_masks(masks[0])


def test_detections_for_image_maps_boxes_labels_and_masks_to_coco_results():
    gt = hand_made_gt()
    category_of = [0, 3, 8]
    masks = torch.zeros(2, 100, 100, dtype=torch.bool)
    masks[0, 10:50, 10:50] = True
    masks[1, 0:5, 0:5] = True
    results = detections_for_image(1, torch.tensor([[10.0, 10.0, 50.0, 50.0], [0.0, 0.0, 5.0, 5.0]]),
                                   torch.tensor([0.9, 0.3]), torch.tensor([1, 2]), category_of, masks=masks)
    assert [(r["image_id"], r["category_id"], r["bbox"], r["score"]) for r in results] == [
        (1, 3, [10.0, 10.0, 40.0, 40.0], pytest.approx(0.9)), (1, 8, [0.0, 0.0, 5.0, 5.0], pytest.approx(0.3))]
    assert mask_utils.area([r["segmentation"] for r in results]).tolist() == [1600, 25]
    assert coco_eval(gt, results, "bbox")["AP50"] == pytest.approx(51 / 101)
    assert coco_eval(gt, results, "segm")["AP"] == pytest.approx(51 / 101)
    assert coco_eval(gt, results, "segm") == pycocotools_segm(gt, results)


def pycocotools_segm(gt, results):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gt.json"
        path.write_text(json.dumps(gt))
        return pycocotools_stats(path, results, "segm")
