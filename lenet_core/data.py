"""Datasets: fetch or import once, verify, cache as uint8 tensors, serve on the device.

`prepare(name)` turns the raw files (torchvision's download, or an offline
mirror) into `data/<name>.pt` (uint8 images N x C x H x W, int64 labels) plus
`data/<name>.json` (provenance). Every dataset is its official files; CIFAR-10
also has a second, lossy copy (`copy="jpeg"`, cached as `data/cifar10-jpeg.*`),
imported only when asked for by name, to measure what a lossy copy costs. Everything after that works on tensors:
`splits(name, device)` returns normalized float tensors (or pixel values in [0, 1]) already on the device,
with the fixed validation split, and no PIL or per-sample Python is involved.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .paths import atomic_write, data_dir, mirror_dir

VALIDATION_FRACTION = 0.1
SPLIT_SEED = 1998  # the validation split's own seed: the same split for every run


class DataError(RuntimeError):
    """Data missing, corrupted or unreachable. The message says how to fix it."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    torchvision_class: str
    mirror_folder: str
    channels: int
    classes: tuple[str, ...]


_DIGITS = tuple(str(i) for i in range(10))
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", "MNIST", "MNIST", "mnist", 1, _DIGITS),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", "Fashion-MNIST", "FashionMNIST", "fashion-mnist", 1,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "cifar10": DatasetSpec(
        "cifar10", "CIFAR-10", "CIFAR10", "cifar-10-batches-py", 3,
        ("airplane", "automobile", "bird", "cat", "deer",
         "dog", "frog", "horse", "ship", "truck"),
    ),
}

# SHA-256 of the official, uncompressed IDX files (as published by the dataset authors).
IDX_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
# The copies of each dataset: "official" (the dataset authors' files) always; CIFAR-10 also the
# JPEG re-encoding, kept only for the comparison that measures what the lossy copy costs.
OFFICIAL = "official"
COPIES: dict[str, tuple[str, ...]] = {"mnist": (OFFICIAL,), "fashion_mnist": (OFFICIAL,),
                                      "cifar10": (OFFICIAL, "jpeg")}
CIFAR_JPEG_FOLDER = "cifar10-jpeg"
CIFAR_JPEG_ARCHIVE = "cifar10-jpeg.tar.gz"
CIFAR_JPEG_SHA256 = "45b041e867f5a40f79bfde38d3dd1fd511103d50068c1afecf6445e25234d4db"
CIFAR_JPEG_NOTE = (
    "CIFAR-10 re-encoded as JPEG (quality about 75, 4:2:0 chroma; mean PSNR 30.5 dB "
    "against the originals). Official split and labels; accuracies are close to, "
    "not the same as, official CIFAR-10."
)


def check_name(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]


def check_copy(name: str, copy: str) -> str:
    check_name(name)
    if copy not in COPIES[name]:
        raise ValueError(f"unknown copy {copy!r} of {name}; valid: {', '.join(COPIES[name])}")
    return copy


def cache_name(name: str, copy: str = OFFICIAL) -> str:
    """The cache's file stem: the dataset's name for its official files, `<name>-<copy>` otherwise."""
    return name if check_copy(name, copy) == OFFICIAL else f"{name}-{copy}"


