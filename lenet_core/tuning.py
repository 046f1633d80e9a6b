"""Each setting at its own learning rate: a grid searched on validation by successive halving.

An entry of the sweep specification with `lr_factors` searches, for each of its parameter sets,
the rates `factor x the set's own lr`. The rule is the specification's `lr_search`, one for the
whole book:

1. every grid value trains one seed (`seed`) for `short_fraction` of the profile's epochs;
2. the `keep` values with the lowest validation loss (the best epoch's) train the full length;
3. of those, the one with the lowest validation loss is the setting's rate (ties: the smaller
   rate), and the chapter's seeds train at it.

Only validation chooses; the test set chooses nothing. The search seed's full-length run at the
chosen rate is also that seed's run of the tuned setting (the same configuration), so its own
validation numbers are slightly optimistic; its test numbers are not.

    found = search("optimization", "mnist", "quick", optimizer="sgd", lr=0.05, schedule="constant")
    found = run(found)          # trains what the store lacks, stage by stage
    found.chosen                # the rate; tuned(...) is the Experiment at it
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .config import RunConfig
from .experiments import (Experiment, build_config, check_notebook, experiment, kind, load_spec, param_sets,
                          profile_settings, rung_changes)

SELECT = "val_loss_best"  # what chooses: the best epoch's validation loss, lower is better


@dataclass
class Search:
    """The learning-rate search of one parameter set on one dataset, as far as the store has it."""

    notebook: str
    dataset: str
    profile: str
    params: dict
    grid: list[float]  # the rates searched, ascending
    short: list[Experiment]  # one per rate: the search seed, a fraction of the epochs
    long: list[Experiment]  # the `keep` best short ones at full length; empty until every short run is stored
    long_scores: list[float | None] = field(default_factory=list)  # theirs, read once from the store

    @property
    def chosen(self) -> float | None:
        """The rate chosen, once every run of both stages is stored; else None."""
        if not self.long or any(s is None for s in self.long_scores):
            return None
        return min(zip(self.long_scores, (e.config.lr for e in self.long)))[1]

    def experiments(self) -> list[Experiment]:
        """Every experiment of the search known so far (the long stage once the short one is stored)."""
        return self.short + self.long

    def table(self):
        """The rows as a table: per rate and stage, the search seed's validation loss and accuracy
        at its best epoch (%), and which rate was chosen."""
        import pandas as pd

        return pd.DataFrame([{"lr": r["lr"], "stage": r["stage"], "epochs": r["epochs"], "status": r["status"],
                              "val loss (best epoch)": None if r["val_loss_best"] is None else round(r["val_loss_best"], 4),
                              "val acc (best epoch)": None if r["val_acc_best"] is None else round(100 * r["val_acc_best"], 2),
                              "chosen": "yes" if r["chosen"] else ""} for r in self.rows()])

    def rows(self) -> list[dict]:
        """Per rate and stage: the validation numbers that chose (None while not stored)."""
        rows, chosen = [], self.chosen
        for stage, exps in (("short", self.short), ("full", self.long)):
            for e in exps:
                run = _seed_run(e)
                rows.append(dict(lr=e.config.lr, stage=stage, epochs=e.config.epochs,
                                 status=run.status if run else "not stored",
                                 val_loss_best=run.metric("val_loss_best") if run else None,
                                 val_acc_best=run.metric("val_acc_best") if run else None,
                                 chosen=e.config.lr == chosen and stage == "full"))
        return rows


def rule() -> dict:
    """The specification's `lr_search`: seed, short_fraction, keep (and the profiles still `pending`)."""
    return load_spec()["lr_search"]


def tuned_sets(notebook: str, profile: str) -> list[dict]:
    """The executions of `notebook` that search each parameter set's learning rate (`tune_lr`), where
    its entry has lr_factors and the profile's searches are not still pending; a ladder searches
    every rung's in one execution."""
    if not factors(notebook) or profile in rule().get("pending", []):
        return []
    if kind(check_notebook(notebook)) == "ladder":
        return [{"tune_lr": True}]
    return [{**params, "tune_lr": True} for params in param_sets(notebook, profile)]


