"""The Results page's "Which change matters most": each change of the ladder left out of its top
and applied alone to its start (`lenet_core.changes`), as a figure, a table and sentences per
dataset, generated from the store."""

from __future__ import annotations

from pathlib import Path

from .. import plots
from ..changes import (VERDICT_WORDS, OneChange, Worth, candidate_family, candidate_rows, one_change, worth,
                       worth_rows)
from ..experiments import kind, ladder, load_spec, notebook_of_kind, param_sets, profile_settings, rung_changes
from ..findings import ALPHA
from .cells import stored_of
from .markdown import GENERATED, IMAGES, dataset_title, figure_md, md_table

HEADING = "## Which change matters most"


def _named(worths: list[Worth], view: str) -> str:
    return "; ".join(f"`{w.label}` ({getattr(w, view).points()})" for w in worths)


def _verdicts(worths: list[Worth], view: str) -> dict[str, list[Worth]]:
    out = {}
    for w in sorted((w for w in worths if getattr(w, view) is not None),
                    key=lambda w: -abs(getattr(w, view).difference.mean)):
        out.setdefault(getattr(w, view).verdict, []).append(w)
    return out


def change_sentences(weighed: OneChange, worths: list[Worth]) -> str:
    """What the two views found on one dataset, in words with their numbers: which changes the top
    needs, which help alone, the change worth most in each view, and the changes whose two views
    differ beyond the seeds' spread (the interactions)."""
    out = []
    for view, what in (("at_top", f"Left out of the top (`{weighed.top.label}`) one at a time"),
                       ("alone", f"Applied alone to `{weighed.start.label}`")):
        verdicts = _verdicts(worths, view)
        tested = sum(len(v) for k, v in verdicts.items() if k != "untested")
        if not tested:
            out.append(f"{what}: nothing to compare yet (fewer than two seeds trained to the end on a side).")
            continue
        parts = []
        if verdicts.get("better"):
            parts.append(("the top needs " if view == "at_top" else "these help: ") + _named(verdicts["better"], view))
        if verdicts.get("worse"):
            parts.append(("leaving these out raises accuracy: " if view == "at_top" else "these hurt: ")
                         + _named(verdicts["worse"], view))
        if verdicts.get("undecided"):
            parts.append("no difference the seeds can detect for " + _named(verdicts["undecided"], view))
        out.append(f"{what} ({tested} comparison{'s' if tested > 1 else ''}, judged at {ALPHA:.0%} with Holm's correction): "
                   + "; ".join(parts) + ".")
    best = {}
    for view in ("at_top", "alone"):
        measured = [w for w in worths if getattr(w, view) is not None and getattr(w, view).verdict != "untested"]
        if measured:
            best[view] = max(measured, key=lambda w: getattr(w, view).difference.mean)
    if len(best) == 2 and best["at_top"] is best["alone"]:
        w = best["at_top"]
        out.append(f"Worth most in both views: `{w.label}` (at the top {w.at_top.points()}; "
                   f"alone {w.alone.points()}).")
    else:
        said = [f"{'given all the others' if view == 'at_top' else 'alone'}, `{w.label}` "
                f"({getattr(w, view).points()})" for view, w in best.items()]
        if said:
            out.append("Worth most " + "; ".join(said) + ".")
    together = [w for w in worths if w.together not in ("untested",)]
    more_top = [w for w in together if w.together == "more at the top"]
    more_alone = [w for w in together if w.together == "more alone"]
    if together:
        if more_top or more_alone:
            if more_top:
                out.append("Worth more at the top than alone (it needs the others): " + "; ".join(
                    f"`{w.label}` ({100 * w.at_top.difference.mean:+.2f} at the top against "
                    f"{100 * w.alone.difference.mean:+.2f} alone)" for w in more_top) + ".")
            if more_alone:
                out.append("Worth more alone than at the top (the others do its work, or stand in its way): "
                           + "; ".join(f"`{w.label}` ({100 * w.alone.difference.mean:+.2f} alone against "
                                       f"{100 * w.at_top.difference.mean:+.2f} at the top)" for w in more_alone) + ".")
        else:
            out.append(f"No change's worth at the top differs from its worth alone beyond the seeds' spread "
                       f"({len(together)} changes, Holm at {ALPHA:.0%}).")
    start = weighed.start.config.to_dict()
    for w in worths:
        undone = w.change.differs("without", weighed.top)
        if undone and set(undone) < {k for k, v in w.change.values.items() if start.get(k) != v}:
            out.append(f"Leaving out `{w.label}` undoes only " + ", ".join(
                f"{k}={top} → {without}" for k, (top, without) in undone.items())
                + ": a rung above it sets the rest again.")
        for view, why in w.change.refused.items():
            out.append(f"`{w.label}` is not trained {'left out of the top' if view == 'without' else 'alone'}: {why}.")
    return " ".join(out)


