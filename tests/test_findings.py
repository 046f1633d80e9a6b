"""lenet_core.findings: Holm's correction, verdicts, detectable differences and the sentences about
seeds that failed, on records built by hand (no training, no data)."""

import math

import numpy as np
import pytest
import scipy.stats

from lenet_core import findings
from lenet_core.config import RunConfig
from lenet_core.findings import (POWER, Contrast, Family, detectable_difference, failure, family_sentences, holm,
                                 judge, split_seeds)
from lenet_core.records import Run, Runs
from lenet_core.stats import welch_difference, welch_p

CLASSES = 10  # chance 10%; "near chance" is at most 25%


def record(seed, acc=None, *, status="ok", act="relu", accs=(0.90, 0.95, 0.97), dead=None, diverged_epoch=None):
    """One run's record: `accs` are the validation accuracies of its epochs, `acc` its test_acc_best."""
    history = [{"epoch": e, "val_acc": a, "val_loss": 0.1, "train_acc": a} for e, a in enumerate(accs, 1)]
    if status == "diverged":
        history.append({"epoch": len(history) + 1, "val_acc": None, "val_loss": None, "train_acc": None})
    rec = {"key": f"k{seed}", "status": status, "config": RunConfig(seed=seed, act=act).to_dict(),
           "metrics": {"test_acc_best": acc if status == "ok" else None, "diverged_epoch": diverged_epoch},
           "history": history}
    if dead is not None:
        rec["diagnostics"] = {"dead_fraction": dead}
    return rec


def runs(values, start=0, **kw):
    return Runs([record(start + i, v, **kw) for i, v in enumerate(values)])


def diverged(n, start=0, epoch=3):
    return Runs([record(start + i, status="diverged", diverged_epoch=epoch) for i in range(n)])


# -- holm -------------------------------------------------------------------------------------------

def test_holm_hand_computed_with_nan():
    # m = 4 (the nan does not count): sorted 0.01, 0.03, 0.04, 0.5 -> 4*.01, 3*.03, max(.09, 2*.04), 1*.5
    out = holm([0.01, math.nan, 0.04, 0.03, 0.5])
    assert math.isnan(out[1])
    assert [out[i] for i in (0, 2, 3, 4)] == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_holm_step_down_is_monotone_and_keeps_order():
    # Without the running maximum the larger raw p (0.04) would get 1 * 0.04 < 2 * 0.03.
    assert holm([0.04, 0.03]) == pytest.approx([0.06, 0.06])
    p = [0.2, 0.001, 0.011, 0.01]
    out = holm(p)
    assert out == pytest.approx([0.2, 0.004, 0.03, 0.03])
    ranked = [out[i] for i in np.argsort(p)]
    assert all(b >= a for a, b in zip(ranked, ranked[1:]))


def test_holm_caps_at_one():
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])
    assert holm([0.9]) == [0.9]
    assert holm([]) == []
    assert all(math.isnan(x) for x in holm([math.nan, math.nan]))


def _holm_reference(p):
    """Straightforward Holm: adj_(k) = min(1, max over j <= k of (m - j) p_(j)), j from 0, nan skipped."""
    p = np.asarray(p, dtype=float)
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    for k, i in enumerate(order):
        out[i] = min(1.0, max((m - j) * p[order[j]] for j in range(k + 1)))
    return out


def test_holm_matches_reference_on_random_vectors():
    rng = np.random.default_rng(20240611)
    for n in (1, 2, 3, 5, 8, 13):
        for _ in range(5):
            p = rng.uniform(0, 0.3, n)
            p[rng.random(n) < 0.2] = np.nan
            np.testing.assert_allclose(holm(list(p)), _holm_reference(p), rtol=1e-12, equal_nan=True)


# -- judge ------------------------------------------------------------------------------------------

REF = [0.980, 0.981, 0.982]


