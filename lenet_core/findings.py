"""What the runs found, judged and said in words: each setting against a reference, corrected for
the number of comparisons (Holm), the smallest difference the seeds could have detected, and the
seeds that disagree with the others, explained from their records.

The verdict of one comparison follows its statistics and nothing else: "better" or "worse" when
Holm's step-down procedure rejects "no difference" at the 5% level for the family of comparisons it
belongs to (the settings of one chapter on one dataset, or the rungs of one ladder), "undecided"
when it does not, "untested" when either side has fewer than two seeds that trained to the end.
Every interval is the 95% interval of the difference of means (Welch). The test set decides
nothing here: the numbers compared are what the pages already show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.special import stdtrit

from .records import Run, Runs
from .stats import Summary, welch_difference, welch_p

ALPHA = 0.05  # family-wise error rate of each family of comparisons
POWER = 0.8  # of the smallest detectable difference
METRIC = "test_acc_best"


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, at most 1), in the order given. A nan (a
    comparison that could not be made) stays nan and does not count in the number of comparisons."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m, out, running = len(order), [math.nan] * len(pvalues), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


@dataclass(frozen=True)
class Contrast:
    """One setting against its reference: the difference of means (fractions) with its 95% interval."""

    label: str
    runs: Runs
    reference: Runs
    difference: Summary
    p: float
    p_holm: float
    verdict: str  # "better", "worse", "undecided" or "untested"
    detectable: float  # the true difference these seeds find with POWER (fraction); nan when unknown

    def points(self) -> str:
        """'+0.52 points, 95% CI +0.30 to +0.74', without the interval where it is undefined."""
        d = self.difference
        text = f"{100 * d.mean:+.2f} points"
        if not math.isnan(d.half_width):
            text += f", 95% CI {100 * d.low:+.2f} to {100 * d.high:+.2f}"
        return text


@dataclass(frozen=True)
class Family:
    """The comparisons judged together (one Holm family)."""

    contrasts: list[Contrast]

    def of(self, verdict: str) -> list[Contrast]:
        return [c for c in self.contrasts if c.verdict == verdict]


def judge(pairs: Sequence[tuple[str, Runs, Runs]], metric: str = METRIC, alpha: float = ALPHA) -> Family:
    """Each (label, runs, reference runs) as one comparison of a Holm family."""
    raw = []
    for label, runs, reference in pairs:
        a, b = runs.values(metric), reference.values(metric)
        raw.append((label, runs, reference, a, b, welch_difference(a, b), welch_p(a, b)))
    adjusted = holm([p for *_, p in raw])
    m = sum(not math.isnan(p) for p in adjusted)
    contrasts = []
    for (label, runs, reference, a, b, diff, p), p_holm in zip(raw, adjusted):
        if math.isnan(p_holm):
            verdict = "untested"
        elif p_holm < alpha:
            verdict = "better" if diff.mean > 0 else "worse"
        else:
            verdict = "undecided"
        contrasts.append(Contrast(label, runs, reference, diff, p, p_holm, verdict,
                                  detectable_difference(a, b, m, alpha)))
    return Family(contrasts)


def detectable_difference(a: Sequence[float], b: Sequence[float], m: int, alpha: float = ALPHA,
                          power: float = POWER) -> float:
    """The true difference that samples of these sizes and this spread find with probability
    `power` at the strictest Holm level of m comparisons (alpha / m, two-sided): (t at 1 - alpha/2m
    plus t at `power`) times the standard error of the difference, on Welch's degrees of freedom."""
    if len(a) < 2 or len(b) < 2 or m < 1:
        return math.nan
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float((stdtrit(df, 1 - alpha / (2 * m)) + stdtrit(df, power)) * se)


def _names(contrasts: Sequence[Contrast], detectable: bool = False) -> str:
    parts = []
    for c in contrasts:
        text = f"`{c.label}` ({c.points()}, Holm-adjusted p {_p(c.p_holm)}"
        if detectable and not math.isnan(c.detectable):
            text += f"; detectable: about {100 * c.detectable:.2f} points"
        parts.append(text + ")")
    return "; ".join(parts)


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def family_sentences(family: Family, reference: str | None, what: str = "the baseline") -> str:
    """The verdicts of one family as sentences with their numbers: which settings beat `reference`,
    which are worse, which cannot be told apart at this number of seeds (with the difference their
    seeds could have detected)."""
    tested = [c for c in family.contrasts if c.verdict != "untested"]
    if not tested:
        return "Nothing to compare yet: fewer than two seeds trained to the end on a side of every comparison."
    m = len(tested)
    n = sorted({len(c.runs.values()) for c in tested} | {len(c.reference.values()) for c in tested})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
    named = f" (`{reference}`)" if reference else ""
    out = [f"{m} comparison{'s' if m > 1 else ''} with {what}{named}, {seeds} seeds a side, "
           f"judged at {ALPHA:.0%} with Holm's correction for {'the ' + str(m) if m > 1 else 'one comparison'}."]

    def by_size(verdict):
        return sorted(family.of(verdict), key=lambda c: -abs(c.difference.mean))

    better, worse, undecided = by_size("better"), by_size("worse"), by_size("undecided")
    if better:
        out.append(f"**Better** than {what}: {_names(better)}.")
    if worse:
        out.append(f"**Worse** than {what}: {_names(worse)}.")
    if undecided:
        head = "**None can be told apart**" if not better and not worse else "**Cannot be told apart**"
        out.append(f"{head} from {what} at this number of seeds: {_names(undecided, detectable=True)}. "
                   f"\"Detectable\" is the true difference, in points, that those seeds would have found with "
                   f"{POWER:.0%} power at the strictest Holm level, given their spread: smaller effects may exist "
                   f"unseen.")
    untested = family.of("untested")
    if untested:
        out.append("Not compared (fewer than two seeds trained to the end on a side): "
                   + ", ".join(f"`{c.label}`" for c in untested) + ".")
    return " ".join(out)