def candidates_part(weighed: OneChange) -> str:
    """The candidates added to the top on one dataset: a sentence of which earn a rung (better on
    validation accuracy, Holm), and a table with validation and test differences; '' when the entry
    has none."""
    if not weighed.candidates:
        return ""
    judged = [c for c in candidate_family(weighed).contrasts if c.verdict != "untested"]

    def named(verdict: str) -> str:
        return "; ".join(f"`{c.label}` ({c.points()})" for c in sorted(
            (c for c in judged if c.verdict == verdict), key=lambda c: -c.difference.mean))

    if not judged:
        sentence = "nothing to compare yet (fewer than two seeds trained to the end on a side)."
    else:
        parts = [f"{what} {named(v)}" for v, what in (("better", "these help and earn a rung of the ladder:"),
                                                        ("worse", "these hurt:"),
                                                        ("undecided", "no difference the seeds can detect for"))
                 if named(v)]
        sentence = (f"{len(judged)} comparison{'s' if len(judged) > 1 else ''} on validation accuracy, Holm at "
                    f"{ALPHA:.0%}: " + "; ".join(parts) + "." + ("" if named("better") else " None earns a rung."))
    refused = "".join(f" `{c.label}` is not trained at the top: {c.refused}." for c in weighed.candidates if c.refused)
    rows = candidate_rows(weighed)
    return (f"**After 2015, added to the top** (`{weighed.top.label}` with one technique of the chapters after Adam): "
            f"{sentence}{refused}\n\n"
            + md_table(list(rows[0]), [[f"`{r['candidate']}`", f"`{r['changes']}`" if r["changes"] != "–" else "–",
                                        *list(r.values())[2:]] for r in rows], "llrlr"))