def test_judge_better_worse_undecided_untested():
    family = judge([
        ("up", runs([0.990, 0.991, 0.992]), runs(REF)),
        ("down", runs([0.970, 0.971, 0.972]), runs(REF)),
        ("same", runs([0.979, 0.983, 0.981]), runs(REF)),
        ("one seed", runs([0.999]), runs(REF)),
        ("all diverged", diverged(3), runs(REF)),
        ("one diverged of two", Runs([record(0, 0.99), record(1, status="diverged")]), runs(REF)),
    ])
    assert [c.verdict for c in family.contrasts] == ["better", "worse", "undecided", "untested", "untested",
                                                     "untested"]
    assert [c.label for c in family.of("untested")] == ["one seed", "all diverged", "one diverged of two"]
    for c in family.of("untested"):
        assert math.isnan(c.p) and math.isnan(c.p_holm) and math.isnan(c.detectable)
    up, down, same = family.contrasts[:3]
    assert up.p_holm == pytest.approx(holm([up.p, down.p, same.p])[0])
    assert up.p == pytest.approx(welch_p([0.990, 0.991, 0.992], REF))
    assert same.p_holm >= 0.05


def test_judge_difference_is_difference_of_means():
    a, b = [0.95, 0.97, 0.96, 0.99], [0.93, 0.94, 0.92]
    (c,) = judge([("x", runs(a), runs(b))]).contrasts
    assert c.difference.mean == pytest.approx(np.mean(a) - np.mean(b))
    assert c.difference.half_width == pytest.approx(welch_difference(a, b).half_width)
    assert c.verdict == "better"


def test_holm_turns_a_raw_significant_p_into_undecided():
    a, b = [0.55, 0.57, 0.59], [0.50, 0.52, 0.54]  # difference 5 points, sd 2 points each: p about 0.04
    raw = welch_p(a, b)
    assert raw < 0.05
    alone = judge([("x", runs(a), runs(b))])
    assert alone.contrasts[0].verdict == "better"
    family = judge([("x", runs(a), runs(b)),
                    ("y", runs([0.51, 0.52, 0.53]), runs(b)),
                    ("z", runs([0.50, 0.53, 0.53]), runs(b))])
    x = family.contrasts[0]
    assert x.p == pytest.approx(raw)
    assert x.p_holm == pytest.approx(3 * raw)  # the smallest of three
    assert x.p_holm >= 0.05
    assert x.verdict == "undecided"
    assert [c.verdict for c in family.contrasts] == ["undecided"] * 3


def test_points_formatting():
    a, b = [0.97, 0.98, 0.99], [0.95, 0.96, 0.97]
    (c,) = judge([("x", runs(a), runs(b))]).contrasts
    d = welch_difference(a, b)
    assert c.points() == f"+2.00 points, 95% CI {100 * d.low:+.2f} to {100 * d.high:+.2f}"
    # se = 0.01 * sqrt(2/3), df 4, t 2.776: half-width 2.27 points
    assert c.points() == "+2.00 points, 95% CI -0.27 to +4.27"
    (c,) = judge([("x", runs(b), runs(a))]).contrasts
    assert c.points() == "-2.00 points, 95% CI -4.27 to +0.27"
    (c,) = judge([("x", runs([0.99]), runs(b))]).contrasts
    assert c.points() == "+3.00 points"


def test_judge_detectable_uses_the_number_of_tested_comparisons():
    a, b, c_ = [0.95, 0.97, 0.96], [0.93, 0.94, 0.92], [0.94, 0.95, 0.97]
    family = judge([("x", runs(a), runs(b)), ("y", runs(c_), runs(b)), ("u", runs([0.9]), runs(b))])
    assert family.contrasts[0].detectable == pytest.approx(detectable_difference(a, b, 2))
    assert family.contrasts[1].detectable == pytest.approx(detectable_difference(c_, b, 2))
    assert family.contrasts[0].detectable != pytest.approx(detectable_difference(a, b, 3))


# -- detectable_difference --------------------------------------------------------------------------

def _detectable_reference(a, b, m, alpha=0.05, power=0.8):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return (scipy.stats.t.ppf(1 - alpha / (2 * m), df) + scipy.stats.t.ppf(power, df)) * math.sqrt(va + vb)


@pytest.mark.parametrize("a, b, m", [
    ([0.95, 0.97, 0.96], [0.93, 0.94, 0.92], 1),
    ([0.95, 0.97, 0.96, 0.90, 0.99], [0.93, 0.94], 4),
    ([0.5, 0.6], [0.55, 0.65, 0.70, 0.52], 7),
])
def test_detectable_matches_scipy(a, b, m):
    assert detectable_difference(a, b, m) == pytest.approx(_detectable_reference(a, b, m), rel=1e-9)


