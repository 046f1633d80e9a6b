"""Every stored run as one tidy table, one row per run: its key and status, its configuration
(the data copy among it), its data, its metrics and its provenance. `lenet_core.runs()` returns it
for a reader's own analysis; the book writes it as the CSV the Reproduce page links."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from .config import RunConfig
from .paths import atomic_write, results_dir

CONFIG = [f.name for f in dataclasses.fields(RunConfig)]
SKIPPED = {"test_confusion_best"}  # a 10x10 matrix, not a column


def _row(record: dict) -> dict:
    row = {"key": record["key"], "status": record["status"]}
    row.update({name: record["config"].get(name) for name in CONFIG})
    row.update(data_title=record["data"].get("title"), data_source=record["data"].get("copy"),
               lossy=record["data"].get("lossy"))
    row.update({k: v for k, v in record["metrics"].items() if k not in SKIPPED and not isinstance(v, (list, dict))})
    row.update({k if k not in row else f"provenance_{k}": v for k, v in record["provenance"].items()
                if not isinstance(v, (list, dict))})
    return row


def runs() -> pd.DataFrame:
    """Every run in the run store (`results/`, or $LENET_RESULTS_DIR), one row each, sorted by
    key. Accuracies are fractions and losses nats, as the records keep them.

        import lenet_core
        df = lenet_core.runs()
        df[df.dataset == "mnist"].groupby("act").test_acc_best.agg(["mean", "std", "count"])
    """
    from . import store

    rows = [_row(r) for path in sorted(results_dir().glob("*.json")) if (r := store.load(path.stem)) is not None]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["key", "status", *CONFIG])


def write_csv(path: str | Path) -> tuple[Path, int]:
    """Write `runs()` as CSV to `path` (atomically); returns the path and the number of rows."""
    table = runs()
    return atomic_write(Path(path), lambda tmp: table.to_csv(tmp, index=False)), len(table)
