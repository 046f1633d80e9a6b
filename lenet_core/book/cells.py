"""One cell of a table: the stored runs of one setting on one dataset, and the numbers drawn from them."""

from __future__ import annotations

from .. import tuning
from ..executions import notebook_experiments
from ..experiments import check_notebook, kind, param_sets
from ..records import Runs
from .markdown import pct


class Cell(Runs):
    """The stored runs of one experiment (one setting on one dataset, all seeds), or a setting
    the dataset does not allow (`applicable` False)."""

    def __init__(self, runs=(), expected: int = 0, applicable: bool = True):
        super().__init__(runs, expected)
        self.applicable = applicable

    @property
    def missing(self) -> str:
        """Why the cell has no value to show: not applicable, nothing stored, or every seed diverged."""
        return "n/a" if not self.applicable else "no runs stored" if not self.runs else "diverged"

    def text(self, metric: str = "test_acc_best") -> str:
        """'98.91 ± 0.12 (n=3)', or what is missing: '– (0/3 seeds stored)', 'diverged (3/3)'."""
        if not self.applicable:
            return "n/a"
        if not self.runs:
            return f"– (0/{self.expected} seeds stored)"
        if not self.ok:
            return f"diverged ({self.diverged}/{len(self.runs)})"
        text = self.summary(metric).format()
        notes = []
        if len(self.runs) < self.expected:
            notes.append(f"{len(self.runs)}/{self.expected} seeds stored")
        if self.diverged:
            notes.append(f"{self.diverged} diverged")
        return text + (f", {', '.join(notes)}" if notes else "")


def cell_of(exp) -> Cell:
    stored = exp.stored_runs()
    return Cell(stored, stored.expected)


def experiment_cell(notebook: str, dataset: str, profile: str, params: dict, seeds=None) -> Cell:
    """The stored runs of one setting (its seeds as the specification gives them, unless `seeds`)."""
    try:
        exp = notebook_experiments(notebook, dataset, profile, seeds=seeds, **params)[0]
    except ValueError:  # a combination this dataset does not allow
        return Cell(applicable=False)
    return cell_of(exp)


def own_rate_cells(notebook: str, dataset: str, profile: str) -> list[Cell] | None:
    """Each parameter set of the grid `notebook` on `dataset` at its own learning rate, in the order
    of the sets, once every one of their searches in `profile` has chosen; None where the entry
    searches no rate, the profile's searches are being trained, or one of them is not complete."""
    if not tuning.tuned_sets(notebook, profile) or kind(check_notebook(notebook)) != "grid":
        return None
    cells = []
    for params in param_sets(notebook, profile):
        try:
            found = tuning.search(notebook, dataset, profile, **params)
        except ValueError:  # a combination this dataset does not allow
            cells.append(Cell(applicable=False))
            continue
        if found.chosen is None:
            return None
        cells.append(cell_of(tuning.tuned(notebook, dataset, profile, found=found, **params)))
    return cells


def epochs_to_target(cell: Cell, target: float) -> str:
    if not cell.applicable:
        return "n/a"
    if not cell.runs:
        return "–"
    reached = []
    for r in cell.runs:
        hit = next((h["epoch"] for h in r.history if h["val_acc"] is not None and h["val_acc"] >= target), None)
        if hit is not None:
            reached.append(hit)
    if not reached:
        return "not reached"
    mean = sum(reached) / len(reached)
    return f"{mean:.1f} ({len(reached)}/{len(cell.runs)} seeds)"


def last_epoch_gap(cell: Cell) -> str:
    if not cell.applicable:
        return "n/a"
    last = [r.history[-1] for r in cell.ok if r.history and r.history[-1]["train_acc"] is not None]
    if not last:
        return "–" if not cell.runs else "diverged"
    train = sum(h["train_acc"] for h in last) / len(last)
    val = sum(h["val_acc"] for h in last) / len(last)
    return f"{100 * (train - val):+.2f} ({pct(train)} − {pct(val)}, n={len(last)})"


def stored_of(configs) -> tuple[int, int]:
    """(how many of these runs are in the store, how many there are), each run counted once."""
    from ..store import load, run_key

    keys = {run_key(c) for c in configs}
    return sum(load(k) is not None for k in keys), len(keys)