def one_change_section(profile: str, out_dir: Path) -> str:
    """The section, or what is missing: nothing where the specification has no entry of kind
    one_change; how many runs are in while the profile's runs are being trained."""
    if not any(kind(e) == "one_change" for e in load_spec()["notebooks"].values()):
        return ""
    notebook = notebook_of_kind("one_change")
    settings = profile_settings(notebook, profile)
    datasets = list(settings["datasets"])
    if not datasets:
        return ""
    weighed_on = {d: one_change(d, profile) for d in datasets}
    first = weighed_on[datasets[0]]
    labels = [n for n, _ in rung_changes(datasets[0], profile, first.ladder)]
    above = labels[labels.index(first.top.label) + 1:]
    longest = {}  # the longest rung above the top, per dataset: what both views would cost there
    for d in datasets:
        top_epochs = weighed_on[d].top.config.epochs
        epochs = max((r.config.epochs for r in ladder(d, profile)[labels.index(first.top.label) + 1:]), default=0)
        if epochs > top_epochs:
            longest.setdefault(epochs, []).append(dataset_title(d))
    seeds = first.top.seeds
    out = [f"{HEADING}\n\nThe ladder above adds its changes in one order, so what a rung adds depends on the rungs "
           f"below it. Two views here do not depend on that order. **Left out of the top:** `{first.top.label}` "
           f"(every change up to it applied) with one change left out and the others kept: the drop is what the "
           f"change is worth given all the others. **Applied alone:** `{first.start.label}` with one change applied "
           f"and nothing else: the gain is what the change is worth on its own. Both are derived from the ladder's "
           f"definition in `notebooks/sweep.yml` (the entry `{notebook}`): {len(seeds)} seed{'s' if len(seeds) > 1 else ''} "
           f"({', '.join(map(str, seeds))}), {first.top.config.epochs} epochs, the ladder's own budget for its top."
           + (f" The rungs above the top ({', '.join(f'`{n}`' for n in above)}) are left out: they train longer ("
              + "; ".join(f"{e} epochs on {', '.join(names)}" for e, names in longest.items())
              + "), and every run of both views would cost as much." if longest else "")
           + " A change worth much at the top but little alone needs the others; one worth much alone but little "
             "at the top has its work done by the others."
           + (f" **Added to the top:** each of {len(first.candidates)} techniques of the chapters after Adam, which "
              "the ladder does not have, added to the top alone, the same seeds and epochs; one better than the top "
              "on validation earns a rung of the ladder on that dataset." if first.candidates else "") + "\n"]
    every = ladder(datasets[0], profile, include_pending=True)
    names = [r.label for r in every]
    if first.start.label in names and names.index(first.start.label) > 0:  # a start above the ladder's first rung
        below = every[:names.index(first.start.label)]
        one_a_step = [f"`{r.label}`" for r in below if r.config.batch_size == 1]
        out.append(f"The start is the ladder's rung `{first.start.label}`, not its first: what the rungs below it "
                   f"({', '.join(f'`{r.label}`' for r in below)}) change is measured by the ladder's own steps, not in "
                   "these views"
                   + (f". {', '.join(one_a_step)} train{'s' if len(one_a_step) == 1 else ''} one example a step, and "
                      "each change applied alone there would too, at tens of thousands of optimizer steps a pass"
                      if one_a_step else "") + ".\n")
    if not param_sets(notebook, profile):  # the profile's runs are being trained
        from ..executions import pending_configs

        stored, wanted = stored_of(pending_configs(profile, notebook))
        out.append(f"The runs of the {profile} profile are being trained: {stored} of {wanted} are in the store. "
                   f"The figure, the table and the findings appear here once every run is in; `make book "
                   f"PROFILE=quick` shows them on the quick profile's short runs meanwhile.\n")
        return "\n".join(out)
    for d in datasets:
        weighed = weighed_on[d]
        worths = worth(weighed)
        out.append(f"### {dataset_title(d)}\n")
        if any(len(e.stored_runs()) for e in weighed.experiments()):
            name = f"which_change_{d}.png"
            fig = plots.change_worth([w.label for w in worths], [w.at_top and w.at_top.difference for w in worths],
                                     [w.alone and w.alone.difference for w in worths])
            fig.axes[0].set_title(f"Each change alone and at the top, {dataset_title(d)} ({profile} profile)")
            plots.save(fig, out_dir / GENERATED / IMAGES / name)
            out.append(figure_md(f"{GENERATED}/{IMAGES}/{name}", f"each change alone and at the top on {dataset_title(d)}",
                                 f"{dataset_title(d)}: per change, its gain when applied alone to "
                                 f"`{weighed.start.label}` (open) and its worth at the top, the drop when it is left "
                                 f"out of `{weighed.top.label}` (filled); mean difference of test accuracy with its "
                                 f"95% interval, in points."))
        out.append(f"**What we found.** {change_sentences(weighed, worths)}\n")
        rows = worth_rows(weighed, worths)
        out.append(md_table(list(rows[0]), [[f"`{r['change']}`"] + [f"`{v}`" if k in ("undone at the top", "applied alone")
                                                                     and v != "–" else v
                                                                     for k, v in list(r.items())[1:]] for r in rows],
                            "llrlrr") if rows else "")
        out.append(candidates_part(weighed))
    out.append(f"Points of test accuracy at the best-validation epoch: worth at the top = the top minus the top "
               f"without the change; gain alone = the start with it minus the start; each view one family of "
               f"comparisons judged at {ALPHA:.0%} with Holm's correction ({', '.join(VERDICT_WORDS.values())}: "
               f"what the change does in that view). The last column is the difference of the two, with its own "
               f"95% interval and Holm-adjusted p over the changes measured in both views."
               + (" The candidates after 2015 are judged on validation accuracy (best epoch), the test set "
                  "beside it choosing nothing: a candidate better on validation earns a rung on that dataset."
                  if first.candidates else "") + "\n")
    return "\n".join(out)