def ladder_searches(notebook: str, dataset: str, profile: str, data_copy: str | None = None,
                    include_pending: bool = False) -> list[tuple[str, dict, Search]]:
    """Each rung of the ladder `notebook` searched on its own: (the rung's name, its configuration's
    values, its search), read from the store. A rung's grid is the factors times its own rate, so no
    rung is judged at a rate chosen for another."""
    out, values = [], {}
    for name, rung in rung_changes(dataset, profile, notebook, include_pending):
        values = {**values, **rung}
        out.append((name, dict(values), search(notebook, dataset, profile, data_copy, **values)))
    return out


def factors(notebook: str) -> list[float]:
    """The entry's `lr_factors`; empty where the entry searches no rate."""
    return list(check_notebook(notebook).get("lr_factors", []))


def _seed_run(exp: Experiment):
    """The stored run of a search experiment (one seed, the search seed); None while not stored."""
    runs = exp.stored_runs()
    return runs[0] if len(runs) else None


def _score(exp: Experiment) -> float | None:
    """The search seed's validation loss (inf for a diverged run); None while it is not stored."""
    if (run := _seed_run(exp)) is None:
        return None
    value = run.metric(SELECT) if run.ok else None
    return math.inf if value is None else value


def search(notebook: str, dataset: str, profile: str, data_copy: str | None = None, **params) -> Search:
    """The search for `params` of `notebook` on `dataset`, read from the store (nothing is trained)."""
    if not factors(notebook):
        raise ValueError(f"notebook {notebook!r} searches no learning rate (no lr_factors in its entry); "
                         f"valid: {', '.join(n for n, e in load_spec()['notebooks'].items() if e.get('lr_factors'))}")
    how = rule()
    base = build_config(check_notebook(notebook).get("base", {}), dataset, **params)
    grid = sorted({float(f"{base.lr * f:.6g}") for f in factors(notebook)})
    epochs = int(params.get("epochs", profile_settings(notebook, profile)["epochs"]))  # a ladder rung may train longer
    short_epochs = max(1, round(epochs * how["short_fraction"]))

    def at(lr: float, epochs: int, label: str) -> Experiment:
        exp = experiment(notebook, dataset=dataset, profile=profile, seeds=[how["seed"]], data_copy=data_copy,
                         label=label, **{**params, "lr": lr})
        exp.configs = [c.replace(epochs=epochs) for c in exp.configs]
        return exp

    short = [at(lr, short_epochs, f"lr {lr:g}, {short_epochs} epochs") for lr in grid]
    scores = [_score(e) for e in short]
    long = []
    if all(s is not None for s in scores):
        best = sorted(zip(scores, grid))[:how["keep"]]
        long = [at(lr, epochs, f"lr {lr:g}, {epochs} epochs") for _, lr in sorted(best, key=lambda t: t[1])]
    return Search(notebook, dataset, profile, dict(params), grid, short, long, [_score(e) for e in long])


# -- the MAP criterion's constant j ------------------------------------------------------------------

J_SELECT = "val_acc_best"  # j changes the criterion itself, so its loss cannot compare them: accuracy does


