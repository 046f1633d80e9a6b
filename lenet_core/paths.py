"""Where the engine keeps its files: data cache, run store, checkpoints.

Inside a source checkout (the usual case: `pip install -e .`) everything lives
next to the code, so a clone is self-contained. An installed copy falls back to
the user's cache folder. Each location can be overridden by an environment
variable, which is how the tests isolate themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout holding this package, or the user cache when installed."""
    if (_PACKAGE.parent / "pyproject.toml").exists():
        return _PACKAGE.parent
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lenet_core"


def _dir(env: str, default: str) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser().resolve() if value else project_root() / default


def data_dir() -> Path:
    """Prepared datasets (uint8 tensors) and torchvision downloads. Env: LENET_DATA_DIR."""
    return _dir("LENET_DATA_DIR", "data")


def results_dir() -> Path:
    """The run store: one small JSON per run, committed. Env: LENET_RESULTS_DIR."""
    return _dir("LENET_RESULTS_DIR", "results")


def checkpoints_dir() -> Path:
    """Model weights of stored runs, never committed. Env: LENET_CHECKPOINTS_DIR."""
    return _dir("LENET_CHECKPOINTS_DIR", "checkpoints")


def mirror_dir(mirror: str | os.PathLike | None = None) -> Path | None:
    """An offline dataset mirror: the argument, else $DATA_MIRROR, else none."""
    value = mirror if mirror is not None else os.environ.get("DATA_MIRROR")
    return Path(value).expanduser().resolve() if value else None


def atomic_write(path: Path, write) -> Path:
    """Write `path` through a temp file in the same folder, then rename it in.

    `write(tmp_path)` does the writing. A crash or an exception at any point
    leaves either the old file or none, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