def test_detectable_grows_with_m_and_shrinks_with_seeds():
    a, b = [0.95, 0.97, 0.96], [0.93, 0.94, 0.92]
    d = [detectable_difference(a, b, m) for m in (1, 2, 5, 20)]
    assert all(y > x for x, y in zip(d, d[1:]))

    def spread(n, sd=0.01):  # n values with exactly this sample standard deviation
        x = np.arange(n, dtype=float)
        return list(0.9 + sd * (x - x.mean()) / x.std(ddof=1))

    sizes = [detectable_difference(spread(n), spread(n), 1) for n in (2, 3, 5, 10)]
    assert all(y < x for x, y in zip(sizes, sizes[1:]))


def test_detectable_undefined_and_degenerate():
    assert math.isnan(detectable_difference([0.9], [0.8, 0.7], 1))
    assert math.isnan(detectable_difference([0.9, 0.8], [], 1))
    assert math.isnan(detectable_difference([0.9, 0.8], [0.8, 0.7], 0))
    assert detectable_difference([0.9, 0.9], [0.8, 0.8], 3) == 0.0


def test_detectable_difference_has_about_the_stated_power():
    n, sims = 5, 4000
    x = np.arange(n, dtype=float)
    unit = list((x - x.mean()) / x.std(ddof=1))  # sample sd exactly 1, the true sd simulated below
    d = detectable_difference(unit, unit, 1)
    assert d == pytest.approx(_detectable_reference(unit, unit, 1))
    rng = np.random.default_rng(7)
    p = scipy.stats.ttest_ind(rng.normal(d, 1, (sims, n)), rng.normal(0, 1, (sims, n)), axis=1,
                              equal_var=False).pvalue
    assert abs((p < 0.05).mean() - POWER) < 0.05


# -- family_sentences -------------------------------------------------------------------------------

def _sections(text):
    """The text cut at each bold head / the 'Not compared' list: {head: its section}."""
    heads = ["**Better**", "**Worse**", "**Cannot be told apart**", "**None can be told apart**", "Not compared"]
    at = sorted((text.index(h), h) for h in heads if h in text)
    return {h: text[i:(at[k + 1][0] if k + 1 < len(at) else len(text))] for k, (i, h) in enumerate(at)}


def test_family_sentences_sections():
    family = judge([
        ("small up", runs([0.986, 0.987, 0.988]), runs(REF)),
        ("big up", runs([0.990, 0.991, 0.992]), runs(REF)),
        ("down", runs([0.970, 0.971, 0.972]), runs(REF)),
        ("same", runs([0.979, 0.983, 0.981]), runs(REF)),
        ("lonely", runs([0.999]), runs(REF)),
    ])
    text = family_sentences(family, "base")
    assert text.startswith("4 comparisons with the baseline (`base`), 3 seeds a side, judged at 5% with Holm's "
                           "correction for the 4.")
    s = _sections(text)
    assert set(s) == {"**Better**", "**Worse**", "**Cannot be told apart**", "Not compared"}
    assert "`big up`" in s["**Better**"] and "`small up`" in s["**Better**"]
    assert s["**Better**"].index("`big up`") < s["**Better**"].index("`small up`")  # larger first
    assert "`down`" in s["**Worse**"] and "`same`" not in s["**Worse**"]
    assert "`same`" in s["**Cannot be told apart**"]
    assert s["Not compared"].startswith("Not compared (fewer than two seeds trained to the end on a side): `lonely`.")
    for label in ("big up", "small up", "down", "same"):
        assert "`lonely`" not in s[next(h for h in s if f"`{label}`" in s[h])]
    up = family.contrasts[1]
    assert f"`big up` ({up.points()}, Holm-adjusted p {findings._p(up.p_holm)})" in s["**Better**"]
    same = family.contrasts[3]
    want = (f"`same` ({same.points()}, Holm-adjusted p = {same.p_holm:.3f}; detectable: about "
            f"{100 * same.detectable:.2f} points)")
    assert want in s["**Cannot be told apart**"]
    assert "detectable" not in s["**Better**"] and "detectable" not in s["**Worse**"]
    assert "80% power" in text


