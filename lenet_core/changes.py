"""Which change matters most: each change of the ladder on its own, in two views that do not depend
on the order of the rungs.

The ladder adds its changes one after another, so what a rung adds depends on the rungs below it.
An entry of kind `one_change` in the sweep specification (`of`: the ladder, `top` and `start`: two
of its rungs) weighs each change between the two, the rungs above `start` up to `top`:

- **leave one out from the top**: the ladder replayed to `top` without that rung. Fields a later
  rung sets again keep the later value, so undoing a rung undoes what of it reaches the top; the
  drop from the top is what the change is worth given all the others.
- **add one to the start**: the `start` rung plus that rung's fields alone; the gain over the
  start is what the change is worth alone.

- **candidates at the top** (the entry's `candidates`): changes the ladder does not have yet, each
  added to the top alone. Judged on validation accuracy against the top (`candidate_family`), a
  candidate that helps there is what earns a new rung of the ladder on that dataset.

Both sets are derived from the ladder's definition, so a new rung joins both views. Every run has
the ladder's epochs and training set (the top's and the start's runs are the ladder's own runs,
for the seeds of the entry's profile). A combination the engine refuses (say, a setting that needs
another the start does not have) is listed with its reason instead of trained.

    weighed = one_change("mnist", "quick")
    weighed.changes[0].without, weighed.changes[0].alone   # Experiments (None where refused)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from .experiments import (Experiment, check_notebook, experiment, notebook_of_kind, per_dataset, profile_settings,
                          rung_changes)
from .findings import ALPHA, METRIC, Contrast, Family, _p, holm, judge
from .records import Runs
from .stats import Summary, interaction

VERDICT_WORDS = {"better": "helps", "worse": "hurts", "undecided": "undecided"}  # of a change, in a view


@dataclass
class Change:
    """One rung's change, in both views."""

    label: str  # the rung's name
    values: dict  # the fields the rung sets (resolved for the dataset)
    without: Experiment | None  # the top with this rung left out; None when refused
    alone: Experiment | None  # the start with this rung's fields alone; None when refused
    refused: dict[str, str] = field(default_factory=dict)  # view -> why it is not trained

    def differs(self, view: str, reference: Experiment) -> dict[str, tuple]:
        """The fields in which `view`'s configuration differs from `reference`'s: name -> (the
        reference's value, this view's)."""
        exp = getattr(self, view)
        if exp is None:
            return {}
        a, b = reference.config.to_dict(), exp.config.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k != "seed"}


@dataclass
class Candidate:
    """A change the ladder does not have, added to its top alone."""

    label: str
    values: dict  # the fields it sets (resolved for the dataset)
    at_top: Experiment | None  # the top with it; None when refused
    refused: str = ""  # why it is not trained

    def differs(self, top: Experiment) -> dict[str, tuple]:
        """The fields in which it differs from the top: name -> (the top's value, its value)."""
        if self.at_top is None:
            return {}
        a, b = top.config.to_dict(), self.at_top.config.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k != "seed"}


@dataclass
class OneChange:
    """The two views of one ladder on one dataset."""

    notebook: str  # the entry of kind one_change
    ladder: str  # the ladder notebook it weighs
    dataset: str
    profile: str
    start: Experiment
    top: Experiment
    changes: list[Change]
    candidates: list[Candidate] = field(default_factory=list)

    def experiments(self) -> list[Experiment]:
        """Every experiment of both views: the start, the top, then each change's trained views,
        then each candidate at the top."""
        return ([self.start, self.top] + [e for c in self.changes for e in (c.without, c.alone) if e is not None]
                + [c.at_top for c in self.candidates if c.at_top is not None])


