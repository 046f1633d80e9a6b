"""Tables of stored runs: per seed, and the mean with its 95% confidence interval.

Every function takes the runs of one setting as `Runs` or as the records `Experiment.run`
and the store return.
"""

from __future__ import annotations

import pandas as pd

from .records import Runs
from .stats import reproduced, summarize

# record metric -> column title; accuracies are shown in percent
SEED_COLUMNS = {
    "val_acc_best": "val acc (best epoch)",
    "test_acc_best": "test acc (best-val epoch)",
    "test_acc_last": "test acc (last epoch)",
}


def seed_table(records: Runs | list[dict]) -> pd.DataFrame:
    """One row per seed, then a row with mean ± 95% CI of each accuracy column."""
    runs = Runs(records)
    rows = []
    for r in runs:
        row = {"seed": r.seed, "status": r.status,
               "best epoch": r.metric("best_epoch"), "epochs run": r.metric("epochs_run")}
        row.update({title: _pct(r.metric(key)) for key, title in SEED_COLUMNS.items()})
        row["train s"] = round(r.provenance["train_seconds"], 1)
        rows.append(row)
    table = pd.DataFrame(rows)
    summary = {"seed": "mean ± 95% CI", "status": f"{len(runs.ok)}/{len(runs)} ok",
               "best epoch": "", "epochs run": ""}
    summary.update({title: runs.summary(key).format() for key, title in SEED_COLUMNS.items()})
    summary["train s"] = round(runs.total("train_seconds"), 1)
    return pd.concat([table.astype(object), pd.DataFrame([summary])], ignore_index=True)


def headline(records: Runs | list[dict], metric: str = "test_acc_best") -> str:
    """'test accuracy 98.91 ± 0.12 (n=3) at the best-validation epoch; data: ...' for prose."""
    runs = Runs(records)
    text = f"test accuracy {runs.summary(metric).format()} %"
    text += " at the best-validation epoch" if metric.endswith("best") else " at the last epoch"
    if runs.diverged:
        text += f"; {runs.diverged} of {len(runs)} seeds diverged"
    if runs:
        text += f"; data: {runs[0].data['title']}, {runs[0].data['copy']}"
    return text


def _pct(value):
    return None if value is None else round(100 * value, 2)


def gap_table(records: Runs | list[dict]) -> pd.DataFrame:
    """Train and validation accuracy at the last epoch, and the gap between them, per seed."""
    rows = []
    for r in Runs(records):
        last = r.history[-1]
        if last["train_acc"] is None:
            continue
        rows.append({"seed": r.seed, "train acc": _pct(last["train_acc"]),
                     "val acc": _pct(last["val_acc"]),
                     "gap (points)": round(100 * (last["train_acc"] - last["val_acc"]), 2)})
    return pd.DataFrame(rows)


def stopping_table(records: Runs | list[dict]) -> pd.DataFrame:
    """Per seed: how many epochs early stopping let run (of how many), the best epoch, and test
    accuracy with the last epoch's weights and with the restored best ones."""
    return pd.DataFrame([{"seed": r.seed, "epochs run": r.metric("epochs_run"), "of": r.config.epochs,
                          "best epoch": r.metric("best_epoch"), "stopped early": r.metric("stopped_early"),
                          "test acc, last epoch": r.metric("test_acc_last"),
                          "test acc, restored best": r.metric("test_acc_best")} for r in Runs(records)])


def sparsity_table(records: Runs | list[dict]) -> pd.DataFrame:
    """Per seed that did not diverge: the fraction of weights that are (near) zero, over the whole
    network and per layer (`diagnostics.weight_summary`)."""
    return pd.DataFrame({f"seed {r.seed}": {"all": r.diagnostics["weights"]["sparsity"],
                                            **r.diagnostics["weights"]["layer_sparsity"]}
                         for r in Runs(records).ok}).T.round(4)


