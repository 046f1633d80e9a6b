"""What one execution of a chapter notebook trains or loads: its experiments (a grid's setting, a
ladder, a published setup, or a setting's learning-rate search and the setting at the chosen rate),
the runs still being trained, and the notebook's opening cell (`start`).

Above `experiments` (the specification turned into runs) and `tuning` (the learning-rate search),
which both stay below it.
"""

from __future__ import annotations

from . import tuning
from .config import RunConfig
from .experiments import (Experiment, check_notebook, describe_network, experiment, kind, ladder, load_spec,
                          param_sets, pending_rungs, pending_seed_configs, profile_settings, published_setup)
from .spec import pending_sets


def pending_configs(profile: str, notebook: str | None = None) -> list[RunConfig]:
    """The runs of `profile` still being trained (of one notebook, or of all): every `more_seeds`
    entry marked pending, the parameter sets an entry's `pending` names (with their learning-rate
    searches), and every search while the profile's are pending. Planned (their stored runs belong
    in the store) but not yet published, and not yet required to be complete."""
    configs = pending_seed_configs(profile) if notebook is None else []
    entries = load_spec()["notebooks"] if notebook is None else {notebook: check_notebook(notebook)}
    searching = profile in (load_spec().get("lr_search") or {}).get("pending", [])
    for name, entry in entries.items():
        if entry.get("lr_factors"):  # the learning-rate searches, as far as they are known: every set's
            # while the profile's searches are being trained, else those of the sets still pending
            for params in param_sets(name) if searching else pending_sets(entry, profile):
                for dataset in profile_settings(name, profile)["datasets"]:
                    try:
                        exps = notebook_experiments(name, dataset, profile, tune_lr=True, **params)
                    except ValueError:  # a combination the dataset does not allow
                        continue
                    configs += [c for e in exps for c in e.configs]
        for params in pending_sets(entry, profile):
            for dataset in profile_settings(name, profile)["datasets"]:
                try:
                    exps = notebook_experiments(name, dataset, profile, **params)
                except ValueError:  # a combination the dataset does not allow
                    continue
                configs += [c for e in exps for c in e.configs]
        if kind(entry) == "ladder" and pending_rungs(profile, name):  # the runs only its pending rungs add
            for dataset in profile_settings(name, profile)["datasets"]:
                for tune_lr in (False, True) if entry.get("lr_factors") else (False,):
                    shown = {c.canonical_json() for e in notebook_experiments(name, dataset, profile, tune_lr=tune_lr)
                             for c in e.configs}
                    configs += [c for e in notebook_experiments(name, dataset, profile, tune_lr=tune_lr,
                                                                include_pending=True)
                                for c in e.configs if c.canonical_json() not in shown]
    return configs



def notebook_experiments(notebook: str, dataset: str, profile: str, seeds=None, data_copy: str | None = None,
                         tune_lr: bool = False, include_pending: bool = False, **params) -> list[Experiment]:
    """The experiments one execution of `notebook` trains or loads, by the kind of its entry: every
    rung of a ladder, both views of each change of a ladder (`lenet_core.changes`), the published setup `params["setup"]`, or one experiment of a grid; with
    tune_lr, the grid's learning-rate search as far as it is known, and the setting at the chosen
    rate once the search is complete (`lenet_core.tuning`). A ladder's rungs still pending in the
    profile are left out unless `include_pending`."""
    of_kind = kind(check_notebook(notebook))
    if tune_lr:
        searches = tuning.ladder_searches(notebook, dataset, profile, data_copy, include_pending) if of_kind == "ladder" else \
            [("", params, tuning.search(notebook, dataset, profile, data_copy, **params))]
        out = []
        for label, values, found in searches:
            out += found.experiments()
            if found.chosen:
                out.append(tuning.tuned(notebook, dataset, profile, seeds, data_copy, found, **values))
        chosen_j = tuning.j_search(notebook, dataset, profile, data_copy, searches[0][2], **params) \
            if of_kind == "grid" else None
        return out + (chosen_j.experiments() if chosen_j else [])
    if of_kind == "one_change":
        from .changes import one_change

        return one_change(dataset, profile, seeds, data_copy, notebook).experiments()
    if of_kind == "ladder":
        return ladder(dataset=dataset, profile=profile, seeds=seeds, data_copy=data_copy, notebook=notebook,
                      include_pending=include_pending)
    if of_kind == "setups":
        return [published_setup(params["setup"], dataset, profile, seeds, data_copy, notebook)]
    return [experiment(notebook, dataset=dataset, profile=profile, seeds=seeds, data_copy=data_copy, **params)]


def start(notebook: str, *, dataset: str = "mnist", profile: str = "quick", seeds=None, data_copy: str | None = None,
          tune_lr: bool = False, **params) -> Experiment:
    """A chapter notebook's opening: its experiment from the notebook's parameters (every name
    checked before anything is trained), and the network it trains described. With tune_lr, the
    setting's learning-rate search is run first (what the store lacks is trained), its grid shown
    (and, for the paper's criterion, its constant j's), and the experiment is the setting at the
    chosen rate."""
    exp = experiment(notebook, dataset=dataset, profile=profile, seeds=seeds, data_copy=data_copy, **params)
    print(describe_network(exp.config))
    if not tune_lr:
        return exp
    from IPython.display import display

    found = tuning.run(tuning.search(notebook, dataset, profile, data_copy, **params))
    display(found.table())
    chosen_j = tuning.j_search(notebook, dataset, profile, data_copy, found, **params)
    if chosen_j:  # the MAP criterion's constant, at the chosen rate
        for e in chosen_j.experiments():
            e.run()
        print(f"The MAP criterion's constant j, at lr {chosen_j.lr:g} (seed {tuning.rule()['seed']}, "
              f"chosen on validation accuracy):")
        display(chosen_j.table())
    return tuning.tuned(notebook, dataset, profile, seeds, data_copy, found, **params)