def one_change(dataset: str = "mnist", profile: str = "quick", seeds: list[int] | None = None,
               data_copy: str | None = None, notebook: str | None = None) -> OneChange:
    """Both views of the entry `notebook` (default: the notebook of kind one_change) on `dataset`.
    Seeds: the entry's profile's, unless given."""
    notebook = notebook or notebook_of_kind("one_change")
    entry = check_notebook(notebook)
    ladder_nb = entry["of"]
    rungs = rung_changes(dataset, profile, ladder_nb)
    names = [name for name, _ in rungs]
    start_i = names.index(entry.get("start", names[0]))
    top_i = names.index(entry["top"])
    seeds = list(profile_settings(notebook, profile)["seeds"]) if seeds is None else seeds

    def build(label: str, chosen: list[int], extra: dict | None = None) -> Experiment:
        values: dict = {}
        for i in chosen:
            values.update(rungs[i][1])
        values.update(extra or {})
        return experiment(ladder_nb, dataset=dataset, profile=profile, seeds=seeds, label=label,
                          data_copy=data_copy, **values)

    below_start = list(range(start_i + 1))
    start = build(names[start_i], below_start)
    top = build(names[top_i], list(range(top_i + 1)))
    changes = []
    for k in range(start_i + 1, top_i + 1):
        label, values = rungs[k]
        change = Change(label, values, None, None)
        for view, chosen, reference, same in (
                ("without", [i for i in range(top_i + 1) if i != k], top,
                 "every field it sets is set again by a rung above it, so the top is the same without it"),
                ("alone", below_start + [k], start, f"the start ({names[start_i]}) already has every field it sets")):
            try:
                exp = build(f"{'without' if view == 'without' else 'only'} {label}", chosen)
            except ValueError as exc:  # a combination the engine refuses
                change.refused[view] = str(exc)
                continue
            if exp.config == reference.config:
                change.refused[view] = same
                continue
            setattr(change, view, exp)
        changes.append(change)
    candidates = []
    for spec in entry.get("candidates", []):
        values = {k: per_dataset(v, dataset) for k, v in spec.items() if k != "rung"}
        candidate = Candidate(spec["rung"], values, None)
        try:
            exp = build(spec["rung"], list(range(top_i + 1)), values)
        except ValueError as exc:  # a combination the engine refuses
            candidate.refused = str(exc)
        else:
            if exp.config == top.config:
                candidate.refused = "the top already has every field it sets"
            else:
                candidate.at_top = exp
        candidates.append(candidate)
    return OneChange(notebook, ladder_nb, dataset, profile, start, top, changes, candidates)


def candidate_family(weighed: OneChange, runs_of: Callable[[Experiment], Runs] | None = None,
                     metric: str = "val_acc_best") -> Family:
    """Each candidate at the top against the top, one Holm family, on `metric` (validation
    accuracy: what decides whether a candidate earns a rung; the test set chooses nothing)."""
    runs_of = runs_of or (lambda e: e.stored_runs())
    top = runs_of(weighed.top)
    return judge([(c.label, runs_of(c.at_top), top) for c in weighed.candidates if c.at_top is not None], metric)


def candidate_rows(weighed: OneChange, runs_of: Callable[[Experiment], Runs] | None = None) -> list[dict]:
    """One row per candidate: the fields it changes at the top, its difference from the top on
    validation accuracy with the verdict that decides its rung, and on test accuracy beside it."""
    val = {c.label: c for c in candidate_family(weighed, runs_of).contrasts}
    test = {c.label: c for c in candidate_family(weighed, runs_of, metric="test_acc_best").contrasts}
    rows = []
    for c in weighed.candidates:
        v, t = val.get(c.label), test.get(c.label)
        rows.append({"candidate": c.label,
                     "changes": ", ".join(f"{k}={new}" for k, (_, new) in c.differs(weighed.top).items()) or "–",
                     "validation acc vs the top": v.points() if v else "–",
                     "on validation": VERDICT_WORDS.get(v.verdict, v.verdict) if v else "refused",
                     "test acc vs the top": t.points() if t else "–"})
    return rows


# -- what each change is worth ---------------------------------------------------------------------