def test_family_sentences_all_undecided_and_one_comparison():
    family = judge([("same", runs([0.979, 0.983, 0.981, 0.980, 0.982]), runs(REF))])
    text = family_sentences(family, None, what="ReLU")
    assert text.startswith("1 comparison with ReLU, 3 to 5 seeds a side, judged at 5% with Holm's correction "
                           "for one comparison.")
    assert "**None can be told apart** from ReLU at this number of seeds: `same`" in text
    assert "**Better**" not in text and "**Worse**" not in text and "Not compared" not in text


def test_family_sentences_nothing_to_compare():
    family = judge([("a", runs([0.9]), runs(REF)), ("b", diverged(3), runs(REF))])
    assert family_sentences(family, "base") == ("Nothing to compare yet: fewer than two seeds trained to the end "
                                                "on a side of every comparison.")
    assert family_sentences(Family([]), "base").startswith("Nothing to compare yet")


def test_p_formatting():
    assert findings._p(0.0004) == "< 0.001"
    assert findings._p(0.0123) == "= 0.012"
    assert findings._p(1.0) == "= 1.000"


# -- failure ----------------------------------------------------------------------------------------

def test_failure_normal_run():
    assert failure(Run(record(0, 0.99)), CLASSES) is None


def test_failure_stuck():
    kind, text = failure(Run(record(0, 0.11, accs=(0.10, 0.12, 0.11, 0.098))), CLASSES)
    assert kind == "stuck"
    assert text == "its validation accuracy stayed near chance (at most 12.0%) for all 4 epochs"


def test_failure_fell():
    kind, text = failure(Run(record(0, 0.9, accs=(0.50, 0.90, 0.95, 0.11, 0.10, 0.12))), CLASSES)
    assert kind == "fell"
    assert text == ("its validation accuracy reached 95.0%, fell to 11.0% in epoch 4 and stayed near chance "
                    "(at most 12.0%) to the last epoch")


def test_failure_fell_names_the_last_fall():
    # An early dip that recovered is not the fall: the fall is the start of the final stretch at chance.
    kind, text = failure(Run(record(0, 0.9, accs=(0.90, 0.10, 0.92, 0.96, 0.13, 0.11))), CLASSES)
    assert kind == "fell"
    assert "reached 96.0%, fell to 13.0% in epoch 5 " in text
    assert "(at most 13.0%)" in text


def test_failure_dip_then_recovery_is_fine():
    assert failure(Run(record(0, 0.9, accs=(0.90, 0.10, 0.91))), CLASSES) is None


def test_failure_diverged():
    assert failure(Run(record(0, status="diverged", diverged_epoch=3)), CLASSES) == (
        "diverged", "its loss diverged (became non-finite) in epoch 3")
    assert failure(Run(record(0, status="diverged")), CLASSES) == ("diverged", "its loss diverged")


def test_failure_chance_depends_on_classes():
    rec = Run(record(0, 0.5, accs=(0.50, 0.55, 0.60)))
    assert failure(rec, 10) is None
    assert failure(rec, 2)[0] == "stuck"  # chance 50%: 65% is the limit


# -- split_seeds ------------------------------------------------------------------------------------

STUCK = (0.10, 0.11, 0.12)
FINE_DEAD = {"C1": 0.0, "C3": 0.05, "C5": 0.2, "F6": 0.1}


def test_split_seeds_none_when_all_fine():
    assert split_seeds(runs([0.99, 0.98, 0.985]), "relu", CLASSES) is None


def test_split_seeds_names_the_failed_seed_and_why():
    rs = Runs([record(0, 0.990, dead=FINE_DEAD),
               record(1, 0.113, accs=STUCK, dead={"C1": 0.1, "C3": 0.5, "C5": 0.7, "F6": 1.0}),
               record(2, 0.985, dead={**FINE_DEAD, "F6": 0.3})])
    text = split_seeds(rs, "relu", CLASSES)
    assert text.startswith("`relu`: seed 1 of 3 failed: seed 1: its validation accuracy stayed near chance "
                           "(at most 12.0%) for all 3 epochs.")
    assert "The records show why" in text
    assert "in seed 1: 100% of F6's units, so little or nothing of the image reached the output layer" in text
    assert "against at most 30% of F6's in the seeds that trained." in text
    assert "C5's" not in text  # 70% is below DEAD
    assert text.endswith(" The other seeds reached 99.00%, 98.50% test accuracy.")
    assert "fell back" not in text


