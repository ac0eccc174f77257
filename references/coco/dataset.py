"""The COCO 2017 reader with the references' filters and category mapping.

- **Images without annotations** (``skip_empty``): the SSD reference drops every image that
  has no annotation at all, crowd ones included (spec ssd.md §1): 117,266 train and 4,952
  val images of the real set. Mask R-CNN drops them from training only (maskrcnn.md §1).
- **Degenerate boxes** (``skip_degenerate``): maskrcnn-benchmark also drops training images
  whose every box has a width or height ≤ 1 pixel (``_has_only_empty_bbox``).
- **Crowd regions** (``skip_crowd``): Mask R-CNN keeps ``iscrowd=1`` objects out of its
  targets; SSD trains on them as ordinary boxes. They stay in the ground truth of the
  evaluation either way (COCOeval ignores detections matched to them).
- **Categories**: COCO's ids run 1..90 with gaps. Both references map them to contiguous
  labels 1..C in increasing id order (the file's order in the real set); 0 is background.
"""
from __future__ import annotations

import dataclasses
import json
from functools import cached_property
from pathlib import Path

import torch
import torchvision.io

from mlperf_train.errors import UsageError
from references.coco import layout


class CocoFormatError(UsageError):
    """A COCO file that is missing or not in the COCO format (one line: file, key, value)."""


