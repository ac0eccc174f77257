"""The training pipeline's targets lie on the object's pixels after the crop, flip and resize
(issue 13: the small preset did not learn; this rules out a geometry bug in ``data.py``)."""
import random
import types

import torch
from PIL import Image
from torchvision.ops import box_iou

from references.ssd import boxes as box_ops
from references.ssd.data import TrainImages


class _OneImage:
    """A ``CocoIndex`` stand-in: one image with one white rectangle on black."""

    def __init__(self, path, box):
        self.path, self.box, self.image_ids = str(path), box, [1]

    def record(self, i):
        return types.SimpleNamespace(path=self.path, boxes=torch.tensor([self.box], dtype=torch.float32),
                                     labels=torch.tensor([1]), image_id=1)


def test_encoded_targets_cover_the_object_after_crop_flip_resize(tmp_path):
    width, height, box = 240, 160, (30.0, 50.0, 130.0, 120.0)   # an off-centre, non-square object
    image = Image.new("RGB", (width, height))
    image.paste((255, 255, 255), tuple(int(v) for v in box))
    image.save(tmp_path / "a.png")
    dboxes = box_ops.default_boxes()
    dataset = TrainImages(_OneImage(tmp_path / "a.png", box), 300, 1, dboxes)
    random.seed(0)
    torch.manual_seed(0)
    for _ in range(12):
        tensor, offsets, labels = dataset[0]
        positive = labels > 0
        if not positive.any():
            continue
        target = box_ops.decode(offsets[positive], dboxes[positive])          # every positive: the same box
        assert torch.allclose(target, target[:1].expand_as(target), atol=1e-4)
        bright = tensor.mean(0) > 0.5                                         # the white object (normalised)
        ys, xs = bright.nonzero(as_tuple=True)
        seen = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32) / 300
        assert box_iou(seen, target[:1]).item() > 0.85, (seen, target[0])


def test_encoded_ground_truth_through_the_eval_path_scores_ap_1(tmp_path):
    """A perfect predictor, end to end on generated COCO: the val annotations encoded against
    the default boxes and fed as network outputs (offsets; one-hot logits) through
    ``EvalImages``' sizes, ``detect``, ``to_coco`` and COCOeval give AP 1."""
    import torch.nn.functional as F

    from references.coco.dataset import CocoIndex
    from references.coco.evaluation import coco_eval
    from references.coco.synthetic import write_coco
    from references.ssd.data import EvalImages
    from references.ssd.metric import detect, to_coco

    write_coco(tmp_path, num_train=0, num_val=12, num_classes=4, seed=0, image_size=((160, 320), (160, 320)))
    val = CocoIndex(tmp_path, "val", skip_empty=True, skip_crowd=False)
    dboxes = box_ops.default_boxes()
    images = EvalImages(val, 300, range(len(val.image_ids)))
    results = []
    for k in range(len(images)):
        _, image_id, height, width = images[k]
        record = val.record(k)
        offsets, labels = box_ops.encode(record.boxes / torch.tensor([width, height, width, height]),
                                         record.labels, dboxes)
        logits = 10.0 * F.one_hot(labels, val.num_classes + 1).float().T
        results += to_coco(detect(offsets.T[None], logits[None], dboxes), [image_id], [height], [width],
                           val.category_of)
    assert coco_eval(val.coco, results, "bbox")["AP"] > 0.99
