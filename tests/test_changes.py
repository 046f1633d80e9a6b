"""Which change matters most (lenet_core.changes): both views derived from the ladder, each
configuration one change away from its reference, refusals, the interaction statistics, and the
Results page's section from a hand-made store."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import scipy.stats

from lenet_core import changes, experiments
from lenet_core.config import SUBSTITUTES
from lenet_core.data import DATASETS
from lenet_core.schema import SchemaError
from lenet_core.stats import contrast, interaction, welch_difference, welch_p
from test_book import fake_record, store
from test_experiments import _refused, _use_spec


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_each_configuration_differs_from_the_top_or_the_start_in_exactly_one_change(dataset):
    experiments._load.cache_clear()
    weighed = changes.one_change(dataset, "full")
    rungs = experiments.ladder(dataset, "full")
    labels = [r.label for r in rungs]
    assert weighed.start.config == rungs[0].config and weighed.top.config == rungs[labels.index("+ label smoothing")].config
    assert [c.label for c in weighed.changes] == labels[1:labels.index("+ label smoothing") + 1]
    assert weighed.top.seeds == [0, 1, 2] and weighed.top.config.epochs == 30
    for change in weighed.changes:
        assert not change.refused, change.refused
        for view, reference in (("without", weighed.top), ("alone", weighed.start)):
            differs = change.differs(view, reference)
            assert differs, (change.label, view)
            assert set(differs) <= set(change.values), (change.label, view, differs)  # one rung's fields only
            exp = getattr(change, view)
            assert exp.seeds == reference.seeds and exp.config.epochs == reference.config.epochs
            if view == "alone":  # the rung's own values, nothing else
                assert {k: new for k, (_, new) in differs.items()} == \
                       {k: v for k, v in change.values.items() if k in differs}
    # the leave-one-out of the top's own rung is the rung below it, and the add-one of the first
    # change is the ladder's second rung: the same runs, not trained twice
    assert weighed.changes[-1].without.config == rungs[labels.index("+ label smoothing") - 1].config
    assert weighed.changes[0].alone.config == rungs[1].config


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_each_candidate_differs_from_the_top_in_its_own_fields_only(dataset):
    experiments._load.cache_clear()
    weighed = changes.one_change(dataset, "full")
    assert len(weighed.candidates) == len(experiments.check_notebook("which_change")["candidates"]) > 0
    for c in weighed.candidates:
        assert not c.refused and c.at_top.seeds == weighed.top.seeds, c.label
        assert c.at_top.config.epochs == weighed.top.config.epochs
        differs = c.differs(weighed.top)
        assert differs and {k: new for k, (_, new) in differs.items()} == c.values, c.label
    assert len(weighed.experiments()) == 2 + sum((c.without is not None) + (c.alone is not None)
                                                 for c in weighed.changes) + len(weighed.candidates)


LADDER = """
profiles:
  smoke: {{epochs: 2, train_size: 512, seeds: [0], datasets: [mnist]}}
notebooks:
  rungs:
    kind: ladder
    base: {{{base}}}
    params: [{{}}]
    ladder:
      - {{rung: start}}
{rungs}
  weighed:
    kind: one_change
    of: rungs
    top: {top}
    profiles: {{smoke: {{seeds: [0, 1]}}}}
