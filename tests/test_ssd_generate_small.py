"""generate_small draws each image's size from the preset's range (issue 13: ``write_coco``
reads two ints as a fixed (h, w); the range needs ``((lo, hi), (lo, hi))``)."""
import dataclasses
import json

from references.ssd.benchmark import SsdSettings
from references.ssd.synthetic import generate_small


def test_generated_image_sizes_span_the_range(tmp_path):
    settings = dataclasses.replace(SsdSettings(), width=8, synth_train=12, synth_val=12, synth_min_size=160,
                                   synth_max_size=320, pretrain_steps=0, backbone_file="b.pth")
    generate_small(tmp_path, settings, seed=0)
    images = json.loads((tmp_path / "annotations" / "instances_train2017.json").read_text())["images"]
    heights, widths = {i["height"] for i in images}, {i["width"] for i in images}
    assert all(160 <= v <= 320 for v in heights | widths)
    assert len(heights) > 3 and len(widths) > 3 and any(i["height"] != i["width"] for i in images)
    assert (tmp_path / "artifacts" / "b.pth").is_file()