def test_split_seeds_no_dead_explanation_for_tanh():
    rs = Runs([record(0, 0.990, act="tanh", dead=FINE_DEAD),
               record(1, 0.113, act="tanh", accs=STUCK, dead={"C1": 1.0, "C3": 1.0, "C5": 1.0, "F6": 1.0})])
    text = split_seeds(rs, "tanh", CLASSES)
    assert text.startswith("`tanh`: seed 1 of 2 failed: seed 1:")
    assert "dead" not in text and "records show why" not in text
    assert text.endswith(" The other seed reached 99.00% test accuracy.")


def test_split_seeds_several_failed_and_diverged():
    rs = Runs([record(0, 0.99), record(1, status="diverged", diverged_epoch=2), record(2, 0.11, accs=STUCK),
               record(3, 0.98)])
    text = split_seeds(rs, "lr 1", CLASSES)
    assert text.startswith("`lr 1`: seeds 1, 2 of 4 failed: seed 1: its loss diverged (became non-finite) in "
                           "epoch 2; seed 2: its validation accuracy stayed near chance")
    assert text.endswith(" The other seeds reached 99.00%, 98.00% test accuracy.")
    assert "fell back" not in text  # a diverged or stuck run is not a fall


def test_split_seeds_every_seed_stuck_is_compact():
    rs = Runs([record(s, 0.11, accs=a) for s, a in enumerate([(0.10, 0.11), (0.098, 0.135), (0.11, 0.12)])])
    assert split_seeds(rs, "sigmoid", CLASSES) == ("`sigmoid`: every seed of 3 failed: validation accuracy "
                                                   "stayed near chance (at most 13.5%) from the first epoch "
                                                   "to the last.")


def test_split_seeds_every_seed_failed_mixed():
    rs = Runs([record(0, 0.11, accs=STUCK), record(1, status="diverged", diverged_epoch=4)])
    text = split_seeds(rs, "x", CLASSES)
    assert text.startswith("`x`: every seed of 2 failed: seed 0: its validation accuracy stayed near chance")
    assert "seed 1: its loss diverged (became non-finite) in epoch 4." in text
    assert "The other seed" not in text


def test_split_seeds_fell_counts_in_the_mean():
    rs = Runs([record(0, 0.99), record(1, 0.97, accs=(0.9, 0.97, 0.1, 0.1)), record(2, 0.98)])
    text = split_seeds(rs, "x", CLASSES)
    assert "seed 1: its validation accuracy reached 97.0%, fell to 10.0% in epoch 3" in text
    assert text.endswith(" A run that fell back to chance still counts in the mean above, scored at its "
                         "best-validation epoch, before the fall; a diverged run does not count.")
    assert " The other seeds reached 99.00%, 98.00% test accuracy." in text


def test_contrast_points_without_interval():
    c = Contrast("x", Runs(), Runs(), welch_difference([0.9], [0.8]), math.nan, math.nan, "untested", math.nan)
    assert c.points() == "+10.00 points"


def test_failure_at_exactly_the_chance_level_counts_as_near_chance():
    level = 1 / CLASSES + findings.CHANCE_MARGIN
    assert failure(Run(record(0, 0.2, accs=(level - 0.01, level))), CLASSES)[0] == "stuck"
    assert failure(Run(record(0, 0.2, accs=(level + 0.01, level))), CLASSES)[0] == "fell"


def test_family_sentences_worse_only_still_says_cannot_be_told_apart():
    family = judge([("down", runs([0.970, 0.971, 0.972]), runs(REF)),
                    ("same", runs([0.979, 0.983, 0.981]), runs(REF))])
    text = family_sentences(family, "base")
    assert "**Cannot be told apart** from the baseline at this number of seeds: `same`" in text
    assert "None can be told apart" not in text and "**Better**" not in text
