"""The COCO 2017 detection layout as distributed (spec ssd.md §1, maskrcnn.md §1)::

    ROOT/train2017/000000000009.jpg ...
    ROOT/val2017/000000000139.jpg ...
    ROOT/annotations/instances_train2017.json
    ROOT/annotations/instances_val2017.json
"""
from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "val")
YEAR = "2017"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"COCO split {split!r}: expected one of {', '.join(SPLITS)}")


def image_dir(root: str | Path, split: str) -> Path:
    """``ROOT/{split}2017``, the folder of the split's JPEGs."""
    _check_split(split)
    return Path(root) / f"{split}{YEAR}"


def annotation_path(root: str | Path, split: str) -> Path:
    """``ROOT/annotations/instances_{split}2017.json``."""
    _check_split(split)
    return Path(root) / "annotations" / f"instances_{split}{YEAR}.json"


def image_file_name(image_id: int) -> str:
    """The real file name of an image: its id zero-padded to 12 digits, ``.jpg``."""
    return f"{image_id:012d}.jpg"


def missing(root: str | Path, splits: tuple[str, ...] = SPLITS) -> list[str]:
    """The parts of the layout absent under ``root`` (paths as strings; empty when complete).
    Only the folders and annotation files are checked, not every image."""
    out = []
    for split in splits:
        for path in (image_dir(root, split), annotation_path(root, split)):
            if not path.exists():
                out.append(str(path))
    return out


def require(root: Path) -> None:
    """Raise ``UsageError`` (one line naming ``root`` and what it lacks) unless ``root`` holds
    the COCO 2017 layout; for ``prepare`` and for a reference's ``open_data``."""
    from mlperf_train.errors import UsageError

    lacking = missing(Path(root))
    if lacking:
        raise UsageError(f"{root}: not the COCO 2017 layout; missing {', '.join(lacking)}")


def require_classes(num_classes: int, found: int, root: Path) -> None:
    """Raise ``UsageError`` unless ``settings.num_classes`` is the ``found`` categories of the
    data at ``root`` plus background (label 0)."""
    from mlperf_train.errors import UsageError

    if found + 1 != num_classes:
        raise UsageError(f"{root}: the data has {found} categories; "
                         f"settings.num_classes = {num_classes} must be that + 1 (background)")


def link_into(source: Path, data_dir: Path) -> None:
    """``prepare`` for COCO 2017 (what the rules allow before the clock is nothing but
    placing the files): link ``train2017/``, ``val2017/`` and ``annotations/`` of ``source``
    into ``data_dir``. Raises ``UsageError`` naming what ``source`` lacks."""
    source, data_dir = Path(source), Path(data_dir)
    require(source)
    if source.resolve() == data_dir.resolve():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    for part in (f"train{YEAR}", f"val{YEAR}", "annotations"):
        link = data_dir / part
        if not link.exists():
            link.symlink_to((source / part).resolve())
