"""The "What we found" sections: per dataset, the verdicts of a chapter (every setting against the
chapter's baseline, one Holm family) or of the ladder (every rung against the rung before), the
seeds that failed, and on the Results page the changes that matter most across the chapters with
the whole study in one figure (`forest_figure`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .. import plots
from ..data import DATASETS
from ..experiments import param_sets, profile_settings
from ..findings import ALPHA, Contrast, Family, family_sentences, judge, split_seeds
from .cells import Cell, experiment_cell, own_rate_cells
from .markdown import GENERATED, IMAGES, dataset_title, figure_md, setting_label
from .reference import CHAPTERS, Chapter

HEADING = "## What we found"
VERDICT_COLOURS = {"better": "tab:green", "worse": "tab:red", "undecided": "0.45"}


@dataclass(frozen=True)
class ChapterFindings:
    """One chapter on one dataset: its settings' cells and the family that judges them. Where the
    chapter searches every setting's own learning rate and the searches are complete, the cells and
    the family are at those rates, and `shared` is the family at the shared rates beside them."""

    chapter: Chapter
    dataset: str
    labels: list[str]
    cells: list[Cell]
    base: int
    family: Family
    shared: Family | None = None

    def changed(self) -> list[tuple[str, str, str]]:
        """At their own rates: the settings whose verdict differs from the shared rates' (label,
        verdict shared, verdict own); empty at the shared rates."""
        if self.shared is None:
            return []
        own = {c.label: c.verdict for c in self.family.contrasts}
        return [(c.label, c.verdict, own[c.label]) for c in self.shared.contrasts
                if c.label in own and own[c.label] != c.verdict]


def _family(labels: Sequence[str], cells: Sequence[Cell], base: int) -> Family:
    return judge([(labels[i], c, cells[base]) for i, c in enumerate(cells) if i != base and c.applicable])


def chapter_findings(chapter: Chapter, dataset: str, profile: str, cells: Sequence[Cell] | None = None) -> ChapterFindings:
    """Every setting of `chapter` on `dataset` against the chapter's baseline, each at its own
    learning rate where the chapter's searches are complete (`cells.own_rate_cells`), else at the
    shared rates (`cells`, the shared rates' cells, are read from the store unless given, in the
    order of the chapter's parameter sets)."""
    sets = param_sets(chapter.notebook, profile)
    cells = list(cells) if cells is not None else [experiment_cell(chapter.notebook, dataset, profile, p) for p in sets]
    labels = [setting_label(p) for p in sets]
    base = sets.index(chapter.baseline)
    shared = _family(labels, cells, base)
    own = own_rate_cells(chapter.notebook, dataset, profile)
    if own is None:
        return ChapterFindings(chapter, dataset, labels, cells, base, shared)
    return ChapterFindings(chapter, dataset, labels, own, base, _family(labels, own, base), shared)


# A close contender: undecided on validation only for lack of seeds, its raw p below ALPHA (it would
# be a difference on its own) but its Holm-adjusted p not.
CONTENDER_P = ALPHA


def contenders(chapter: Chapter, dataset: str, profile: str) -> list[dict]:
    """The parameter sets that earn more seeds (the sweep specification's `more_seeds`): where some
    comparison with the baseline is undecided on *validation* accuracy over the profile's own seeds
    with a raw p below CONTENDER_P (undecided only after Holm's correction), the baseline and those
    close contenders. Empty when none is.
    Only validation decides, and only the profile's seeds, so the choice stays put as more come in."""
    sets = param_sets(chapter.notebook, profile)
    if chapter.baseline not in sets:  # its runs are still being trained
        return []
    seeds = profile_settings(chapter.notebook, profile)["seeds"]
    cells = [experiment_cell(chapter.notebook, dataset, profile, p, seeds=seeds) for p in sets]
    base = sets.index(chapter.baseline)
    family = judge([(i, c, cells[base]) for i, c in enumerate(cells) if i != base and c.applicable],
                   metric="val_acc_best")
    close = [c.label for c in family.contrasts if c.verdict == "undecided" and c.p < CONTENDER_P]
    return [sets[i] for i in sorted([base, *close])] if close else []


def failed_seeds(labels: Sequence[str], cells: Sequence[Cell], dataset: str) -> str:
    """A list of the settings where seeds failed, each explained from its records; '' when none did."""
    classes = len(DATASETS[dataset].classes)
    stories = [s for label, cell in zip(labels, cells) if cell.applicable and (s := split_seeds(cell, label, classes))]
    return "".join(f"- {s}\n" for s in stories)


def _dataset_paragraph(dataset: str, sentences: str, failures: str) -> str:
    text = f"**{dataset_title(dataset)}.** {sentences}\n"
    if failures:
        text += f"\nSeeds that failed on {dataset_title(dataset)}:\n\n{failures}"
    return text


def chapter_section(found: dict[str, ChapterFindings]) -> str:
    """A chapter page's "What we found": per dataset, the verdicts (at each setting's own learning
    rate where its searches are complete, with the verdicts that differ at the shared rates) and
    the seeds that failed."""
    own = [d for d, f in found.items() if f.shared is not None]
    rates = ""
    if own:
        where = "" if len(own) == len(found) else " on " + ", ".join(dataset_title(d) for d in own)
        rates = (f" Each setting, the baseline too, is at its own learning rate{where} (searched on validation: "
                 f"\"Each setting at its own learning rate\" below), so that none loses for a rate chosen for "
                 f"another; the verdicts that differ at the shared rates of the tables are named.")
    out = [f"{HEADING}\n\nEach setting against the chapter's baseline on the same dataset, from the stored runs "
           "(test accuracy at the best-validation epoch). A setting is called better or worse only when the "
           "difference survives Holm's correction for the chapter's number of comparisons on that dataset; "
           f"the intervals are 95% intervals of the difference (Welch).{rates}\n"]
    for dataset, f in found.items():
        sentences = family_sentences(f.family, f.labels[f.base])
        if f.shared is not None:
            changed = f.changed()
            sentences += (" At the shared rates the verdicts differ for: " + "; ".join(
                f"`{label}` ({shared} there, {own} at its own rate)" for label, shared, own in changed) + "."
                if changed else " At the shared rates every verdict is the same.")
        out.append(_dataset_paragraph(dataset, sentences, failed_seeds(f.labels, f.cells, dataset)))
    return "\n".join(out)


def _means(labels: Sequence[str], cells: Sequence[Cell]) -> list[tuple[str, Cell]]:
    return [(label, c) for label, c in zip(labels, cells) if c.applicable and c.values()]


def chapter_figure_note(labels: Sequence[str], cells: Sequence[Cell]) -> str:
    """What to see in a chapter's figure for one dataset, from its numbers: the highest and lowest
    means, the setting whose seeds scatter most, and how to read the curves."""
    measured = _means(labels, cells)
    if not measured:
        return ""
    hi = max(measured, key=lambda lc: lc[1].summary().mean)
    lo = min(measured, key=lambda lc: lc[1].summary().mean)
    text = (f" What to see: the highest mean is `{hi[0]}` ({100 * hi[1].summary().mean:.2f}%), the lowest "
            f"`{lo[0]}` ({100 * lo[1].summary().mean:.2f}%)")
    spread = [(label, max(c.values()) - min(c.values())) for label, c in measured if len(c.values()) > 1]
    if spread:
        label, width = max(spread, key=lambda lw: lw[1])
        text += f"; the seeds of `{label}` scatter most, over {100 * width:.2f} points"
    return text + (". Bars whose whiskers overlap the baseline's may still differ, and separate ones may not "
                   "survive the correction for many comparisons: \"What we found\" gives the verdicts. In the "
                   "curves, a band that is wide or falls back shows seeds that disagree.")


def ladder_figure_note(labels: Sequence[str], cells: Sequence[Cell]) -> str:
    """What to see in a ladder's figure, from its numbers: the largest steps up and down."""
    steps = [(labels[i], cells[i].summary().mean - cells[i - 1].summary().mean) for i in range(1, len(cells))
             if cells[i].values() and cells[i - 1].values()]
    if not steps:
        return ""
    up, down = max(steps, key=lambda s: s[1]), min(steps, key=lambda s: s[1])
    text = f" What to see: the largest step up is `{up[0]}` ({100 * up[1]:+.2f} points over the rung before)"
    if down[1] < 0:
        text += f", the largest step down `{down[0]}` ({100 * down[1]:+.2f} points)"
    return text + "; a rung whose dots scatter far below its bar holds seeds that failed (listed above)."


def ladder_family(labels: Sequence[str], cells: Sequence[Cell]) -> Family:
    """Each rung of a ladder against the rung before it, one Holm family."""
    return judge([(labels[i], cells[i], cells[i - 1]) for i in range(1, len(cells))])


def published_chapters(profile: str) -> list[Chapter]:
    """The chapters whose comparisons `profile` publishes: their baseline's runs are not pending."""
    return [c for c in CHAPTERS if c.baseline in param_sets(c.notebook, profile)]


def study_findings(profile: str, datasets: Sequence[str]) -> dict[str, list[ChapterFindings]]:
    """Every published chapter's findings on each dataset of `datasets` that it trains in `profile`."""
    return {d: [chapter_findings(c, d, profile) for c in published_chapters(profile)
                if d in profile_settings(c.notebook, profile)["datasets"]] for d in datasets}


def _largest(contrasts: list[tuple[str, Contrast]], verdict: str, k: int = 3) -> str:
    chosen = sorted((tc for tc in contrasts if tc[1].verdict == verdict), key=lambda tc: -abs(tc[1].difference.mean))
    return "; ".join(f"`{c.label}` ({title.lower()}: {c.points()})" for title, c in chosen[:k])


def results_section(profile: str, ladders: dict, ladder_cells: dict, out_dir) -> str:
    """The Results page's "What we found": per dataset, the ladder's verdicts, the changes that
    matter most across the chapters, the seeds that failed on the ladder; then the forest plot."""
    datasets = list(ladders)
    study = study_findings(profile, datasets)
    out = [f"{HEADING}\n\nPer dataset: along the ladder, which rungs changed accuracy (each rung against the "
           "one before, Holm-corrected over the ladder's rungs); across the chapters, which single changes to the "
           "modern default network matter most (each setting against its chapter's baseline, Holm-corrected "
           "within each chapter and dataset). The figure below shows every one of those comparisons.\n"]
    own = sorted({f.chapter.title for fs in study.values() for f in fs if f.shared is not None})
    if own:
        out[0] = out[0][:-1] + (f" In {', '.join(own)}, every setting is at its own learning rate, searched on "
                                f"validation, as in that chapter's \"What we found\".\n")
    for d in datasets:
        labels = [r.label for r in ladders[d]]
        cells = ladder_cells[d]
        text = "Along the ladder: " + family_sentences(ladder_family(labels, cells), None, "the rung before")
        contrasts = [(f.chapter.title, c) for f in study[d] for c in f.family.contrasts]
        tested = [tc for tc in contrasts if tc[1].verdict != "untested"]
        if tested:
            gains, losses = _largest(tested, "better"), _largest(tested, "worse")
            undecided = sum(c.verdict == "undecided" for _, c in tested)
            text += (f" Across the chapters, {len(tested) - undecided} of {len(tested)} settings differ from their "
                     f"chapter's baseline. ")
            text += f"The largest gains: {gains}. " if gains else "No setting beats its chapter's baseline. "
            text += f"The largest losses: {losses}." if losses else "No setting is worse than its chapter's baseline."
        out.append(_dataset_paragraph(d, text, failed_seeds(labels, cells, d)))
    if any(c.verdict != "untested" for fs in study.values() for f in fs for c in f.family.contrasts):
        name = "forest.png"
        forest_figure(study, out_dir / GENERATED / IMAGES / name, f"Every setting against its chapter's baseline "
                      f"({profile} profile)")
        out.append(figure_md(f"{GENERATED}/{IMAGES}/{name}", "forest plot of every setting against its baseline",
                             "The whole study in one figure: each setting's difference in test accuracy from its "
                             "chapter's baseline (points, mean and 95% interval of the difference), one panel per "
                             "dataset, grouped by chapter. Green: better after Holm's correction; red: worse; grey: "
                             "cannot be told apart at this number of seeds. The axis is linear within ±1 point and "
                             "logarithmic beyond, so that a collapse of tens of points and a gain of tenths both "
                             "show. Read across a row to see whether a change does the same on every dataset, and "
                             "down a panel for which chapters hold the large effects. " + _forest_summary(study)))
    return "\n".join(out)


def _forest_summary(study: dict[str, list[ChapterFindings]]) -> str:
    """What the forest plot shows, counted from it: how many comparisons are decided, which way,
    and the largest effect."""
    tested = [(d, f.chapter.title, c) for d, fs in study.items() for f in fs for c in f.family.contrasts
              if c.verdict != "untested"]
    better = sum(c.verdict == "better" for *_, c in tested)
    worse = sum(c.verdict == "worse" for *_, c in tested)
    d, title, c = max(tested, key=lambda t: abs(t[2].difference.mean))
    return (f"Of its {len(tested)} comparisons, {better} are better than their baseline and {worse} worse; the "
            f"other {len(tested) - better - worse} cannot be told apart. The largest effect is `{c.label}` "
            f"({title.lower()}) on {dataset_title(d)}: {c.points()}.")


def forest_figure(study: dict[str, list[ChapterFindings]], path, title: str) -> None:
    """One panel per dataset, one row per setting (grouped by chapter, the same rows in every
    panel): the difference from the chapter's baseline in points with its 95% interval."""
    rows: list[tuple[str, str]] = []  # (chapter title, setting label), in chapter order
    for fs in study.values():
        for f in fs:
            for c in f.family.contrasts:
                if (f.chapter.title, c.label) not in rows:
                    rows.append((f.chapter.title, c.label))
    rows.sort(key=lambda r: [c.title for c in CHAPTERS].index(r[0]))
    y = {r: len(rows) - i for i, r in enumerate(rows)}
    fig, axes = plots.plt.subplots(1, len(study), figsize=(3.2 * len(study) + 2.6, 0.22 * len(rows) + 1.6),
                                   sharey=True, layout="constrained", squeeze=False)
    for ax, (dataset, fs) in zip(axes[0], study.items()):
        for f in fs:
            for c in f.family.contrasts:
                if c.verdict == "untested" or math.isnan(c.difference.mean):
                    continue
                mean, half = 100 * c.difference.mean, 100 * c.difference.half_width
                colour = VERDICT_COLOURS[c.verdict]
                if not math.isnan(half):
                    ax.plot([mean - half, mean + half], [y[f.chapter.title, c.label]] * 2, color=colour, linewidth=1.4)
                ax.plot(mean, y[f.chapter.title, c.label], "o", color=colour, markersize=3.5)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.margins(x=0.06)
        ax.set_title(dataset_title(dataset))
        ax.set_xlabel("difference from baseline (points)")
        plots.style(ax)
    previous = None
    for r in rows:  # a rule and the chapter's name above each chapter's first row
        if r[0] != previous:
            for ax in axes[0]:
                ax.axhline(y[r] + 0.5, color="0.75", linewidth=0.6)
            previous = r[0]
    axes[0][0].set_yticks([y[r] for r in rows], [f"{c}: {label}" for c, label in rows], fontsize=7)
    axes[0][0].set_ylim(0.3, len(rows) + 0.7)
    fig.suptitle(title)
    plots.save(fig, path)