def _fix_hint(name: str, copy: str = OFFICIAL) -> str:
    if copy != OFFICIAL:
        return (f"Fix: `python -m lenet_core data prepare {name} --copy {copy} --force --mirror DIR` from an "
                f"offline mirror that holds it (no public host serves this copy; `make data` prepares it)")
    return (f"Fix: `python -m lenet_core data prepare {name} --force --mirror DIR` from an offline mirror, "
            f"or without --mirror to download through torchvision (`make data` prepares all)")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_sha256(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- raw formats

def _parse_idx(raw: bytes) -> np.ndarray:
    """IDX: 2 zero bytes, a type code (0x08 = uint8), ndim, big-endian dims, data."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError("not an uint8 IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _read_idx_files(name: str, folders: list[Path]) -> tuple[dict[str, bytes], Path]:
    """Find the four IDX files (plain or .gz) in the first folder holding them."""
    wanted = IDX_SHA256[name]
    for folder in folders:
        found = {}
        for stem in wanted:
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.exists():
                    found[stem] = candidate
                    break
        if len(found) == len(wanted):
            raw = {}
            for stem, path in found.items():
                try:
                    raw[stem] = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
                except (OSError, EOFError, gzip.BadGzipFile) as exc:
                    raise DataError(f"{DATASETS[name].title}: cannot read {path}: {exc}. {_fix_hint(name)}") from exc
                if _sha256(raw[stem]) != wanted[stem]:
                    raise DataError(
                        f"{DATASETS[name].title}: {path} is corrupted (SHA-256 of its content does not "
                        f"match the official {stem}). Replace it with a good copy, then {_fix_hint(name)}."
                    )
            return raw, folder
    looked = ", ".join(str(f) for f in folders)
    raise DataError(f"{DATASETS[name].title}: the four IDX files were not found; looked in {looked}. {_fix_hint(name)}")


def _where(path: Path, root: Path) -> str:
    """A location without the machine's absolute path: relative to the mirror (or download) root."""
    try:
        return f"{root.name}/{path.relative_to(root)}".rstrip("/.")
    except ValueError:
        return path.name


def _from_idx(name: str, folders: list[Path], source: str, root: Path) -> dict:
    raw, folder = _read_idx_files(name, folders)
    images = {k: _parse_idx(v) for k, v in raw.items()}
    return dict(
        train_x=torch.from_numpy(images["train-images-idx3-ubyte"].copy()).unsqueeze(1),
        train_y=torch.from_numpy(images["train-labels-idx1-ubyte"].astype(np.int64)),
        test_x=torch.from_numpy(images["t10k-images-idx3-ubyte"].copy()).unsqueeze(1),
        test_y=torch.from_numpy(images["t10k-labels-idx1-ubyte"].astype(np.int64)),
        provenance=dict(source=source, location=_where(folder, root), lossy=False,
                        copy="official IDX files",
                        files={k: _sha256(v) for k, v in raw.items()}),
    )


def _from_cifar_jpeg(archive: Path, root: Path) -> dict:
    from PIL import Image  # only at prepare time

    spec = DATASETS["cifar10"]
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != CIFAR_JPEG_SHA256:
        raise DataError(f"CIFAR-10 (JPEG copy): {archive} is corrupted (SHA-256 {digest} does not match "
                        f"{CIFAR_JPEG_SHA256}). Replace it, then {_fix_hint('cifar10', 'jpeg')}.")
    pattern = re.compile(r"(?:^|/)(train|test)/([a-z]+)/(\d+)\.(?:jpg|jpeg|png)$")
    items: dict[str, list] = {"train": [], "test": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            m = pattern.search(member.name)
            if not member.isfile() or not m:
                continue
            split, cls, number = m.group(1), m.group(2), int(m.group(3))
            if cls not in spec.classes:
                raise DataError(f"CIFAR-10: unexpected class folder {cls!r} in {archive}")
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as im:
                pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
            items[split].append((spec.classes.index(cls), number, pixels))
    out = {}
    for split, expected in (("train", 50_000), ("test", 10_000)):
        rows = sorted(items[split], key=lambda r: (r[0], r[1]))  # class, then official order
        if len(rows) != expected:
            raise DataError(f"CIFAR-10 (JPEG copy): {archive} holds {len(rows)} {split} images, expected "
                            f"{expected}. Replace it, then {_fix_hint('cifar10', 'jpeg')}.")
        out[f"{split}_x"] = torch.from_numpy(np.stack([r[2] for r in rows])).permute(0, 3, 1, 2).contiguous()
        out[f"{split}_y"] = torch.tensor([r[0] for r in rows], dtype=torch.int64)
    out["provenance"] = dict(source="mirror (JPEG copy)", location=_where(archive, root), lossy=True,
                             copy=CIFAR_JPEG_NOTE, files={CIFAR_JPEG_ARCHIVE: digest})
    return out


def _check_cifar_files(root: Path) -> dict[str, str]:
    """Check every official file against torchvision's own MD5 table before torchvision reads
    them, so that a bad file is named with both checksums (torchvision only says "corrupted")."""
    import torchvision

    cls = torchvision.datasets.CIFAR10
    folder = root / cls.base_folder
    expected = {name: md5 for name, md5 in cls.train_list + cls.test_list}
    expected[cls.meta["filename"]] = cls.meta["md5"]
    found = {}
    for name, md5 in expected.items():
        path = folder / name
        if not path.exists():
            raise DataError(f"CIFAR-10: {path} is missing (the official files are {', '.join(expected)}). "
                            f"{_fix_hint('cifar10')}")
        found[name] = _md5(path)
        if found[name] != md5:
            raise DataError(f"CIFAR-10: {path} is corrupted: its MD5 is {found[name]}, the official file's "
                            f"(torchvision's check) is {md5}. Replace it with a good copy, then "
                            f"{_fix_hint('cifar10')}.")
    return found


def _from_cifar_torchvision(root: Path, download: bool, source: str) -> dict:
    """The official files through torchvision's own CIFAR10 class: its download and MD5 check."""
    import torchvision

    if not download:
        _check_cifar_files(root)
    try:
        train = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
        test = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
    except Exception as exc:  # torchvision raises RuntimeError/URLError with its own text
        raise DataError(f"CIFAR-10: torchvision could not {'download' if download else 'read'} it "
                        f"under {root}: {exc}. {_fix_hint('cifar10')}") from exc
    files = {name: md5 for name, md5 in train.train_list + train.test_list}
    files[train.meta["filename"]] = train.meta["md5"]
    return dict(
        train_x=torch.from_numpy(train.data).permute(0, 3, 1, 2).contiguous(),
        train_y=torch.tensor(train.targets, dtype=torch.int64),
        test_x=torch.from_numpy(test.data).permute(0, 3, 1, 2).contiguous(),
        test_y=torch.tensor(test.targets, dtype=torch.int64),
        provenance=dict(source=source, location=_where(root / train.base_folder, root), lossy=False,
                        copy="official CIFAR-10 python files (MD5-checked by torchvision)",
                        files={f"{k} (md5)": v for k, v in files.items()}),
    )


def _import(name: str, copy: str, mirror: Path | None) -> dict:
    spec = DATASETS[name]
    if copy == "jpeg":  # only ever from a mirror: no public host serves this copy
        if mirror is None:
            raise DataError(f"CIFAR-10 (JPEG copy): it exists only in an offline mirror; give one with --mirror "
                            f"or $DATA_MIRROR. {_fix_hint(name, copy)}")
        archive = mirror / CIFAR_JPEG_FOLDER / CIFAR_JPEG_ARCHIVE
        if not archive.exists():
            raise DataError(f"CIFAR-10 (JPEG copy): {archive} does not exist. {_fix_hint(name, copy)}")
        return _from_cifar_jpeg(archive, mirror)
    if mirror is not None:
        if not mirror.is_dir():
            raise DataError(f"{spec.title}: mirror folder {mirror} does not exist. {_fix_hint(name)}")
        if name == "cifar10":  # the official files, even when the mirror also holds the JPEG copy
            if not (mirror / spec.mirror_folder).is_dir():
                raise DataError(f"CIFAR-10: {mirror / spec.mirror_folder} does not exist. {_fix_hint(name)}")
            return _from_cifar_torchvision(mirror, download=False, source="mirror (official files)")
        folders = [mirror / spec.mirror_folder, mirror / spec.torchvision_class / "raw"]
        return _from_idx(name, folders, source="mirror", root=mirror)
    # No mirror: torchvision's own download (verified again by our checksums).
    import torchvision

    root = data_dir() / "torchvision"
    if name == "cifar10":
        return _from_cifar_torchvision(root, download=True, source="torchvision download")
    try:
        for train in (True, False):
            getattr(torchvision.datasets, spec.torchvision_class)(str(root), train=train, download=True)
    except Exception as exc:
        raise DataError(f"{spec.title}: torchvision could not download it into {root}: {exc}. "
                        f"Without internet, give an offline mirror: {_fix_hint(name)}") from exc
    return _from_idx(name, [root / spec.torchvision_class / "raw"], source="torchvision download", root=root)


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
    raw = _import(name, copy, mirror_dir(mirror))
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
        raise DataError(f"{_title(name, copy)} is not prepared: {tensors_path} is missing. {_fix_hint(name, copy)}")
    prov = json.loads(meta_path.read_text())
    # A cache made before the copies had names holds the JPEG copy under the official name.
    cached = prov.get("copy_name", "jpeg" if prov["lossy"] else OFFICIAL)
    if cached != copy:
        raise DataError(f"{_title(name, copy)}: the cache {tensors_path} holds the {cached} copy, not the "
                        f"{copy} one; re-import it: {_fix_hint(name, copy)}")
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
                        f"rebuild it: {_fix_hint(name, copy)}.")
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
