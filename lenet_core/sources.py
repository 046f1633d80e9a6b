"""Reading each dataset's raw files into uint8 tensors: the IDX files of MNIST and Fashion-MNIST
(checked against their SHA-256), CIFAR-10's official python files through torchvision's own
`CIFAR10` class (checked against its MD5 table first), and the JPEG copy of CIFAR-10 from its archive.
`import_raw` picks the reader for a dataset, a copy and a mirror (or torchvision's download)."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

import numpy as np
import torch

from .catalog import (CIFAR_JPEG_ARCHIVE, CIFAR_JPEG_FOLDER, CIFAR_JPEG_NOTE, CIFAR_JPEG_SHA256, DATASETS,
                      IDX_SHA256, DataError, file_md5, fix_hint, bytes_sha256)
from .paths import data_dir


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
                    raise DataError(f"{DATASETS[name].title}: cannot read {path}: {exc}. {fix_hint(name)}") from exc
                if bytes_sha256(raw[stem]) != wanted[stem]:
                    raise DataError(
                        f"{DATASETS[name].title}: {path} is corrupted (SHA-256 of its content does not "
                        f"match the official {stem}). Replace it with a good copy, then {fix_hint(name)}."
                    )
            return raw, folder
    looked = ", ".join(str(f) for f in folders)
    raise DataError(f"{DATASETS[name].title}: the four IDX files were not found; looked in {looked}. {fix_hint(name)}")


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
                        files={k: bytes_sha256(v) for k, v in raw.items()}),
    )


def _from_cifar_jpeg(archive: Path, root: Path) -> dict:
    from PIL import Image  # only at prepare time

    spec = DATASETS["cifar10"]
    digest = bytes_sha256(archive.read_bytes())
    if digest != CIFAR_JPEG_SHA256:
        raise DataError(f"CIFAR-10 (JPEG copy): {archive} is corrupted (SHA-256 {digest} does not match "
                        f"{CIFAR_JPEG_SHA256}). Replace it, then {fix_hint('cifar10', 'jpeg')}.")
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
                            f"{expected}. Replace it, then {fix_hint('cifar10', 'jpeg')}.")
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
                            f"{fix_hint('cifar10')}")
        found[name] = file_md5(path)
        if found[name] != md5:
            raise DataError(f"CIFAR-10: {path} is corrupted: its MD5 is {found[name]}, the official file's "
                            f"(torchvision's check) is {md5}. Replace it with a good copy, then "
                            f"{fix_hint('cifar10')}.")
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
                        f"under {root}: {exc}. {fix_hint('cifar10')}") from exc
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


def import_raw(name: str, copy: str, mirror: Path | None) -> dict:
    """`copy` of `name` as uint8 tensors and their provenance: from `mirror`, or without one
    through torchvision's download (the JPEG copy only ever from a mirror)."""
    spec = DATASETS[name]
    if copy == "jpeg":  # only ever from a mirror: no public host serves this copy
        if mirror is None:
            raise DataError(f"CIFAR-10 (JPEG copy): it exists only in an offline mirror; give one with --mirror "
                            f"or $DATA_MIRROR. {fix_hint(name, copy)}")
        archive = mirror / CIFAR_JPEG_FOLDER / CIFAR_JPEG_ARCHIVE
        if not archive.exists():
            raise DataError(f"CIFAR-10 (JPEG copy): {archive} does not exist. {fix_hint(name, copy)}")
        return _from_cifar_jpeg(archive, mirror)
    if mirror is not None:
        if not mirror.is_dir():
            raise DataError(f"{spec.title}: mirror folder {mirror} does not exist. {fix_hint(name)}")
        if name == "cifar10":  # the official files, even when the mirror also holds the JPEG copy
            if not (mirror / spec.mirror_folder).is_dir():
                raise DataError(f"CIFAR-10: {mirror / spec.mirror_folder} does not exist. {fix_hint(name)}")
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
                        f"Without internet, give an offline mirror: {fix_hint(name)}") from exc
    return _from_idx(name, [root / spec.torchvision_class / "raw"], source="torchvision download", root=root)
