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
import gc
import json
from functools import cached_property
from pathlib import Path

import numpy as np
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
    # JSON makes no reference cycles; the cyclic collector would only rescan the millions of
    # new objects over and over (about 20 % of the real train file's read time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CocoFormatError(f"{path}: not valid JSON ({error})") from None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(data, dict):
        raise CocoFormatError(f"{path}: top level is {type(data).__name__}, expected a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise CocoFormatError(f"{path}: key {key!r} missing or not a list (COCO instances format)")
    return data


def _bad_annotation(path: Path, annotations: list, row_of: dict, label_of: dict) -> None:
    """Raise the one-line error for the first malformed annotation (the slow path, taken
    only when the vectorised read failed)."""
    for ann in annotations:
        try:
            image_id, cat = int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
            bool(ann.get("iscrowd", 0))
        except (KeyError, TypeError, ValueError) as error:
            raise CocoFormatError(f"{path}: annotation id {ann.get('id') if isinstance(ann, dict) else ann!r}: "
                                  f"bad or missing field ({error}); needs image_id, category_id, "
                                  f"bbox [x, y, w, h]") from None
        if image_id not in row_of:
            raise CocoFormatError(f"{path}: annotation id {ann.get('id')}: image_id {image_id} is not in 'images'")
        if cat not in label_of:
            raise CocoFormatError(f"{path}: annotation id {ann.get('id')}: category_id {cat} "
                                  f"is not in 'categories'")
    raise CocoFormatError(f"{path}: 'annotations' could not be read (COCO instances format)")


def _columns(path: Path, annotations: list, row_of: dict, label_of: dict):
    """The annotations as columns: image rows int64 [M], xywh float32 [M, 4], labels int64
    [M], iscrowd bool [M], segmentations (list of M), in file order. Vectorised: the real
    train file has 860k annotations."""
    count = len(annotations)
    try:
        image_ids = np.array([a["image_id"] for a in annotations], dtype=np.int64).reshape(count)
        categories = np.array([a["category_id"] for a in annotations], dtype=np.int64).reshape(count)
        xywh = np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(count, 4)
        crowd = np.array([a.get("iscrowd", 0) for a in annotations], dtype=bool).reshape(count)
    except (KeyError, TypeError, ValueError, AttributeError):
        _bad_annotation(path, annotations, row_of, label_of)
    known_ids = np.array(sorted(row_of), dtype=np.int64)
    position = np.searchsorted(known_ids, image_ids).clip(max=max(len(known_ids) - 1, 0))
    category_lut = np.zeros(max(label_of, default=0) + 1, dtype=np.int64)
    category_lut[list(label_of)] = list(label_of.values())
    in_range = (categories >= 0) & (categories < len(category_lut))
    labels = np.where(in_range, category_lut[categories.clip(0, len(category_lut) - 1)], 0)
    if count and (len(known_ids) == 0 or not (known_ids[position] == image_ids).all() or not labels.all()):
        _bad_annotation(path, annotations, row_of, label_of)
    rows = np.array([row_of[int(i)] for i in known_ids], dtype=np.int64)[position] if count else position
    return rows, xywh, labels, crowd, [a.get("segmentation") for a in annotations]


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
        row_of = {image_id: row for row, image_id in enumerate(self._images)}
        rows, xywh, labels, crowd, segmentations = _columns(path, data["annotations"], row_of, self.label_of)
        # Objects grouped by image in numpy arrays (file order kept within an image): compact,
        # and DataLoader workers read them without touching Python reference counts (no
        # copy-on-write growth of forked workers on the real set's 860k objects).
        order = np.argsort(rows, kind="stable")
        self._xywh, self._labels, self._crowd = xywh[order], labels[order], crowd[order]
        self._segmentations = [segmentations[k] for k in order.tolist()]
        counts = np.bincount(rows, minlength=len(self._images))
        self._start = np.concatenate([[0], np.cumsum(counts)])
        self._row_of = row_of
        self.skip_crowd = skip_crowd
        keep = counts > 0 if skip_empty else np.ones(len(self._images), dtype=bool)
        if skip_degenerate:
            proper = (self._xywh[:, 2] > 1) & (self._xywh[:, 3] > 1)
            keep &= np.bincount(rows[order], weights=proper, minlength=len(self._images)) > 0
        image_ids = list(self._images)
        self.image_ids: list[int] = sorted(image_ids[row] for row in np.flatnonzero(keep).tolist())
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
        row = self._row_of[image_id]
        first, last = int(self._start[row]), int(self._start[row + 1])
        take = np.arange(first, last)
        if self.skip_crowd:
            take = take[~self._crowd[first:last]]
        boxes = torch.from_numpy(self._xywh[take])  # a copy (fancy indexing)
        boxes[:, 2:] += boxes[:, :2]
        polygons, rles = [], []
        for k in take.tolist():
            segmentation = self._segmentations[k]
            if isinstance(segmentation, list):
                polygons.append(segmentation)
                rles.append(None)
            else:
                polygons.append([])
                rles.append(segmentation if isinstance(segmentation, dict) else None)
        return Record(image_id=image_id, path=str(self.image_dir / file_name), height=height, width=width,
                      boxes=boxes, labels=torch.from_numpy(self._labels[take]),
                      iscrowd=torch.from_numpy(self._crowd[take]), polygons=polygons, rles=rles)

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
