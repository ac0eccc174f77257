"""Detectron's pretrained-backbone format, ``R-50.pkl`` (spec §2: "Init:
ImageNetPretrained/MSRA/R-50.pkl"), read and written.

The file is a pickle of a dict ``{blob name: numpy array}`` (some Detectron files wrap it as
``{"blobs": {...}}``). MSRA's BatchNorm is stored already folded into an affine channel:
``<name>_bn_s`` (scale) and ``<name>_bn_b`` (bias), which the reference loads into
FrozenBatchNorm as weight = s, bias = b, mean 0, var 1. Blob names:

    conv1_w, res_conv1_bn_{s,b}                         stem
    res{2..5}_{i}_branch2{a,b,c}_w, ..._bn_{s,b}        bottleneck convs 1x1, 3x3, 1x1
    res{2..5}_0_branch1_w, res{2..5}_0_branch1_bn_{s,b} projection shortcut
    fc1000_{w,b}                                        classifier (not used by detection)

The mapping onto torchvision's names is the reference's ``c2_model_loading`` renaming.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from references.maskrcnn.backbone import STAGES, fold_batch_norm

BRANCHES = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c"}


class WeightsFileError(ValueError):
    """The pkl cannot initialise this backbone (one line: file, blob, what is wrong)."""


def _conv_bn_pairs(body: nn.Module):
    """(Detectron prefix, conv module, norm module) for every conv of the ResNet body."""
    yield "conv1", "res_conv1_bn", body.conv1, body.bn1
    for stage_index, stage in enumerate(STAGES, start=2):
        for block_index, block in enumerate(getattr(body, stage)):
            prefix = f"res{stage_index}_{block_index}"
            for conv_name, branch in BRANCHES.items():
                norm_name = "bn" + conv_name[-1]
                yield (f"{prefix}_{branch}", f"{prefix}_{branch}_bn", getattr(block, conv_name),
                       getattr(block, norm_name))
            if block.downsample is not None:
                yield f"{prefix}_branch1", f"{prefix}_branch1_bn", block.downsample[0], block.downsample[1]


def read_blobs(path: Path) -> dict[str, np.ndarray]:
    """The blob dict of a Detectron pkl; raises WeightsFileError when it is not one."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as error:
        raise WeightsFileError(f"{path}: not a Detectron weights pickle ({error})") from None
    if isinstance(data, dict) and isinstance(data.get("blobs"), dict):
        data = data["blobs"]
    if not isinstance(data, dict) or not all(isinstance(v, np.ndarray) for v in data.values()):
        raise WeightsFileError(f"{path}: not a Detectron weights pickle (a dict of numpy arrays)")
    return data


def load_into(body: nn.Module, path: Path) -> int:
    """Copy the backbone blobs of ``path`` into ``body`` (a ``resnet_body`` with
    FrozenBatchNorm2d); returns the number of blobs used. Raises WeightsFileError naming the
    first missing blob or shape mismatch."""
    blobs = read_blobs(path)

    def blob(name: str, like: torch.Tensor) -> torch.Tensor:
        if name not in blobs:
            raise WeightsFileError(f"{path}: blob {name!r} missing (this backbone needs it)")
        value = torch.as_tensor(np.asarray(blobs[name], dtype=np.float32))
        if tuple(value.shape) != tuple(like.shape):
            raise WeightsFileError(f"{path}: blob {name!r} has shape {tuple(value.shape)}, "
                                   f"the backbone needs {tuple(like.shape)} (another width or depth?)")
        return value

    used = 0
    with torch.no_grad():
        for conv_prefix, bn_prefix, conv, norm in _conv_bn_pairs(body):
            if not isinstance(norm, FrozenBatchNorm2d):
                raise TypeError("Detectron weights load into FrozenBatchNorm2d layers")
            conv.weight.copy_(blob(f"{conv_prefix}_w", conv.weight))
            norm.weight.copy_(blob(f"{bn_prefix}_s", norm.weight))
            norm.bias.copy_(blob(f"{bn_prefix}_b", norm.bias))
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0)
            used += 3
    return used


def save_from(body: nn.Module, path: Path) -> None:
    """Write ``body``'s convs and norms (BatchNorm folded, or FrozenBN as it is) as a
    Detectron pkl, plus the classifier as ``fc1000_{w,b}`` when it has one."""
    blobs: dict[str, np.ndarray] = {}
    for conv_prefix, bn_prefix, conv, norm in _conv_bn_pairs(body):
        if isinstance(norm, nn.BatchNorm2d):
            scale, bias = fold_batch_norm(norm)
        else:  # FrozenBatchNorm2d: its own eps
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            bias = norm.bias - norm.running_mean * scale
        blobs[f"{conv_prefix}_w"] = conv.weight.detach().cpu().numpy().astype(np.float32)
        blobs[f"{bn_prefix}_s"] = scale.detach().cpu().numpy().astype(np.float32)
        blobs[f"{bn_prefix}_b"] = bias.detach().cpu().numpy().astype(np.float32)
    fc = getattr(body, "fc", None)
    if isinstance(fc, nn.Linear):
        blobs["fc1000_w"] = fc.weight.detach().cpu().numpy().astype(np.float32)
        blobs["fc1000_b"] = fc.bias.detach().cpu().numpy().astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(blobs, f, protocol=2)
