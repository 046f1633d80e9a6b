"""Tables of run records: per seed, and the mean with its 95% confidence interval."""

from __future__ import annotations

import pandas as pd

from .stats import summarize

# record metric -> column title; accuracies are shown in percent
SEED_COLUMNS = {
    "val_acc_best": "val acc (best epoch)",
    "test_acc_best": "test acc (best-val epoch)",
    "test_acc_last": "test acc (last epoch)",
}


def seed_table(records: list[dict]) -> pd.DataFrame:
    """One row per seed, then a row with mean ± 95% CI of each accuracy column."""
    rows = []
    for r in records:
        m = r["metrics"]
        row = {"seed": r["config"]["seed"], "status": r["status"],
               "best epoch": m["best_epoch"], "epochs run": m["epochs_run"]}
        row.update({title: _pct(m[key]) for key, title in SEED_COLUMNS.items()})
        row["train s"] = round(r["provenance"]["train_seconds"], 1)
        rows.append(row)
    table = pd.DataFrame(rows)
    ok = [r for r in records if r["status"] == "ok"]
    summary = {"seed": "mean ± 95% CI", "status": f"{len(ok)}/{len(records)} ok",
               "best epoch": "", "epochs run": ""}
    summary.update({title: summarize(r["metrics"][key] for r in ok).format()
                    for key, title in SEED_COLUMNS.items()})
    summary["train s"] = round(sum(r["provenance"]["train_seconds"] for r in records), 1)
    return pd.concat([table.astype(object), pd.DataFrame([summary])], ignore_index=True)


def headline(records: list[dict], metric: str = "test_acc_best") -> str:
    """'test accuracy 98.91 ± 0.12 (n=3) at the best-validation epoch; data: ...' for prose."""
    ok = [r for r in records if r["status"] == "ok"]
    diverged = len(records) - len(ok)
    text = f"test accuracy {summarize(r['metrics'][metric] for r in ok).format()} %"
    text += " at the best-validation epoch" if metric.endswith("best") else " at the last epoch"
    if diverged:
        text += f"; {diverged} of {len(records)} seeds diverged"
    if records:
        text += f"; data: {records[0]['data']['title']}, {records[0]['data']['copy']}"
    return text


def _pct(value):
    return None if value is None else round(100 * value, 2)
