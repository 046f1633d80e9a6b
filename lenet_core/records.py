"""Stored runs read through names: one run (`Run`) and the seeds of one setting (`Runs`).

The store keeps each run as a JSON record (`store.load`); the tables, figures, pages and
notebooks read them through these two types instead of indexing the dicts, so that which runs
count (the ones that did not diverge) and how a metric is drawn from them is said once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

from .config import RunConfig
from .stats import Summary, summarize


@dataclass(frozen=True)
class Run:
    """One stored run: its record as the store keeps it, read through properties."""

    record: dict

    @property
    def key(self) -> str:
        return self.record.get("key", "")

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def ok(self) -> bool:
        """Trained to the end (not diverged)."""
        return self.status == "ok"

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.record["config"])

    @property
    def seed(self) -> int:
        return self.record["config"]["seed"]

    @property
    def dataset(self) -> str:
        return self.record["config"]["dataset"]

    @property
    def metrics(self) -> dict:
        return self.record["metrics"]

    @property
    def history(self) -> list[dict]:
        return self.record["history"]

    @property
    def provenance(self) -> dict:
        return self.record["provenance"]

    @property
    def data(self) -> dict:
        return self.record["data"]

    @property
    def diagnostics(self) -> dict:
        return self.record["diagnostics"]

    def metric(self, name: str) -> float | None:
        """A metric of the record (None where the run has none, e.g. after diverging)."""
        return self.metrics.get(name)


@dataclass
class Runs:
    """The stored runs of one setting, one per seed: `expected` is how many seeds were asked for
    (0: as many as there are). Accepts records or `Run`s; iterates over `Run`s."""

    runs: list[Run] = field(default_factory=list)
    expected: int = 0

    def __init__(self, runs: Iterable[Run | dict] = (), expected: int = 0):
        self.runs = [r if isinstance(r, Run) else Run(r) for r in runs]
        self.expected = expected or len(self.runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, i: int) -> Run:
        return self.runs[i]

    @property
    def ok(self) -> list[Run]:
        """The runs that trained to the end: the ones every number is drawn from."""
        return [r for r in self.runs if r.ok]

    @property
    def diverged(self) -> int:
        return len(self.runs) - len(self.ok)

    def values(self, metric: str = "test_acc_best") -> list[float]:
        """`metric` of every run that did not diverge (and has it)."""
        return [v for v in (r.metric(metric) for r in self.ok) if v is not None]

    def summary(self, metric: str = "test_acc_best") -> Summary:
        return summarize(self.values(metric))

    def total(self, what: str) -> float:
        """The sum of a provenance figure (e.g. "train_seconds") over every run."""
        return sum(r.provenance[what] for r in self.runs)