# -- seeds that disagree --------------------------------------------------------------------------

CHANCE_MARGIN = 0.15  # validation accuracy within this of chance (1 / classes) counts as near chance
DEAD = 0.9  # a layer with at least this fraction of dead ReLU units at the end is named


def failure(run: Run, classes: int) -> tuple[str, str] | None:
    """What went wrong in one run, from its history, as (kind, sentence), or None when it trained
    normally. Kinds: "diverged", "stuck" (near chance from start to end), "fell" (learned, then fell
    back to near chance and stayed there)."""
    if not run.ok:
        epoch = run.metric("diverged_epoch")
        return "diverged", f"its loss diverged (became non-finite) in epoch {epoch}" if epoch else "its loss diverged"
    epochs = [(h["epoch"], h["val_acc"]) for h in run.history if h["val_acc"] is not None]
    accs = [a for _, a in epochs]
    level = 1 / classes + CHANCE_MARGIN
    if not accs or accs[-1] > level:
        return None
    if max(accs) <= level:
        return "stuck", f"its validation accuracy stayed near chance (at most {100 * max(accs):.1f}%) for all {len(accs)} epochs"
    fell = len(accs)
    while fell > 1 and accs[fell - 2] <= level:
        fell -= 1
    return "fell", (f"its validation accuracy reached {100 * max(accs[:fell - 1]):.1f}%, fell to "
                    f"{100 * accs[fell - 1]:.1f}% in epoch {epochs[fell - 1][0]} and stayed near chance "
                    f"(at most {100 * max(accs[fell - 1:]):.1f}%) to the last epoch")


def _dead_layers(run: Run) -> dict[str, float]:
    if run.config.act != "relu":  # "dead" means "always zero" only for ReLU
        return {}
    return {layer: f for layer, f in _dead(run).items() if f >= DEAD}


def split_seeds(runs: Runs, label: str, classes: int) -> str | None:
    """Where some seeds of a setting failed (diverged, stuck at or fell back to chance) and others
    trained, which seeds, what their training did and, where the records show it, why. None when
    no seed failed."""
    failed = {r.seed: f for r in runs if (f := failure(r, classes))}
    if not failed:
        return None
    fine = [r for r in runs if r.seed not in failed]
    kinds = {kind for kind, _ in failed.values()}
    if not fine and kinds == {"stuck"}:
        top = max(h["val_acc"] for r in runs for h in r.history if h["val_acc"] is not None)
        out = (f"`{label}`: every seed of {len(runs)} failed: validation accuracy stayed near chance (at most "
               f"{100 * top:.1f}%) from the first epoch to the last.")
    else:
        who = "every seed" if not fine else \
            f"seed{'s' if len(failed) > 1 else ''} {', '.join(str(s) for s in sorted(failed))}"
        out = (f"`{label}`: {who} of {len(runs)} failed: "
               + "; ".join(f"seed {s}: {why}" for s, (_, why) in sorted(failed.items())) + ".")
    dead = {r.seed: d for r in runs if r.seed in failed and (d := _dead_layers(r))}
    if dead:
        said = "; ".join(f"seed {s}: " + ", ".join(f"{100 * f:.0f}% of {layer}'s units" for layer, f in d.items())
                         for s, d in sorted(dead.items()))
        out += (f" The records show why: at the end of training, ReLU units were dead (zero on every image of "
                f"the diagnostic batch) in {said}, so little or nothing of the image reached the output layer")
        layers = sorted({layer for d in dead.values() for layer in d})
        if fine:
            worst = [max(_dead(r).get(layer, 0.0) for r in fine) for layer in layers]
            out += ", against at most " + ", ".join(f"{100 * f:.0f}% of {layer}'s" for f, layer in
                                                    zip(worst, layers)) + " in the seeds that trained"
        out += "."
    if fine:
        reached = [f"{100 * v:.2f}%" for r in fine if (v := r.metric(METRIC)) is not None]
        out += f" The other seed{'s' if len(fine) > 1 else ''} reached {', '.join(reached)} test accuracy."
    if "fell" in kinds:
        out += (" A run that fell back to chance still counts in the mean above, scored at its best-validation "
                "epoch, before the fall; a diverged run does not count.")
    return out


def _dead(run: Run) -> dict[str, float]:
    return (run.record.get("diagnostics") or {}).get("dead_fraction") or {}