def _stored_settings(notebook: str, dataset: str, profile: str, seeds=None, data_copy: str | None = None):
    """(parameter set, experiment label, stored runs) for every parameter set the sweep runs for
    `notebook` on `dataset` that the dataset allows, from the run store only (nothing is trained)."""
    from .executions import notebook_experiments
    from .experiments import param_sets

    for params in param_sets(notebook, profile):
        try:
            exps = notebook_experiments(notebook, dataset, profile, seeds=seeds, data_copy=data_copy, **params)
        except ValueError:
            continue  # not applicable to this dataset
        for exp in exps:
            yield params, exp.label, exp.stored_runs()


def sweep_table(notebook: str, dataset: str, profile: str, seeds=None, data_copy: str | None = None) -> pd.DataFrame:
    """Every parameter set the sweep runs for `notebook`, from the run store only (nothing is
    trained): mean ± 95% CI of test accuracy, seeds stored, seeds diverged (on `data_copy`,
    default the copy the book publishes)."""
    return pd.DataFrame([{**params, **({"rung": label} if label else {}),
                          "test acc (best-val epoch)": stored.summary().format(),
                          "seeds stored": f"{len(stored)}/{stored.expected}",
                          "diverged": stored.diverged}
                         for params, label, stored in _stored_settings(notebook, dataset, profile, seeds, data_copy)])


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def sharpness_table(records: Runs | list[dict]) -> pd.DataFrame:
    """Per seed that did not diverge: the training loss at the trained weights and how much it rises
    when they move by a step of length rho (`diagnostics.sharpness`), along the gradient and along
    random directions."""
    return pd.DataFrame([{"seed": r.seed, "rho": r.diagnostics["sharpness"]["rho"],
                          "training loss": round(r.diagnostics["sharpness"]["loss"], 4),
                          "rise, adversarial": round(r.diagnostics["sharpness"]["adversarial"], 4),
                          "rise, random": round(r.diagnostics["sharpness"]["random"], 5)}
                         for r in Runs(records).ok if "sharpness" in (r.diagnostics or {})])


def diagnostics_table(notebook: str, dataset: str, profile: str, data_copy: str | None = None) -> pd.DataFrame:
    """Every parameter set of `notebook` in the store, with the means over its seeds of what the
    records measure of the trained network: the sharpness rises, the stable rank of what training
    changed in each hidden weight matrix (`diagnostics.update_spectrum`), and the train-validation
    gap at the last epoch. Nothing is trained."""
    rows = []
    for params, label, stored in _stored_settings(notebook, dataset, profile, data_copy=data_copy):
        ok = [r for r in stored.ok if "sharpness" in (r.diagnostics or {})]
        row = {**params, "seeds": len(ok),
               "sharpness rise, adversarial": _mean(r.diagnostics["sharpness"]["adversarial"] for r in ok),
               "sharpness rise, random": _mean(r.diagnostics["sharpness"]["random"] for r in ok)}
        for layer in (ok[0].diagnostics["update_spectrum"] if ok else {}):
            row[f"stable rank of the {layer} update"] = _mean(r.diagnostics["update_spectrum"][layer]["stable_rank"]
                                                              for r in ok)
        row["train - val (points)"] = _mean(100 * (r.history[-1]["train_acc"] - r.history[-1]["val_acc"]) for r in ok)
        rows.append(row)
    return pd.DataFrame(rows)


