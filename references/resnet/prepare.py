"""``mlperf-train prepare resnet``: the one-time preprocessing the rules allow (spec §1).

What it does, and nothing else:
- sorts the flat ``val/`` folder into ``val/<wnid>/`` using the devkit labels (Kaggle's
  ``LOC_val_solution.csv``, or ``ILSVRC2012_validation_ground_truth.txt`` with ``meta.mat``);
- re-encodes the files a JPEG decoder trips on (a PNG named ``.JPEG``, CMYK JPEGs) as RGB
  JPEG at quality 100, and hard-links (or copies) every other file byte for byte;
- writes an index: ``classes.txt`` (sorted wnids) and ``train.txt``/``val.txt``.
No resizing, no decoding of the kept files, no duplicates: every augmentation is on the clock.

Accepted source layouts: ``SRC/train/<wnid>/`` with ``SRC/val/`` flat or in class folders,
or the Kaggle tree ``SRC/ILSVRC/Data/CLS-LOC/{train,val}``. Label files are looked for in
``SRC``, its parent folders down to the split folders, and ``ILSVRC2012_devkit_t12/data``.
"""
from __future__ import annotations

import concurrent.futures
import csv
import json
import os
import shutil
from pathlib import Path

from PIL import Image

from mlperf_train.progress import track
from references.resnet.data import IMAGE_SUFFIXES

KAGGLE_DATA = Path("ILSVRC/Data/CLS-LOC")
DEVKIT_DATA = Path("ILSVRC2012_devkit_t12/data")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_splits(source: Path) -> tuple[Path, Path]:
    for base in (source, source / KAGGLE_DATA):
        if (base / "train").is_dir() and (base / "val").is_dir():
            return base / "train", base / "val"
    raise ValueError(f"{source}: no train/ and val/ folders (nor {KAGGLE_DATA}/train and val)")


def _find_file(source: Path, name: str) -> Path | None:
    for folder in (source, source / DEVKIT_DATA, source.parent, source / "ILSVRC", source / "LOC"):
        if (folder / name).is_file():
            return folder / name
    return None


def val_labels(source: Path, val_dir: Path) -> dict[str, str]:
    """Validation file name -> wnid, from whichever devkit label file the source has."""
    solution = _find_file(source, "LOC_val_solution.csv")
    if solution:  # Kaggle: ImageId,PredictionString ("wnid x0 y0 x1 y1 wnid ...")
        with open(solution, newline="") as f:
            return {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(f)}
    truth = _find_file(source, "ILSVRC2012_validation_ground_truth.txt")
    meta = _find_file(source, "meta.mat")
    if truth and meta:  # devkit: one ILSVRC2012_ID per line, in file-name order
        from scipy.io import loadmat  # only this layout needs it

        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
        wnid_of = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
        ids = [int(line) for line in truth.read_text().split()]
        names = [p.stem for p in _image_files(val_dir)]
        if len(names) != len(ids):
            raise ValueError(f"{truth}: {len(ids)} labels for {len(names)} files in {val_dir}")
        return {name: wnid_of[i] for name, i in zip(names, ids)}
    raise ValueError(f"{source}: val/ is flat and no LOC_val_solution.csv or "
                     f"ILSVRC2012_validation_ground_truth.txt + meta.mat was found to sort it")


def _copy_or_reencode(job: tuple[str, str]) -> str:
    """Hard-link a JPEG that decodes as RGB or grey; re-encode anything else."""
    source, target = job
    if os.path.exists(target) and os.path.samefile(source, target):
        return "kept"  # prepared in place
    with Image.open(source) as image:  # reads the header only
        keep = image.format == "JPEG" and image.mode in ("RGB", "L")
        if not keep:
            image.convert("RGB").save(target, "JPEG", quality=100)
            return f"re-encoded {image.format} {image.mode}"
    if os.path.lexists(target):
        os.unlink(target)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, target)
    return "kept"


def prepare_imagenet(source: Path, data_dir: Path, num_workers: int | None = None) -> dict:
    """Turn ``source`` into the prepared tree under ``data_dir``; returns a summary."""
    source, data_dir = Path(source), Path(data_dir)
    train_dir, val_dir = find_splits(source)
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    jobs, listing = [], {"train": [], "val": []}
    for wnid in classes:
        for path in _image_files(train_dir / wnid):
            jobs.append((path, "train", wnid, path.name))
    val_folders = sorted(d.name for d in val_dir.iterdir() if d.is_dir())
    if val_folders:
        for wnid in val_folders:
            jobs += [(p, "val", wnid, p.name) for p in _image_files(val_dir / wnid)]
    else:
        labels = val_labels(source, val_dir)
        for path in _image_files(val_dir):
            if path.stem not in labels:
                raise ValueError(f"{path}: no label in the devkit files")
            jobs.append((path, "val", labels[path.stem], path.name))
    unknown = {wnid for _, split, wnid, _ in jobs if split == "val"} - set(classes)
    if unknown:
        raise ValueError(f"{source}: validation classes {sorted(unknown)[:5]} have no train folder")
    work = []
    for path, split, wnid, name in jobs:
        (data_dir / split / wnid).mkdir(parents=True, exist_ok=True)
        name = Path(name).stem + ".JPEG"  # every prepared file is a JPEG
        listing[split].append(f"{wnid}/{name}")
        work.append((str(path), str(data_dir / split / wnid / name)))
    num_workers = num_workers or (1 if len(work) < 20_000 else os.cpu_count() or 1)
    if num_workers == 1:
        outcomes = list(track(map(_copy_or_reencode, work), total=len(work), desc="images", unit="image"))
    else:
        with concurrent.futures.ProcessPoolExecutor(num_workers) as pool:
            outcomes = list(track(pool.map(_copy_or_reencode, work, chunksize=256), total=len(work), desc="images",
                                  unit="image"))
    reencoded = {target: how for (_, target), how in zip(work, outcomes) if how != "kept"}
    (data_dir / "classes.txt").write_text("\n".join(classes) + "\n")
    for split, names in listing.items():
        (data_dir / f"{split}.txt").write_text("\n".join(names) + "\n")
    summary = {"classes": len(classes), "train": len(listing["train"]), "val": len(listing["val"]),
               "reencoded": {str(Path(t).relative_to(data_dir)): how for t, how in reencoded.items()}}
    (data_dir / "prepare_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