@dataclass
class JSearch:
    """The constant j of the paper's MAP criterion (its eq. 9, which gives no value), chosen on
    validation: each value of the entry's `map_j_grid` trains the search seed at full length, at the
    rate the learning-rate search chose for the paper's way (j at its default during that search);
    the best validation accuracy at the best epoch chooses (ties: the default)."""

    dataset: str
    profile: str
    lr: float | None  # the rate chosen for the paper's way; None while its search is incomplete
    grid: list[float]
    runs: list[Experiment]  # one per value of the grid, once the rate is chosen; else empty

    def scores(self) -> list[float | None]:
        """Each value's validation accuracy at the best epoch (0 for a diverged run); None while not stored."""
        return [None if run is None else (run.metric(J_SELECT) or 0.0) if run.ok else 0.0
                for run in map(_seed_run, self.runs)]

    @property
    def chosen(self) -> float | None:
        """The value chosen, once every run is stored; else None."""
        scores = self.scores()
        if not self.runs or any(v is None for v in scores):
            return None
        return max(zip(scores, (j == RunConfig.map_j for j in self.grid), self.grid))[2]

    def experiments(self) -> list[Experiment]:
        return list(self.runs)

    def table(self):
        """Per value of j: the search seed's validation accuracy and loss at its best epoch, and the choice."""
        import pandas as pd

        chosen, rows = self.chosen, []
        for j, e in zip(self.grid, self.runs):
            run = _seed_run(e)
            acc, loss = (run.metric("val_acc_best"), run.metric("val_loss_best")) if run and run.ok else (None, None)
            rows.append({"j": j, "lr": e.config.lr, "epochs": e.config.epochs,
                         "status": run.status if run else "not stored",
                         "val acc (best epoch)": None if acc is None else round(100 * acc, 2),
                         "val loss (best epoch)": None if loss is None else round(loss, 4),
                         "chosen": "yes" if j == chosen else ""})
        return pd.DataFrame(rows)


def j_grid(notebook: str) -> list[float]:
    """The entry's `map_j_grid`; empty where the entry chooses no j."""
    return list(check_notebook(notebook).get("map_j_grid", []))


def j_search(notebook: str, dataset: str, profile: str, data_copy: str | None = None,
             found: Search | None = None, **params) -> JSearch | None:
    """The choice of j for `params` of `notebook` on `dataset`, read from the store (nothing is
    trained); None where the entry has no `map_j_grid` or the set does not train with the MAP
    criterion. `found`: the rate's search of these arguments when the caller has it already."""
    grid = j_grid(notebook)
    if not grid or build_config(check_notebook(notebook).get("base", {}), dataset, **params).loss != "map":
        return None
    found = found or search(notebook, dataset, profile, data_copy, **params)
    runs = [] if found.chosen is None else [
        experiment(notebook, dataset=dataset, profile=profile, seeds=[rule()["seed"]], data_copy=data_copy,
                   label=f"j {j:g}", **{**params, "lr": found.chosen, "map_j": j}) for j in grid]
    return JSearch(dataset, profile, found.chosen, grid, runs)


def run_ladder(notebook: str, dataset: str, profile: str, data_copy: str | None = None,
               log=print) -> list[tuple[str, dict, Search]]:
    """Every rung's search (`ladder_searches`), trained as far as the store lacks."""
    return [(name, values, run(found, log)) for name, values, found in
            ladder_searches(notebook, dataset, profile, data_copy)]


def run(found: Search, log=print) -> Search:
    """Train what the search lacks, stage by stage; returns the completed search."""
    for exp in found.short:
        exp.run(log=log)
    found = search(found.notebook, found.dataset, found.profile, found.short[0].config.data_copy, **found.params)
    for exp in found.long:
        exp.run(log=log)
    return search(found.notebook, found.dataset, found.profile, found.short[0].config.data_copy, **found.params)


def tuned(notebook: str, dataset: str, profile: str, seeds=None, data_copy: str | None = None,
          found: Search | None = None, **params) -> Experiment:
    """The setting at its chosen rate, with the chapter's seeds; refused while the search is incomplete.
    `found`: the search of these arguments when the caller has it already (not read again)."""
    found = found or search(notebook, dataset, profile, data_copy, **params)
    if found.chosen is None:
        known = [c for e in found.experiments() for c in e.configs]
        stored = sum(len(e.stored_runs()) for e in found.experiments())
        raise ValueError(f"the learning-rate search of {notebook} {params} on {dataset} ({profile}) is not complete: "
                         f"{stored} of {len(known)} of its runs known so far are stored; run the notebook with "
                         f"tune_lr=True, or `python -m lenet_core sweep --profile {profile} --only {notebook}`")
    return experiment(notebook, dataset=dataset, profile=profile, seeds=seeds, data_copy=data_copy,
                      label=f"tuned: lr {found.chosen:g}", **{**params, "lr": found.chosen})