"""


# The 1998 network with its two substitutes (SGD with momentum on batches, softmax), as the ladder's
# third rung has it: the network these tests add changes to.
SUBSTITUTED = "preset: classic, " + ", ".join(f"{k}: {v}" for k, v in SUBSTITUTES.items())


def _ladder(tmp_path, monkeypatch, rungs: list[str], top: str, base: str = SUBSTITUTED):
    _use_spec(tmp_path, monkeypatch, LADDER.format(base=base, top=top,
                                                   rungs="\n".join(f"      - {r}" for r in rungs)))
    return changes.one_change("mnist", "smoke")


def test_a_new_rung_joins_both_views_without_being_written_twice(tmp_path, monkeypatch):
    rungs = ['{rung: "+ relu", act: relu}', '{rung: "+ max", pool: max}']
    weighed = _ladder(tmp_path, monkeypatch, rungs, '"+ max"')
    assert [c.label for c in weighed.changes] == ["+ relu", "+ max"]
    weighed = _ladder(tmp_path, monkeypatch, rungs[:1] + ['{rung: "+ bn", batch_norm: true}'] + rungs[1:], '"+ max"')
    assert [c.label for c in weighed.changes] == ["+ relu", "+ bn", "+ max"]
    bn = weighed.changes[1]
    assert bn.without.config.batch_norm is False and bn.without.config.act == "relu" and bn.without.config.pool == "max"
    assert bn.alone.config.batch_norm is True and bn.alone.config.act == "scaled_tanh"
    assert weighed.top.seeds == [0, 1] and weighed.top.config.epochs == 2  # the entry's seeds, the ladder's epochs
    assert len(weighed.experiments()) == 2 + 2 * 3


def test_a_rung_set_again_above_it_is_undone_where_it_reaches_the_top_and_a_refused_combination_is_listed(
        tmp_path, monkeypatch):
    weighed = _ladder(tmp_path, monkeypatch, [
        '{rung: "+ adam", optimizer: adam, lr: 0.001, batch_size: 128}',
        '{rung: "+ adamw", optimizer: adamw, lr: 0.003}',
        '{rung: "+ adam again", optimizer: adam, lr: 0.001}',
        '{rung: "+ tanh", act: tanh}'], '"+ tanh"')
    adam, adamw, again, tanh = weighed.changes
    assert adam.differs("without", weighed.top) == {"batch_size": (128, 32)}  # the rest is set again above
    assert adamw.without is None and "set again by a rung above it" in adamw.refused["without"]
    assert adamw.alone.config.optimizer == "adamw" and adamw.alone.config.batch_size == 32
    assert again.differs("without", weighed.top) == {"optimizer": ("adam", "adamw"), "lr": (0.001, 0.003)}
    assert set(tanh.differs("alone", weighed.start)) == {"act"}
    # the 1998 network as the paper trained it refuses batch norm: the change is listed, not trained
    weighed = _ladder(tmp_path, monkeypatch, ['{rung: "+ batches", optimizer: momentum, batch_size: 32, output: linear, '
                                              'loss: cross_entropy}', '{rung: "+ bn", batch_norm: true}'],
                      '"+ bn"', base="preset: classic")
    batches, bn = weighed.changes
    assert batches.without is None and "optimizer 'sdlm'" in batches.refused["without"] and batches.alone is not None
    assert bn.alone is None and "got batch_norm=True" in bn.refused["alone"] and bn.without is not None
    experiments._load.cache_clear()


@pytest.mark.parametrize("old, new, error", [
    ("    of: modern\n", "    of: classic\n", "notebooks.which_change.of: unknown ladder notebook 'classic'; valid: modern"),
    ('    top: "+ label smoothing"\n', '    top: "+ smoothing"\n',
     "notebooks.which_change.top: unknown rung above the first '+ smoothing'; valid: + softmax cross-entropy"),
    ('    top: "+ label smoothing"\n', '    top: "+ label smoothing"\n    base: {}\n',
     "notebooks.which_change.base: an entry of kind one_change trains its ladder's runs"),
    ('    start: "+ mini-batch SGD with momentum"\n    top: "+ label smoothing"\n',
     '    start: "+ batch norm"\n    top: "+ ReLU"\n',
     "notebooks.which_change.start: unknown rung below the top '+ batch norm'; valid: LeNet-5 (1998), "
     "+ softmax cross-entropy, + mini-batch SGD with momentum, + He initialization"),
    ("    profiles: {full: {seeds: [0, 1, 2]}}\n    pending: {full: true}\n",
     "    profiles: {full: {seeds: [0, 1, 2], epochs: 10}}\n",
     "notebooks.which_change.profiles.full: unknown key 'epochs' (a profile of an entry of kind one_change"),
    ('      - {rung: "+ Muon", optimizer: muon}\n', '      - {rung: "+ ReLU", act: relu}\n',
     "notebooks.which_change.candidates[0].rung: '+ ReLU' names a rung or candidate already"),
    ('      - {rung: "+ Muon", optimizer: muon}\n', '      - {rung: "+ nothing"}\n',
     "notebooks.which_change.candidates[0]: expected {rung: its name, and the fields it sets}"),
    ('      - {rung: "+ Muon", optimizer: muon}\n', '      - {rung: "+ x", acts: relu}\n',
     "notebooks.which_change.candidates[0]: unknown key 'acts'"),
])
def test_a_bad_one_change_entry_is_refused_where_it_is(tmp_path, monkeypatch, old, new, error):
    assert error in _refused(tmp_path, monkeypatch, old, new)


def test_the_interaction_is_a_difference_of_differences_with_welch_satterthwaite_degrees_of_freedom():
    rng = np.random.default_rng(0)
    a, b, c, d = (rng.normal(m, s, n) for m, s, n in ((0.9, 0.01, 3), (0.8, 0.02, 3), (0.85, 0.005, 4), (0.84, 0.03, 5)))
    found, p = interaction(a, b, c, d)
    var = [x.var(ddof=1) / len(x) for x in (a, b, c, d)]
    se = math.sqrt(sum(var))
    df = sum(var) ** 2 / sum(v * v / (len(x) - 1) for v, x in zip(var, (a, b, c, d)))
    value = (a.mean() - b.mean()) - (c.mean() - d.mean())
    assert found.mean == pytest.approx(value)
    assert found.half_width == pytest.approx(scipy.stats.t.ppf(0.975, df) * se)
    assert p == pytest.approx(2 * scipy.stats.t.sf(abs(value) / se, df))
    # two samples: Welch's test and interval exactly
    two, p2 = contrast([a, d], [1, -1])
    assert two == welch_difference(a, d) and p2 == pytest.approx(welch_p(a, d))
    assert math.isnan(interaction(a, b, c, d[:1])[1])  # one value: no interval, no p


@pytest.mark.usefixtures("mnist_ready")
def test_the_results_section_says_which_change_matters_from_the_store(tmp_path, monkeypatch):
    from lenet_core.book.changes import one_change_section

    _ladder(tmp_path, monkeypatch, ['{rung: "+ relu", act: relu}', '{rung: "+ max", pool: max}',
                                    '{rung: "+ bn", batch_norm: true}'], '"+ bn"')
    weighed = changes.one_change("mnist", "smoke")
    relu, mx, bn = weighed.changes
    accuracy = [(weighed.start, 0.90), (weighed.top, 0.98),
                (relu.without, 0.97), (relu.alone, 0.9005),  # needs the others: little alone, much at the top
                (mx.without, 0.98), (mx.alone, 0.90),  # nothing either way
                (bn.without, 0.93), (bn.alone, 0.95)]  # much in both
    for exp, acc in accuracy:
        for i, config in enumerate(exp.configs):
            store(fake_record(config, [acc - 0.05, acc + 0.001 * (i - 0.5)]))
    worths = {w.label: w for w in changes.worth(weighed)}
    assert worths["+ relu"].at_top.verdict == "better" and worths["+ relu"].alone.verdict == "undecided"
    assert worths["+ max"].at_top.verdict == "undecided" and worths["+ max"].alone.verdict == "undecided"
    assert worths["+ bn"].at_top.verdict == "better" and worths["+ bn"].alone.verdict == "better"
    assert worths["+ relu"].interaction.mean == pytest.approx((0.98 - 0.97) - (0.9005 - 0.90))
    assert worths["+ relu"].together == "more at the top" and worths["+ bn"].together == "undecided"
    text = one_change_section("smoke", tmp_path)
    assert "## Which change matters most" in text and "which_change_mnist.png" in text
    assert (tmp_path / "_generated" / "img" / "which_change_mnist.png").exists()
    assert "the top needs `+ bn` (+5.00 points" in text
    assert "Worth most in both views: `+ bn`" in text
    assert re.search(r"Worth more at the top than alone \(it needs the others\): `\+ relu` \(\+1\.00 at the top "
                     r"against \+0\.05 alone\)", text)
    assert "| `+ max` | `pool=subsample` | +0.00 points" in text
    assert "The start is the ladder's rung" not in text  # it is the first
    # a start above the first rung: the page says the rungs below are the ladder's steps, not these views'
    _use_spec(tmp_path, monkeypatch, LADDER.format(base="preset: classic", top='"+ bn"', rungs="\n".join(
        f"      - {r}" for r in ['{rung: "+ batches", optimizer: momentum, lr: 0.05, batch_size: 32}',
                                 '{rung: "+ bn", batch_norm: true}'])).replace("    top:", '    start: "+ batches"\n    top:'))
    text = one_change_section("smoke", tmp_path)
    assert ("The start is the ladder's rung `+ batches`, not its first: what the rungs below it (`start`) change is "
            "measured by the ladder's own steps, not in these views. `start` trains one example a step") in text
    # while the profile's runs are being trained, how many are in and no number
    text = LADDER.format(base=SUBSTITUTED, top='"+ bn"', rungs="\n".join(
        f"      - {r}" for r in ['{rung: "+ relu", act: relu}', '{rung: "+ max", pool: max}',
                                 '{rung: "+ bn", batch_norm: true}'])) + "    pending: {smoke: true}\n"
    _use_spec(tmp_path, monkeypatch, text)
    section = one_change_section("smoke", tmp_path)
    wanted = {c for e in weighed.experiments() for c in e.configs}
    assert f"are being trained: {len(wanted)} of {len(wanted)} are in the store" in section
    assert "Worth most" not in section
    experiments._load.cache_clear()


@pytest.mark.usefixtures("mnist_ready")
def test_a_candidate_better_than_the_top_on_validation_earns_a_rung_and_the_page_says_so(tmp_path, monkeypatch):
    from lenet_core.book.changes import candidates_part

    text = LADDER.format(base=SUBSTITUTED, top='"+ bn"', rungs='      - {rung: "+ bn", batch_norm: true}') + \
        '    candidates: [{rung: "+ ema", average: ema}, {rung: "+ swa", average: swa}, {rung: "+ bn again", batch_norm: true}]\n'
    _use_spec(tmp_path, monkeypatch, text)
    weighed = changes.one_change("mnist", "smoke")
    ema, swa, again = weighed.candidates
    assert again.at_top is None and again.refused == "the top already has every field it sets"
    assert ema.differs(weighed.top) == {"average": ("none", "ema")}
    # validation decides: EMA is better on validation (and worse on test, which chooses nothing);
    # SWA is better on test only
    for exp, val, test in ((weighed.top, 0.95, 0.95), (ema.at_top, 0.97, 0.94), (swa.at_top, 0.95, 0.97)):
        for i, config in enumerate(exp.configs):
            record = fake_record(config, [val - 0.05, val + 0.001 * (i - 0.5)])
            record["metrics"]["test_acc_best"] = test + 0.001 * (i - 0.5)
            store(record)
    family = {c.label: c.verdict for c in changes.candidate_family(weighed).contrasts}
    assert family == {"+ ema": "better", "+ swa": "undecided"}
    part = candidates_part(weighed)
    assert "these help and earn a rung of the ladder: `+ ema` (+2.00 points" in part
    assert "no difference the seeds can detect for `+ swa` (+0.00 points" in part
    assert "`+ bn again` is not trained at the top: the top already has every field it sets." in part
    assert "| `+ swa` | `average=swa` | +0.00 points, 95% CI -0.30 to +0.30 | undecided | +2.00 points" in part
    assert "| `+ ema` | `average=ema` | +2.00 points, 95% CI +1.70 to +2.30 | helps | -1.00 points" in part
    assert "| `+ bn again` | – | – | refused | – |" in part
    experiments._load.cache_clear()


def test_the_ladder_has_a_rung_for_each_candidate_that_earns_one_in_the_full_profile():
    """On each dataset: a rung named as the candidate, changing what the candidate changes there,
    for every candidate better than the top on validation in the full profile's stored runs, and no
    rung of a candidate that is not."""
    experiments._load.cache_clear()
    if experiments.pending_sets(experiments.check_notebook("which_change"), "full"):
        pytest.skip("the full profile's runs of which_change are being trained")
    for dataset in DATASETS:
        weighed = changes.one_change(dataset, "full")
        earned = {c.label for c in changes.candidate_family(weighed).contrasts if c.verdict == "better"}
        rungs = experiments.ladder(dataset, "full")
        applied = {r.label for below, r in zip(rungs, rungs[1:]) if r.config != below.config}
        names = {c.label for c in weighed.candidates}
        assert applied & names == earned, dataset