def overview(records: Runs | list[dict], label: str = "") -> None:
    """What every notebook shows first: the seed table, the headline, the learning curves,
    and where the classes are many and confusable, the confusion matrix of the first seed."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    from . import plots
    from .data import DATASETS

    runs = Runs(records)
    display(seed_table(runs))
    display(Markdown(f"**{label or 'This configuration'}**: {headline(runs)}."))
    groups = {label or "runs": runs}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    plots.learning_curves(groups, metric="train_loss", ax=axes[0])
    plots.learning_curves(groups, metric="val_loss", ax=axes[1])
    plots.learning_curves(groups, metric="val_acc", ax=axes[2])
    plt.show()
    if runs.ok and runs[0].dataset != "mnist":
        plots.confusion(runs.ok[0], DATASETS[runs[0].dataset].classes)
        plt.show()


def _published_values(source: dict, records: Runs | list[dict]) -> tuple[list[float], list[float]]:
    """Ours in the source's metric, per seed that did not diverge: at the best-validation
    epoch and at the last epoch (the sources report the end of training)."""
    runs = Runs(records)
    best = runs.values(source["published_metric"])
    if source["published_metric"].startswith("val"):
        last = [r.history[-1]["val_acc"] for r in runs.ok]
    else:
        last = runs.values("test_acc_last")
    return best, last


def published_comparison(source: dict, records: Runs | list[dict]) -> pd.DataFrame:
    """A published setup's number beside ours in the same metric (mean ± 95% CI over seeds),
    the range of our seeds, how far our mean is from the published number, and whether the
    published run lies where one more run of ours would (stats.reproduced)."""
    best, last = _published_values(source, records)
    mean = summarize(best).mean
    return pd.DataFrame([{
        "setup": source["title"], "published": source["published"],
        "ours, best-val epoch (%)": summarize(best).format(),
        "ours, last epoch (%)": summarize(last).format(),
        "our seeds (%)": f"{100 * min(best):.2f} to {100 * max(best):.2f}" if best else "–",
        "ours − published (points)": f"{100 * (mean - source['published_value']):+.2f}" if best else "–",
        "reproduced": reproduced(best, source["published_value"]),
        "our metric": "validation accuracy" if source["published_metric"].startswith("val") else "test accuracy",
        "diverged": len(records) - len(best)}])


def published_curves(source: dict, records: Runs | list[dict]):
    """Our validation accuracy per epoch (mean, band over the seeds) and the published number
    as a horizontal line (a test accuracy where the source reports test accuracy)."""
    from . import plots

    fig = plots.learning_curves({f"ours ({len(records)} seeds)": records}, metric="val_acc")
    what = "validation" if source["published_metric"].startswith("val") else "test"
    return plots.reference_line(fig.axes[0], source["published_value"],
                                f"published {what} accuracy ({100 * source['published_value']:g}%)")


def ladder_table(rungs, records: dict[str, Runs | list[dict]]) -> pd.DataFrame:
    """One row per rung of the modernization ladder: what it changed and its test accuracy."""
    rows, before = [], None
    for rung in rungs:
        now = rung.config.to_dict()
        changed = [f"{k}={v}" for k, v in now.items() if before is not None and v != before[k]]
        runs = Runs(records[rung.label])
        rows.append({"rung": rung.label, "change": ", ".join(changed) or "(the 1998 network)",
                     "test acc (best-val epoch)": runs.summary().format(), "diverged": runs.diverged})
        before = now
    return pd.DataFrame(rows)


def one_change_table(weighed, worths) -> pd.DataFrame:
    """Each change of a ladder in both views (`lenet_core.changes`): what is undone at the top and
    what that costs, what is applied alone to the start and what it gains (points of test accuracy,
    95% CI, the verdict of each view's Holm family), and the difference between the two."""
    from .changes import worth_rows

    return pd.DataFrame(worth_rows(weighed, worths))


def candidates_table(weighed, runs_of=None) -> pd.DataFrame:
    """Each technique after 2015 added to the top of the ladder alone (`lenet_core.changes`): what it
    changes, its difference from the top on validation accuracy (95% CI) with the verdict that decides
    whether it earns a rung, and on test accuracy. `runs_of`: the runs of an experiment (default:
    the store's)."""
    from .changes import candidate_rows

    return pd.DataFrame(candidate_rows(weighed, runs_of))


def tuned_ladder_table(searched, shared: dict, dataset: str, profile: str, seeds=None,
                       data_copy: str | None = None) -> pd.DataFrame:
    """Each rung at its recipe's learning rate (`shared`: the ladder's runs by rung name) and at its
    own, searched on validation (`searched`: `tuning.run_ladder`'s result); the rung at its own rate
    is trained or loaded here."""
    from .tuning import tuned

    rows = []
    for name, values, found in searched:
        own = tuned(found.notebook, dataset, profile, seeds, data_copy, found, **values).run(log=None) \
            if found.chosen else Runs([])
        rows.append({"rung": name, "rates searched": ", ".join(f"{lr:g}" for lr in found.grid),
                     "chosen": "–" if found.chosen is None else f"{found.chosen:g}",
                     "at the recipe's rate": Runs(shared[name]).summary().format(),
                     "at its own rate": own.summary().format()})
    return pd.DataFrame(rows)
