"""A technique chapter's generated part: accuracy per setting and dataset, figures, speed, gap."""

from __future__ import annotations

from pathlib import Path

from .. import plots
from ..experiments import param_sets, profile_settings
from ..stats import welch_p
from .cells import experiment_cell, epochs_to_target, last_epoch_gap, stored_of
from .executed import notebooks_section
from .found import chapter_figure_note, chapter_findings, chapter_section
from .markdown import GENERATED, IMAGES, cifar_note, dataset_title, figure_md, format_p, md_table, profile_text, setting_label
from .reference import TARGETS, TECHNIQUES, Chapter
from .tuned import tuned_section


def papers_section(notebook: str) -> str:
    """What the papers behind the chapter's techniques report (the reference file's `techniques`)."""
    if notebook not in TECHNIQUES:
        return ""
    items = [f"- **{t.name}** ({t.paper}): {t.reports}" for t in TECHNIQUES[notebook]]
    return ("## What the papers report\n\nOn the networks the papers used, far larger than LeNet-5 unless "
            "said otherwise; the rest of this page is what the techniques do here.\n\n" + "\n".join(items) + "\n")


def pending_chapter(notebook: str, profile: str) -> str:
    """The generated part of a chapter whose runs in `profile` are all still being trained: how many
    are in, and no number until every one is."""
    from ..executions import pending_configs

    stored, wanted = stored_of(pending_configs(profile, notebook))
    return (f"## Summary\n\nProfile **{profile}**: {profile_text(profile_settings(notebook, profile))}. This "
            f"chapter's runs are being trained: {stored} of {wanted} are in the store. Its numbers appear "
            f"here once every run is in, so that no comparison rests on part of its seeds; "
            f"`make book PROFILE=quick` shows the chapter on the quick profile's short runs meanwhile.\n")


def last_epoch_part(labels: list[str], grid: dict, datasets: list[str], base: int | None) -> str:
    """Test accuracy at the last epoch, every setting against the baseline there too, and the
    epochs validation chose (fewest to most over the seeds): where an average covers the last
    epochs, whether validation chose them."""
    metric = "test_acc_last"
    rows = []
    for i, label in enumerate(labels):
        row = [f"`{label}`" + (" (baseline)" if i == base else "")]
        for d in datasets:
            cell = grid[d][i]
            row.append(cell.text(metric))
            row.append("baseline" if i == base else "–" if base is None or not cell.applicable or not cell.runs
                       else format_p(welch_p(cell.values(metric), grid[d][base].values(metric))))
            epochs = sorted(e for e in (r.metric("best_epoch") for r in cell.ok) if e is not None)
            row.append(f"{epochs[0]}–{epochs[-1]} of {cell.ok[0].metrics['epochs_run']}" if epochs else "–")
        rows.append(row)
    headers = ["setting"]
    for d in datasets:
        headers += [dataset_title(d), f"p ({dataset_title(d)})", f"best-val epochs ({dataset_title(d)})"]
    return ("### Test accuracy at the last epoch\n\nThe same runs at their last epoch, where an average covers "
            "the most epochs: mean ± 95% CI, p against the baseline's last epoch (Welch). The book's number is "
            "the one above, at the best-validation epoch; the epochs validation chose are beside it (fewest to "
            "most over the seeds).\n\n" + md_table(headers, rows))


