"""What datasets there are: their names, classes and copies, the checksums of their official
files, and the error (with its fix) that anything reading them raises."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


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


def fix_hint(name: str, copy: str = OFFICIAL) -> str:
    if copy != OFFICIAL:
        return (f"Fix: `python -m lenet_core data prepare {name} --copy {copy} --force --mirror DIR` from an "
                f"offline mirror that holds it (no public host serves this copy; `make data` prepares it)")
    return (f"Fix: `python -m lenet_core data prepare {name} --force --mirror DIR` from an offline mirror, "
            f"or without --mirror to download through torchvision (`make data` prepares all)")


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
