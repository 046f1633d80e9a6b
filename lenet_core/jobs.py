"""One job of the sweep: a notebook, a dataset and a parameter set, and where its output goes.

Planning (`sweep`), the kernel runner (`kernel`) and the executors (`sweep`'s local one,
`cluster`'s Dask one) all work on this one type; it imports nothing of theirs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .experiments import Experiment
from .paths import project_root

# Rough cost model for the progress estimate: seconds of one notebook that only
# loads stored runs on a warm kernel (bench/notebook_overhead.py: 2.9 s with the
# cores busy), and training images per second of one CPU process.
LOAD_SECONDS = 3.0
IMAGES_PER_SECOND = 10_000.0



def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def executed_dir() -> Path:
    """Executed notebooks: build output under book/, never committed."""
    return Path(os.environ.get("LENET_EXECUTED_DIR", project_root() / "book" / "runs"))


def slug(params: dict) -> str:
    if not params:
        return "default"
    text = "_".join(f"{k}={v}" for k, v in params.items())
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text)


@dataclass
class Job:
    notebook: str
    dataset: str
    params: dict
    profile: str
    experiments: list[Experiment] = field(default_factory=list)
    data_copy: str | None = None  # None: the copy the book publishes

    @property
    def folder(self) -> str:
        """The dataset's folder of executed notebooks; another copy than the published one has its own."""
        return self.dataset if self.data_copy is None else f"{self.dataset}-{self.data_copy}"

    @property
    def name(self) -> str:
        return f"{self.notebook}/{self.folder}/{slug(self.params)}"

    @property
    def output(self) -> Path:
        return executed_dir() / self.notebook / self.folder / f"{slug(self.params)}.ipynb"

    @property
    def parameters(self) -> dict:
        """The notebook's papermill parameters."""
        copy = {} if self.data_copy is None else {"data_copy": self.data_copy}
        return dict(dataset=self.dataset, profile=self.profile, **copy, **self.params)

    @property
    def configs(self):
        return [c for e in self.experiments for c in e.configs]

    def pending(self) -> list:
        """Configurations of this job not yet in the run store."""
        from .store import load, run_key

        return [c for c in self.configs if load(run_key(c)) is None]

    def done(self) -> bool:
        source = notebooks_dir() / f"{self.notebook}.ipynb"
        return (self.output.exists() and self.output.stat().st_mtime >= source.stat().st_mtime
                and not self.pending())

    def cost(self) -> float:
        """Estimated seconds: loading plus training what is not stored yet."""
        images = sum(c.epochs * (c.train_size or 54_000) for c in self.pending())
        return LOAD_SECONDS + images / IMAGES_PER_SECOND


def one_line(error: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()
    # papermill's message ends with the exception line of the failing cell
    meaningful = [line for line in text if line.strip() and not line.startswith("-")]
    return (meaningful[-1] if meaningful else type(error).__name__)[:300]