def chapter_fragment(chapter: Chapter, profile: str, out_dir: Path) -> str:
    nb = chapter.notebook
    settings = profile_settings(nb, profile)
    datasets = list(settings["datasets"])
    sets = param_sets(nb, profile)
    papers = [papers_section(nb)] if nb in TECHNIQUES else []
    if not sets:
        return "\n".join(papers + [pending_chapter(nb, profile)])
    labels = [setting_label(p) for p in sets]
    base = sets.index(chapter.baseline) if chapter.baseline in sets else None
    grid = {d: [experiment_cell(nb, d, profile, p) for p in sets] for d in datasets}
    stored = sum(len(c.runs) for cells in grid.values() for c in cells)
    expected = sum(c.expected for cells in grid.values() for c in cells)

    out = [chapter_section({d: chapter_findings(chapter, d, profile, grid[d]) for d in datasets})] \
        if base is not None else []
    out += papers
    out += [f"## Summary\n\nProfile **{profile}**: {profile_text(settings)}; "
           f"{stored} of {expected} runs stored. Baseline row: `{setting_label(chapter.baseline)}` "
           f"(the modern default network).\n"]
    if "cifar10" in datasets:
        out.append(cifar_note())
    # accuracy table
    headers = ["setting"]
    for d in datasets:
        headers += [dataset_title(d), f"p ({dataset_title(d)})"]
    best = {}
    for d in datasets:
        means = [c.summary().mean if c.summary().n else -1 for c in grid[d]]
        best[d] = max(range(len(means)), key=means.__getitem__) if max(means, default=-1) >= 0 else None
    rows = []
    for i, label in enumerate(labels):
        row = [f"`{label}`" + (" (baseline)" if i == base else "")]
        for d in datasets:
            cell = grid[d][i]
            text = cell.text()
            row.append(f"**{text}**" if i == best[d] else text)
            if i == base:
                row.append("baseline")
            elif base is None or not cell.applicable:
                row.append("–")
            else:
                row.append(format_p(welch_p(cell.values(), grid[d][base].values())))
        rows.append(row)
    out.append("### Test accuracy\n\n"
               "Test accuracy (%) at each run's best-validation epoch: mean ± 95% confidence interval "
               "(Student's t) over the seeds that did not diverge, n = their number. **Bold**: the highest "
               "mean in the column. p: two-sided Welch's t-test of the row against the baseline row "
               "(with two or three seeds, only large differences can reach a small p). – : no run stored "
               "yet; n/a: a combination the dataset does not allow.\n")
    out.append(md_table(headers, rows))
    if chapter.last_epoch:
        out.append(last_epoch_part(labels, grid, datasets, base))
    # figures
    out.append("### Per dataset\n")
    any_figure = False
    for d in datasets:
        if not any(c.runs for c in grid[d]):
            continue
        any_figure = True
        name = f"{nb}_{d}.png"
        cells = grid[d]
        plots.chapter_figure(labels, [c.values() for c in cells], [c.runs for c in cells], base,
                             f"{chapter.title} on {dataset_title(d)} ({profile} profile)",
                             out_dir / GENERATED / IMAGES / name, missing=[c.missing for c in cells])
        out.append(figure_md(f"{GENERATED}/{IMAGES}/{name}", f"{chapter.title} on {dataset_title(d)}",
                           f"{dataset_title(d)}. Top: test accuracy per setting, bar = mean, whisker = 95% CI, dots = "
                           f"seeds; the baseline is orange; the axis is zoomed to the data. Bottom: validation "
                           f"accuracy per epoch, mean over seeds with the min-max band." + chapter_figure_note(labels, cells)))
    if not any_figure:
        out.append(f"No runs stored yet for this profile; `make book PROFILE={profile}` (or `make sweep`) "
                   f"trains them.\n")
    # epochs to target
    out.append("### Epochs to the target validation accuracy\n\n"
               "The first epoch at which validation accuracy reached the target, averaged over the seeds "
               "that reached it (how many did, in brackets); \"not reached\" when none did within the "
               "profile's epochs.\n")
    out.append(md_table(["setting"] + [f"{dataset_title(d)} (≥ {100 * TARGETS[d]:.0f}%)" for d in datasets],
                        [[f"`{label}`"] + [epochs_to_target(grid[d][i], TARGETS[d]) for d in datasets]
                         for i, label in enumerate(labels)]))
    # gap
    out.append("### Train-validation gap at the last epoch\n\n"
               "Training accuracy minus validation accuracy at the last epoch, in points (train − val, mean "
               "over seeds). Training accuracy is measured on the batches as they were trained, so with "
               "dropout or augmentation it is measured on the harder, perturbed inputs.\n")
    out.append(md_table(["setting"] + [dataset_title(d) for d in datasets],
                        [[f"`{label}`"] + [last_epoch_gap(grid[d][i]) for d in datasets]
                         for i, label in enumerate(labels)]))
    out.append(tuned_section(chapter, profile, out_dir))
    out.append(notebooks_section(nb, out_dir, profile, heading="##"))
    return "\n".join(out)
