"""A chapter's settings at their own learning rates (`lenet_core.tuning`): the rate each chose on
validation, accuracy there beside the shared rate's, and validation accuracy against the rate."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .. import plots, tuning
from ..experiments import param_sets, profile_settings
from ..stats import welch_p
from .cells import cell_of, experiment_cell, stored_of
from .markdown import GENERATED, IMAGES, dataset_title, figure_md, format_p, md_table, setting_label
from .reference import Chapter


def lr_curves(searches: dict[str, tuning.Search], title: str = "", ax=None):
    """Per setting, its learning-rate search (`tuning.Search`): the search seed's best validation
    accuracy against the rate, the short stage as a line, the full-length stage as dots, the chosen
    rate ringed. A diverged or unstored run leaves its rate out."""
    if ax is None:
        ax = plt.subplots(figsize=(8.0, 4.5), layout="constrained")[1]
    for label, found in searches.items():
        rows = found.rows()
        short = [(r["lr"], r["val_acc_best"]) for r in rows if r["stage"] == "short" and r["val_acc_best"] is not None]
        if not short:
            continue
        (line,) = ax.plot(*zip(*short), marker="o", markersize=3, label=label)
        full = [(r["lr"], r["val_acc_best"], r["chosen"]) for r in rows if r["stage"] == "full" and r["val_acc_best"] is not None]
        for lr, acc, chosen in full:
            ax.scatter([lr], [acc], s=30, color=line.get_color(), zorder=3)
            if chosen:
                ax.scatter([lr], [acc], s=140, facecolors="none", edgecolors=line.get_color(), zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("best validation accuracy (search seed)")
    ax.set_title(title or "Validation accuracy by learning rate")
    if ax.lines:
        ax.legend(frameon=False, fontsize=7, ncol=2)
    plots.style(ax)
    return ax.figure


def tuned_section(chapter: Chapter, profile: str, out_dir: Path) -> str:
    """The section, where the chapter searches rates in `profile`; empty where it does not (or its
    searches are still pending there)."""
    nb = chapter.notebook
    if not tuning.factors(nb):
        return ""
    if not tuning.tuned_sets(nb, profile):  # the profile's searches are being trained
        from ..executions import pending_configs

        stored, known = stored_of(pending_configs(profile, nb))
        return (f"## Each setting at its own learning rate\n\nThe learning-rate searches of the {profile} profile "
                f"are being trained: {stored} of the {known} runs known so far "
                f"are in the store. Their comparison appears here once every search is complete; `make book "
                f"PROFILE=quick` shows it on the quick profile's short runs meanwhile.\n")
    how, sets = tuning.rule(), param_sets(nb, profile)
    datasets = list(profile_settings(nb, profile)["datasets"])
    searches = {d: [tuning.search(nb, d, profile, **p) for p in sets] for d in datasets}
    headers = ["setting"]
    for d in datasets:
        headers += [f"rate ({dataset_title(d)})", f"shared rate ({dataset_title(d)})", f"own rate ({dataset_title(d)})",
                    f"p ({dataset_title(d)})"]
    rows = []
    for i, params in enumerate(sets):
        row = [f"`{setting_label(params)}`"]
        for d in datasets:
            found = searches[d][i]
            shared = experiment_cell(nb, d, profile, params)
            if found.chosen is None:
                row += ["searching", shared.text(), "–", "–"]
                continue
            own = cell_of(tuning.tuned(nb, d, profile, found=found, **params))
            same = found.chosen == params.get("lr")
            row += [f"{found.chosen:g}" + (" (the same)" if same else ""), shared.text(), own.text(),
                    "–" if same else format_p(welch_p(own.values(), shared.values()))]
        rows.append(row)
    out = [f"## Each setting at its own learning rate\n\n"
           f"Each setting's rate searched on validation: its own rate times {', '.join(f'{f:g}' for f in tuning.factors(nb))}; "
           f"every rate trains seed {how['seed']} for {how['short_fraction']:g} of the epochs, the {how['keep']} with "
           f"the lowest validation loss train the full length, and the lowest of those is the setting's rate "
           f"(the test set chooses nothing). Test accuracy (%) at the shared rate (the table above) and at the "
           f"setting's own, mean ± 95% CI over the seeds; p: Welch's t-test of the two.\n",
           md_table(headers, rows)]
    for d in datasets:
        if not any(e.stored_runs() for f in searches[d] for e in f.experiments()):
            continue
        name = f"{nb}_{d}_lr.png"
        plots.save(lr_curves({setting_label(p): f for p, f in zip(sets, searches[d])},
                                   title=f"{chapter.title} on {dataset_title(d)}: validation accuracy by learning rate"),
                   out_dir / GENERATED / IMAGES / name)
        out.append(figure_md(f"{GENERATED}/{IMAGES}/{name}", f"validation accuracy by learning rate, {dataset_title(d)}",
                             f"{dataset_title(d)}: the search seed's best validation accuracy at each rate of the "
                             f"short stage (line) and of the full-length stage (larger dots); the chosen rate is "
                             f"ringed. A wide plateau is a setting that forgives its rate."))
    return "\n".join(out)


def tuned_ladder_section(profile: str, out_dir: Path) -> str:
    """The Results page's ladder with every rung at its own learning rate, beside the shared-recipe
    ladder: each rung's rate and accuracy both ways, each step's verdict both ways (one Holm family
    per ladder), and the rungs whose verdict changes. Empty where the ladder searches no rate; how
    far the searches are while they are being trained."""
    from ..experiments import ladder, notebook_of_kind
    from .found import ladder_family

    nb = notebook_of_kind("ladder")
    if not tuning.factors(nb):
        return ""
    heading = "## The ladder, each rung at its own learning rate"
    if not tuning.tuned_sets(nb, profile):
        from ..executions import pending_configs

        stored, known = stored_of(pending_configs(profile, nb))
        return (f"{heading}\n\nEvery rung's learning-rate search of the {profile} profile is being trained: {stored} "
                f"of the {known} runs known so far are in the store. The tuned ladder appears here once every "
                f"search is complete; `make book PROFILE=quick` shows it on the quick profile's short runs.\n")
    how = tuning.rule()
    out = [f"{heading}\n\nThe ladder above trains every rung at the rate its recipe names. Here each rung's rate is "
           f"searched on validation instead, among its own rate times {', '.join(f'{f:g}' for f in tuning.factors(nb))} "
           f"(seed {how['seed']} for {how['short_fraction']:g} of the epochs, the {how['keep']} lowest validation losses "
           f"at full length, the lowest of those chosen), so that no rung is judged at a rate chosen for another. "
           f"Test accuracy (%) at the best-validation epoch, mean ± 95% CI; Δ: the step from the rung before, with "
           f"its verdict (Holm's correction over each ladder's steps).\n"]
    for d in profile_settings(nb, profile)["datasets"]:
        searches = tuning.ladder_searches(nb, d, profile)
        rungs = ladder(d, profile)
        shared = [cell_of(r) for r in rungs]
        own = [cell_of(tuning.tuned(nb, d, profile, found=f, **v)) if f.chosen else None for _, v, f in searches]
        labels = [name for name, _, _ in searches]
        verdicts = {}
        for which, cells in (("shared", shared), ("own", own)):
            if all(c is not None for c in cells):
                verdicts[which] = {c.label: c for c in ladder_family(labels, cells).contrasts}
        rows = []
        for i, (name, values, found) in enumerate(searches):
            row = [f"`{name}`", f"{rungs[i].config.lr:g}", shared[i].text()]
            for which in ("shared", "own"):
                if which == "own":
                    row += ["searching" if found.chosen is None else f"{found.chosen:g}",
                            own[i].text() if own[i] is not None else "–"]
                step = verdicts.get(which, {}).get(name)
                row.append(f"{100 * step.difference.mean:+.2f} ({step.verdict})" if step and step.verdict != "untested"
                           else "–")
            rows.append(row)
        changed = [f"`{n}` ({verdicts['shared'][n].verdict} at the shared rates, {verdicts['own'][n].verdict} at "
                   f"their own)" for n in labels[1:] if len(verdicts) == 2
                   and verdicts["shared"][n].verdict != verdicts["own"][n].verdict]
        out.append(f"### {dataset_title(d)}\n")
        out.append(md_table(["rung", "recipe rate", "at the recipe rate", "Δ", "own rate", "at its own rate", "Δ"],
                            rows, "lrrrrrr"))
        if len(verdicts) == 2:
            out.append(("Steps whose verdict changes once every rung has its own rate: " + "; ".join(changed) + ".\n")
                       if changed else "No step's verdict changes once every rung has its own rate.\n")
    return "\n".join(out)
