"""Stored runs read through names: which runs count, and what is drawn from them."""

import math

import pandas as pd
import pytest

from lenet_core import report
from lenet_core.config import RunConfig
from lenet_core.records import Run, Runs


def record(seed: int, acc: float | None, status: str = "ok") -> dict:
    config = RunConfig(seed=seed, epochs=2)
    return dict(key=f"mnist-{seed:016x}", config=config.to_dict(), status=status,
                data=dict(title="MNIST", copy="official IDX files"),
                history=[dict(epoch=1, train_acc=0.5, val_acc=0.5), dict(epoch=2, train_acc=0.9, val_acc=acc)],
                metrics=dict(test_acc_best=acc, test_acc_last=acc, best_epoch=2, epochs_run=2, stopped_early=False),
                provenance=dict(train_seconds=1.5), diagnostics=dict(dead_fraction={"C1": 0.0}))


def test_a_run_reads_its_record_through_names():
    run = Run(record(3, 0.97))
    assert (run.key, run.seed, run.status, run.ok, run.dataset) == ("mnist-0000000000000003", 3, "ok", True, "mnist")
    assert run.config == RunConfig(seed=3, epochs=2)
    assert run.metric("test_acc_best") == 0.97 and run.metric("no_such_metric") is None
    assert run.history[-1]["val_acc"] == 0.97 and run.diagnostics["dead_fraction"] == {"C1": 0.0}


def test_only_runs_that_did_not_diverge_count():
    runs = Runs([record(0, 0.90), record(1, None, "diverged"), record(2, 0.94)], expected=5)
    assert len(runs) == 3 and runs.expected == 5 and runs.diverged == 1
    assert [r.seed for r in runs.ok] == [0, 2]
    assert runs.values() == [0.90, 0.94]
    summary = runs.summary()
    assert summary.n == 2 and summary.mean == pytest.approx(0.92)
    assert runs.total("train_seconds") == 4.5  # cost counts every run, diverged ones too
    assert [r.seed for r in Runs(runs)] == [0, 1, 2]  # runs pass through as they are
    assert Runs([record(0, 0.9)]).expected == 1  # by default as many as there are


def test_no_runs_summarize_to_nothing():
    runs = Runs(expected=3)
    assert (len(runs), runs.ok, runs.values(), runs.diverged) == (0, [], [], 0)
    assert runs.summary().n == 0 and math.isnan(runs.summary().mean)


def test_the_tables_read_runs_and_records_alike():
    records = [record(0, 0.90), record(1, None, "diverged"), record(2, 0.94)]
    for given in (records, Runs(records)):
        table = report.seed_table(given)
        assert list(table["seed"]) == [0, 1, 2, "mean ± 95% CI"]
        assert table["status"].iloc[-1] == "2/3 ok"
        restored = list(report.stopping_table(given)["test acc, restored best"])
        assert restored[0::2] == [0.90, 0.94] and math.isnan(restored[1])  # pandas shows None as nan
        assert "1 of 3 seeds diverged" in report.headline(given)


def _measured(seed: int, adversarial: float, rank: float) -> dict:
    rec = record(seed, 0.9)
    rec["diagnostics"].update(sharpness=dict(rho=0.05, loss=0.1, adversarial=adversarial, random=0.001),
                              update_spectrum={"F6": dict(singular_values=[1.0, 0.5], stable_rank=rank)})
    return rec


def test_the_sharpness_table_has_a_row_per_seed_that_did_not_diverge():
    table = report.sharpness_table([_measured(0, 0.2, 3.0), record(1, None, "diverged"), _measured(2, 0.4, 5.0)])
    assert list(table["seed"]) == [0, 2] and list(table["rise, adversarial"]) == [0.2, 0.4]
    assert report.sharpness_table([record(0, 0.9)]).empty  # a record from before the measurement


def test_the_diagnostics_table_averages_each_setting_over_its_stored_seeds(monkeypatch):
    from lenet_core.records import Runs as RunsOf

    stored = {"none": RunsOf([_measured(0, 0.2, 3.0), _measured(1, 0.4, 5.0), record(2, None, "diverged")]),
              "mixup": RunsOf([record(0, 0.9)])}
    monkeypatch.setattr(report, "_stored_settings",
                        lambda *a, **k: iter([({"mix": m}, "", runs) for m, runs in stored.items()]))
    table = report.diagnostics_table("mixing", "mnist", "quick")
    none, mixup = table.to_dict("records")
    assert none["seeds"] == 2 and none["sharpness rise, adversarial"] == pytest.approx(0.3)
    assert none["stable rank of the F6 update"] == 4.0 and none["train - val (points)"] == pytest.approx(0.0)
    assert mixup["seeds"] == 0 and pd.isna(mixup["sharpness rise, adversarial"])  # nothing measured: no number
