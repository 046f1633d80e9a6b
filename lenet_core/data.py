"""Datasets: fetch or import once, verify, cache as uint8 tensors, serve on the device.

`prepare(name)` turns the raw files (torchvision's download, or an offline
mirror) into `data/<name>.pt` (uint8 images N x C x H x W, int64 labels) plus
`data/<name>.json` (provenance). Every dataset is its official files; CIFAR-10
also has a second, lossy copy (`copy="jpeg"`, cached as `data/cifar10-jpeg.*`),
imported only when asked for by name, to measure what a lossy copy costs. Everything after that works on tensors:
`splits(name, device)` returns normalized float tensors (or pixel values in [0, 1]) already on the device,
with the fixed validation split, and no PIL or per-sample Python is involved.

Which datasets and copies exist, and their official checksums, are in `catalog`; the readers of
the raw files in `sources`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import torch

# The catalogue's names are also this module's: the package imports them from here.
from .catalog import (COPIES, DATASETS, OFFICIAL, DataError, DatasetSpec, cache_name, check_copy,  # noqa: F401
                      check_name, fix_hint)
from .paths import atomic_write, data_dir, mirror_dir
from .sources import import_raw

VALIDATION_FRACTION = 0.1
SPLIT_SEED = 1998  # the validation split's own seed: the same split for every run

def content_sha256(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- the cache

def _cache_paths(name: str, copy: str = OFFICIAL) -> tuple[Path, Path]:
    stem = cache_name(name, copy)
    return data_dir() / f"{stem}.pt", data_dir() / f"{stem}.json"


def _title(name: str, copy: str) -> str:
    return DATASETS[name].title + ("" if copy == OFFICIAL else f" ({copy.upper()} copy)")


def prepare(name: str, mirror: str | Path | None = None, force: bool = False, copy: str = OFFICIAL) -> dict:
    """Import `copy` of `name` once into the cache; returns its provenance. Idempotent."""
    spec = check_name(name)
    tensors_path, meta_path = _cache_paths(name, copy)
    if not force and tensors_path.exists() and meta_path.exists():
        return json.loads(meta_path.read_text())
    raw = import_raw(name, copy, mirror_dir(mirror))
    provenance = dict(
        dataset=name, title=spec.title, copy_name=copy, **raw.pop("provenance"),
        n_train=len(raw["train_y"]), n_test=len(raw["test_y"]),
        shape=list(raw["train_x"].shape[1:]),
        content_sha256=content_sha256(raw["train_x"], raw["train_y"], raw["test_x"], raw["test_y"]),
        prepared=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    # Tensors first, metadata last: a cache counts as present only when both are.
    meta_path.unlink(missing_ok=True)
    atomic_write(tensors_path, lambda tmp: torch.save(raw, tmp))
    atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(provenance, indent=2)))
    load_uint8.cache_clear()
    splits.cache_clear()
    return provenance


def provenance(name: str, copy: str = OFFICIAL) -> dict:
    """The provenance record of a prepared dataset (cheap: reads the small JSON)."""
    check_name(name)
    tensors_path, meta_path = _cache_paths(name, copy)
    if not (tensors_path.exists() and meta_path.exists()):
        raise DataError(f"{_title(name, copy)} is not prepared: {tensors_path} is missing. {fix_hint(name, copy)}")
    prov = json.loads(meta_path.read_text())
    # A cache made before the copies had names holds the JPEG copy under the official name.
    cached = prov.get("copy_name", "jpeg" if prov["lossy"] else OFFICIAL)
    if cached != copy:
        raise DataError(f"{_title(name, copy)}: the cache {tensors_path} holds the {cached} copy, not the "
                        f"{copy} one; re-import it: {fix_hint(name, copy)}")
    return prov


def identity(prov: dict) -> dict:
    """The part of a provenance record that identifies the data (goes into run keys).

    Where the files came from (a mirror path, a download) does not change the
    tensors, so it is left out; the content hash is what the network saw (and tells
    the copies of one dataset apart).
    """
    return {k: prov[k] for k in ("dataset", "lossy", "content_sha256")}


@lru_cache(maxsize=4)
def load_uint8(name: str, copy: str = OFFICIAL) -> dict:
    """The cached uint8 tensors, verified against their recorded content hash."""
    prov = provenance(name, copy)
    tensors_path, _ = _cache_paths(name, copy)
    try:
        raw = torch.load(tensors_path, weights_only=True)
        ok = content_sha256(raw["train_x"], raw["train_y"], raw["test_x"], raw["test_y"]) == prov["content_sha256"]
    except Exception:
        ok = False
    if not ok:
        raise DataError(f"{_title(name, copy)}: the cache {tensors_path} is corrupted; "
                        f"rebuild it: {fix_hint(name, copy)}.")
    return raw


@dataclass
class Splits:
    """Normalized float tensors on one device: train / validation / test."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    # per channel, in [0, 1] pixel units: what was subtracted and divided by (the training part's
    # statistics; 0 and 1 when the tensors are plain pixel values)
    mean: torch.Tensor
    std: torch.Tensor
    provenance: dict

    @property
    def background(self) -> torch.Tensor:
        """The normalized value of a black pixel, per channel: what padding fills with."""
        return (-self.mean / self.std).view(1, -1, 1, 1).to(self.train_x.device)


def split_indices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed (train, validation) index split of a training set of size n."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = round(n * VALIDATION_FRACTION)
    return perm[n_val:], perm[:n_val]


@lru_cache(maxsize=4)
def splits(name: str, device: str = "cpu", normalize: bool = True, copy: str = OFFICIAL) -> Splits:
    """The dataset as device tensors, normalized with training-part statistics (with
    normalize=False: pixel values in [0, 1], as feeding raw pixels does).

    28x28 digits are padded with black to 32x32, as in the 1998 network's input.
    Cached per (dataset, device, normalize, copy) so several runs in one process share one copy.
    """
    check_copy(name, copy)
    raw = load_uint8(name, copy)
    train_idx, val_idx = split_indices(len(raw["train_y"]))
    if normalize:
        pixels = raw["train_x"][train_idx].float().div_(255)
        mean = pixels.mean(dim=(0, 2, 3))
        std = pixels.std(dim=(0, 2, 3))
        del pixels
    else:
        channels = raw["train_x"].shape[1]
        mean, std = torch.zeros(channels), torch.ones(channels)

    def prep(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device)
        pad = (32 - x.shape[-1]) // 2
        if pad > 0:
            x = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # black border, in uint8
        x = x.float().div_(255)
        return x.sub_(mean.to(device).view(1, -1, 1, 1)).div_(std.to(device).view(1, -1, 1, 1))

    return Splits(
        name=name,
        train_x=prep(raw["train_x"][train_idx]), train_y=raw["train_y"][train_idx].to(device),
        val_x=prep(raw["train_x"][val_idx]), val_y=raw["train_y"][val_idx].to(device),
        test_x=prep(raw["test_x"]), test_y=raw["test_y"].to(device),
        mean=mean, std=std, provenance=provenance(name, copy),
    )