@dataclasses.dataclass
class Record:
    """One image and its objects, in the file's object order.

    ``boxes``: float32 [N, 4] ``x1, y1, x2, y2`` in pixels, from COCO's ``[x, y, w, h]`` as
    ``x2 = x + w``, ``y2 = y + h`` (no "+1" convention; a reference that needs it subtracts
    1 itself). ``labels``: int64 [N] contiguous labels 1..C. ``iscrowd``: bool [N].
    ``polygons``: per object its COCO polygons (each a flat ``[x1, y1, x2, y2, ...]`` list);
    ``[]`` when the object's segmentation is an RLE. ``rles``: per object its RLE dict
    (``{"size": [h, w], "counts": ...}``, crowd regions in the real set) or None.
    """

    image_id: int
    path: str
    height: int
    width: int
    boxes: torch.Tensor
    labels: torch.Tensor
    iscrowd: torch.Tensor
    polygons: list[list[list[float]]]
    rles: list[dict | None]

    @property
    def num_objects(self) -> int:
        return int(self.labels.numel())


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CocoFormatError(f"{path}: annotation file not found (COCO 2017 layout: "
                              f"annotations/instances_{{train,val}}2017.json)")
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CocoFormatError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise CocoFormatError(f"{path}: top level is {type(data).__name__}, expected a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise CocoFormatError(f"{path}: key {key!r} missing or not a list (COCO instances format)")
    return data


class CocoIndex:
    """The images of one split after the reference filters, with their objects.

    ``root``: a folder in the COCO 2017 layout (``layout.py``); ``split``: ``train`` or
    ``val``. ``.image_ids``: the kept image ids, sorted; ``len(index)`` their number.
    ``.label_of[category_id] -> label`` (1..C) and ``.category_of[label] -> category_id``
    (a list, ``category_of[0] = 0`` for background) map categories; ``.num_classes`` is C.
    ``.coco`` is the ground truth as an evaluator object (``evaluation.load_ground_truth``),
    of the whole annotation file: filters change what is trained on, not what is scored.

    Raises ``CocoFormatError`` (a ``UsageError``: one line, exit 2) on a missing or
    malformed annotation file.
    """

    def __init__(self, root: str | Path, split: str, *, skip_empty: bool, skip_crowd: bool = True,
                 skip_degenerate: bool = False):
        self.root = Path(root)
        self.split = split
        self.annotation_path = layout.annotation_path(root, split)
        self.image_dir = layout.image_dir(root, split)
        data = _read_json(self.annotation_path)
        path = self.annotation_path
        try:
            category_ids = sorted(int(c["id"]) for c in data["categories"])
            self._images = {int(i["id"]): (str(i["file_name"]), int(i["height"]), int(i["width"]))
                            for i in data["images"]}
        except (KeyError, TypeError, ValueError) as error:
            raise CocoFormatError(f"{path}: an image or category lacks {error} (COCO instances format)") from None
        if len(set(category_ids)) != len(category_ids):
            raise CocoFormatError(f"{path}: categories: duplicate ids")
        self.label_of = {cat: label for label, cat in enumerate(category_ids, start=1)}
        self.category_of = [0, *category_ids]
        self.num_classes = len(category_ids)
        self._objects: dict[int, list[dict]] = {image_id: [] for image_id in self._images}
        for ann in data["annotations"]:
            try:
                image_id, cat = int(ann["image_id"]), int(ann["category_id"])
                x, y, w, h = (float(v) for v in ann["bbox"])
            except (KeyError, TypeError, ValueError) as error:
                raise CocoFormatError(f"{path}: annotation id {ann.get('id')}: bad or missing field "
                                      f"({error}); needs image_id, category_id, bbox [x, y, w, h]") from None
            if image_id not in self._objects:
                raise CocoFormatError(f"{path}: annotation id {ann.get('id')}: image_id {image_id} "
                                      f"is not in 'images'")
            if cat not in self.label_of:
                raise CocoFormatError(f"{path}: annotation id {ann.get('id')}: category_id {cat} "
                                      f"is not in 'categories'")
            self._objects[image_id].append({"bbox": (x, y, w, h), "label": self.label_of[cat],
                                            "iscrowd": bool(ann.get("iscrowd", 0)),
                                            "segmentation": ann.get("segmentation")})
        self.skip_crowd = skip_crowd
        kept = []
        for image_id, objects in self._objects.items():
            if skip_empty and not objects:
                continue
            if skip_degenerate and all(o["bbox"][2] <= 1 or o["bbox"][3] <= 1 for o in objects):
                continue
            kept.append(image_id)
        self.image_ids: list[int] = sorted(kept)
        self.num_annotation_images = len(self._images)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getstate__(self) -> dict:
        # DataLoader workers started with "spawn" pickle the index: the evaluator's ground
        # truth (a native object) stays behind and is re-read if a worker asks for it.
        state = dict(self.__dict__)
        state.pop("coco", None)
        return state

    def record(self, i: int) -> Record:
        """The ``i``-th kept image (in ``image_ids`` order) and its objects; crowd objects are
        left out when ``skip_crowd``."""
        image_id = self.image_ids[i]
        file_name, height, width = self._images[image_id]
        objects = [o for o in self._objects[image_id] if not (self.skip_crowd and o["iscrowd"])]
        boxes = torch.tensor([o["bbox"] for o in objects], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        polygons, rles = [], []
        for o in objects:
            segmentation = o["segmentation"]
            if isinstance(segmentation, list):
                polygons.append(segmentation)
                rles.append(None)
            else:
                polygons.append([])
                rles.append(segmentation if isinstance(segmentation, dict) else None)
        return Record(image_id=image_id, path=str(self.image_dir / file_name), height=height, width=width,
                      boxes=boxes, labels=torch.tensor([o["label"] for o in objects], dtype=torch.int64),
                      iscrowd=torch.tensor([o["iscrowd"] for o in objects], dtype=torch.bool),
                      polygons=polygons, rles=rles)

    @cached_property
    def coco(self):
        """The whole annotation file as the evaluator's ground-truth object (read once)."""
        from references.coco.evaluation import load_ground_truth

        return load_ground_truth(self.annotation_path)


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as uint8 [3, H, W] RGB. Greyscale and CMYK JPEGs (both occur in COCO)
    are converted to RGB; a PNG under a ``.jpg`` name is read too."""
    data = torchvision.io.read_file(str(path))
    return torchvision.io.decode_image(data, mode=torchvision.io.ImageReadMode.RGB)