@dataclass
class Worth:
    """One change's numbers in both views (test accuracy at the best-validation epoch, fractions):
    `at_top` = top - top without it, `alone` = start with it - start, each a Contrast of its view's
    Holm family (None where the view is refused); `interaction` = at_top - alone with its 95%
    interval, Holm-adjusted p over the changes measured in both views, and its verdict."""

    change: Change
    at_top: Contrast | None
    alone: Contrast | None
    interaction: Summary | None = None
    interaction_p: float = math.nan
    interaction_holm: float = math.nan

    @property
    def label(self) -> str:
        return self.change.label

    @property
    def together(self) -> str:
        """"more at the top", "more alone", "undecided" or "untested": whether the change is worth
        more given all the others than alone (Holm at findings.ALPHA)."""
        if self.interaction is None or math.isnan(self.interaction_holm):
            return "untested"
        if self.interaction_holm >= ALPHA:
            return "undecided"
        return "more at the top" if self.interaction.mean > 0 else "more alone"


def worth(weighed: OneChange, runs_of: Callable[[Experiment], Runs] | None = None,
          metric: str = METRIC) -> list[Worth]:
    """What each change of `weighed` is worth in both views, from `runs_of(experiment)` (default:
    the runs in the store; nothing is trained): one Holm family per view, and one for the
    interactions (the changes measured in both views)."""
    runs_of = runs_of or (lambda e: e.stored_runs())
    start, top = runs_of(weighed.start), runs_of(weighed.top)
    at_top = judge([(c.label, top, runs_of(c.without)) for c in weighed.changes if c.without is not None], metric)
    alone = judge([(c.label, runs_of(c.alone), start) for c in weighed.changes if c.alone is not None], metric)
    views = {"without": {x.label: x for x in at_top.contrasts}, "alone": {x.label: x for x in alone.contrasts}}
    out = [Worth(c, views["without"].get(c.label), views["alone"].get(c.label)) for c in weighed.changes]
    both = [w for w in out if w.at_top is not None and w.alone is not None]
    for w in both:
        w.interaction, w.interaction_p = interaction(w.at_top.runs.values(metric), w.at_top.reference.values(metric),
                                                     w.alone.runs.values(metric), w.alone.reference.values(metric))
    for w, p in zip(both, holm([w.interaction_p for w in both])):
        w.interaction_holm = p
    return out


def _fields(differs: dict) -> str:
    return ", ".join(f"{k}={new}" for k, (_, new) in differs.items())


def _points(contrast: Contrast | None, refused: str | None) -> str:
    if contrast is None:
        return "not trained: " + refused if refused else "–"
    if contrast.verdict == "untested":
        return "–" if not len(contrast.runs) or not len(contrast.reference) else contrast.points()
    return f"{contrast.points()} ({VERDICT_WORDS[contrast.verdict]})"


def worth_rows(weighed: OneChange, worths: list[Worth]) -> list[dict]:
    """One row per change, for the notebook's and the book's tables: what each view changes (the
    fields that differ from the top or the start), its worth there with the verdict of its Holm
    family (better: the change helps), and the interaction."""
    rows = []
    for w in worths:
        c = w.change
        inter = "–"
        if w.interaction is not None and w.interaction.n:
            inter = f"{100 * w.interaction.mean:+.2f}"
            if not math.isnan(w.interaction.half_width):
                inter += (f" (95% CI {100 * w.interaction.low:+.2f} to {100 * w.interaction.high:+.2f}; "
                          f"Holm-adjusted p {_p(w.interaction_holm)}: {w.together})")
        rows.append({"change": c.label,
                     "undone at the top": _fields(c.differs("without", weighed.top)) or "–",
                     "worth at the top": _points(w.at_top, c.refused.get("without")),
                     "applied alone": _fields(c.differs("alone", weighed.start)) or "–",
                     "gain alone": _points(w.alone, c.refused.get("alone")),
                     "at the top minus alone": inter})
    return rows
