"""One cell of a table: the stored runs of one setting on one dataset, and the numbers drawn from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data import DataError
from ..experiments import notebook_experiments
from ..stats import Summary, summarize, welch_p
from .markdown import pct


@dataclass
class Cell:
    """The stored runs of one experiment (one setting on one dataset, all seeds)."""

    expected: int = 0  # seeds the profile asks for
    records: list[dict] = field(default_factory=list)  # the stored ones
    applicable: bool = True

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "ok"]

    @property
    def missing(self) -> str:
        """Why the cell has no value to show: not applicable, nothing stored, or every seed diverged."""
        return "n/a" if not self.applicable else "no runs stored" if not self.records else "diverged"

    def values(self, metric: str = "test_acc_best") -> list[float]:
        return [r["metrics"][metric] for r in self.ok if r["metrics"].get(metric) is not None]

    def summary(self, metric: str = "test_acc_best") -> Summary:
        return summarize(self.values(metric))

    def text(self, metric: str = "test_acc_best") -> str:
        """'98.91 ± 0.12 (n=3)', or what is missing: '– (0/3 seeds stored)', 'diverged (3/3)'."""
        if not self.applicable:
            return "n/a"
        if not self.records:
            return f"– (0/{self.expected} seeds stored)"
        diverged = len(self.records) - len(self.ok)
        if not self.ok:
            return f"diverged ({diverged}/{len(self.records)})"
        text = self.summary(metric).format()
        notes = []
        if len(self.records) < self.expected:
            notes.append(f"{len(self.records)}/{self.expected} seeds stored")
        if diverged:
            notes.append(f"{diverged} diverged")
        return text + (f", {', '.join(notes)}" if notes else "")


def stored_record(config) -> dict | None:
    from ..store import load, run_key

    try:
        return load(run_key(config))
    except DataError:  # the dataset is not prepared here, so no key can be computed
        return None


def cell_of(exp) -> Cell:
    return Cell(len(exp.configs), [r for r in map(stored_record, exp.configs) if r is not None])


def experiment_cell(notebook: str, dataset: str, profile: str, params: dict) -> Cell:
    try:
        exp = notebook_experiments(notebook, dataset, profile, **params)[0]
    except ValueError:  # a combination this dataset does not allow
        return Cell(applicable=False)
    return cell_of(exp)


def welch(a: list[float], b: list[float]) -> float:
    import warnings

    with warnings.catch_warnings():  # nearly equal seeds: scipy warns about precision, the p is still fine
        warnings.simplefilter("ignore", RuntimeWarning)
        return welch_p(a, b)


def epochs_to_target(cell: Cell, target: float) -> str:
    if not cell.applicable:
        return "n/a"
    if not cell.records:
        return "–"
    reached = []
    for r in cell.records:
        hit = next((h["epoch"] for h in r["history"] if h["val_acc"] is not None and h["val_acc"] >= target), None)
        if hit is not None:
            reached.append(hit)
    if not reached:
        return "not reached"
    mean = sum(reached) / len(reached)
    return f"{mean:.1f} ({len(reached)}/{len(cell.records)} seeds)"


def last_epoch_gap(cell: Cell) -> str:
    if not cell.applicable:
        return "n/a"
    last = [r["history"][-1] for r in cell.ok if r["history"] and r["history"][-1]["train_acc"] is not None]
    if not last:
        return "–" if not cell.records else "diverged"
    train = sum(h["train_acc"] for h in last) / len(last)
    val = sum(h["val_acc"] for h in last) / len(last)
    return f"{100 * (train - val):+.2f} ({pct(train)} − {pct(val)}, n={len(last)})"
