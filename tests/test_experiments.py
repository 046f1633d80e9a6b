"""From the sweep specification to run configurations: the file checked as it loads, profiles,
per-dataset values, the ladder."""

import re
from pathlib import Path

import pytest

from lenet_core import executions, experiments
from lenet_core.config import SUBSTITUTES, RunConfig
from lenet_core.schema import SchemaError

SPEC = Path(__file__).resolve().parents[1] / "notebooks" / "sweep.yml"


def _spec_text() -> str:
    """The published specification, with its extra seeds trained (no `pending` marks)."""
    return re.sub(r"\n *pending: true[^\n]*", "", SPEC.read_text())


def _use_spec(tmp_path, monkeypatch, text: str) -> Path:
    spec = tmp_path / "sweep.yml"
    spec.write_text(text)
    monkeypatch.setenv("LENET_SWEEP_SPEC", str(spec))
    experiments._load.cache_clear()
    return spec


def _spec_with_ladder(tmp_path, monkeypatch, ladder: str):
    # the ladder's notebook is found by its kind, whatever its name
    _use_spec(tmp_path, monkeypatch, f"""
profiles:
  smoke: {{epochs: 3, train_size: 512, seeds: [0], datasets: [mnist]}}
notebooks:
  rungs:
    kind: ladder
    base: {{preset: classic}}
    params: [{{}}]
    ladder: {ladder}
""")


def test_the_specification_loads_and_says_what_kind_each_notebook_is():
    experiments._load.cache_clear()
    notebooks = experiments.load_spec()["notebooks"]
    assert {name: entry.get("kind", "grid") for name, entry in notebooks.items()
            if entry.get("kind", "grid") != "grid"} == {"modern": "ladder", "published": "setups",
                                                        "which_change": "one_change"}
    assert experiments.notebook_of_kind("ladder") == "modern"
    assert experiments.profile_settings("classic", "full")["epochs"] == 20  # an override under `profiles`
    assert experiments.profile_settings("activation", "full")["epochs"] == 30


def _refused(tmp_path, monkeypatch, old: str, new: str) -> str:
    """The error of loading the published specification with `old` replaced by `new`."""
    text = _spec_text()
    assert text.count(old) == 1, old
    spec = _use_spec(tmp_path, monkeypatch, text.replace(old, new))
    with pytest.raises(SchemaError) as refused:
        experiments.load_spec()
    message = str(refused.value)
    assert message.startswith(f"{spec}: "), message
    return message


@pytest.mark.parametrize("old, new, where, key, valid", [
    ("profiles:\n  smoke:", "profils:\n  smoke:", "top level", "profils",
     "profiles, notebooks, data_copies, data_copies_in_progress, copy_comparison"),
    ("    params: {pool: [avg, max, subsample]}", "    parms: {pool: [avg, max, subsample]}", "notebooks.pooling",
     "parms", "kind, base, params, profiles"),
    ('        title: "d2l.ai LeNet with batch norm"', '        titel: "d2l.ai LeNet with batch norm"',
     "notebooks.published.setups.d2l_batch_norm", "titel", "title, dataset, reference, config"),
    ("profiles: {quick: {epochs: 8}, full: {epochs: 60}}", "profiles: {quick: {epoch: 8}, full: {epochs: 60}}",
     "notebooks.early_stopping.profiles.quick", "epoch", "epochs, train_size, seeds, datasets"),
    ("profiles: {quick: {epochs: 8}, full: {epochs: 60}}", "profiles: {quik: {epochs: 8}, full: {epochs: 60}}",
     "notebooks.early_stopping.profiles", "quik", "smoke, quick, full"),
    ("profiles: {quick: {epochs: 8}, full: {epochs: 60}}", "quick: {epochs: 8}",  # beside the entry's keys
     "notebooks.early_stopping", "quick", "kind, base, params, profiles"),
    ("    params: {pool: [avg, max, subsample]}", "    params: {pol: [avg, max, subsample]}",
     "notebooks.pooling.params", "pol", "preset, dataset, act, pool, init"),
    ('{rung: "+ ReLU", act: relu}', '{rung: "+ ReLU", actt: relu}', "notebooks.modern.ladder[4]", "actt",
     "rung, epochs_factor, pending, dataset, act"),
])
def test_an_unknown_key_is_refused_with_the_file_where_it_is_and_the_valid_keys(tmp_path, monkeypatch, old, new,
                                                                                 where, key, valid):
    message = _refused(tmp_path, monkeypatch, old, new)
    assert re.search(rf": {re.escape(where)}: unknown key '{key}'( \(.*\))?; valid: {re.escape(valid)}", message), message


def test_each_kind_has_its_own_keys_and_an_unknown_kind_is_refused(tmp_path, monkeypatch):
    message = _refused(tmp_path, monkeypatch, "    params: {pool: [avg, max, subsample]}",
                       "    params: {pool: [avg, max, subsample]}\n    ladder: [{rung: start}]")
    assert message.endswith("notebooks.pooling: unknown key 'ladder' (an entry of kind grid); "
                            "valid: kind, base, params, profiles, pending, more_seeds, lr_factors, map_j_grid")
    message = _refused(tmp_path, monkeypatch, "    kind: setups\n", "    kind: published\n")
    assert message.endswith("notebooks.published.kind: unknown value 'published'; valid: grid, ladder, setups, one_change")
    message = _refused(tmp_path, monkeypatch, "    kind: ladder\n", "")
    assert "notebooks.modern: unknown key 'ladder' (an entry of kind grid)" in message


def test_more_seeds_go_to_the_listed_parameter_sets_of_their_profile_and_dataset_only(tmp_path, monkeypatch):
    _use_spec(tmp_path, monkeypatch, _spec_text())
    seeds = {act: [c.seed for c in experiments.experiment("activation", dataset="mnist", profile="full", act=act).configs]
             for act in ("silu", "relu", "tanh")}
    assert seeds == {"silu": [0, 1, 2, 3, 4], "relu": [0, 1, 2, 3, 4], "tanh": [0, 1, 2]}
    assert len(experiments.experiment("activation", dataset="cifar10", profile="full", act="silu").configs) == 3
    assert len(experiments.experiment("activation", dataset="mnist", profile="quick", act="silu").configs) == 2
    assert experiments.seeds_of("activation", "full", "fashion_mnist", {"act": "sigmoid"}) == [0, 1, 2, 3, 4]


def test_pending_extra_seeds_are_planned_but_not_yet_published(tmp_path, monkeypatch):
    text = _spec_text()
    old = "        seeds: [0, 1, 2, 3, 4]\n        mnist: [{act: relu}"
    assert text.count(old) == 1
    _use_spec(tmp_path, monkeypatch, text.replace(old, old.replace("\n", "\n        pending: true\n")))
    silu = experiments.experiment("activation", dataset="mnist", profile="full", act="silu")
    assert [c.seed for c in silu.configs] == [0, 1, 2]  # the pages keep the profile's seeds
    pending = experiments.pending_seed_configs("full")
    assert silu.configs[0].replace(seed=4) in pending and len({c.act for c in pending}) == 4  # relu gelu silu sigmoid
    assert experiments.pending_seed_configs("quick") == []


@pytest.mark.parametrize("old, new, error", [
    ("        seeds: [0, 1, 2, 3, 4]\n        mnist: [{act: relu}",
     "        seeds: [0, 1, 2, 3, 4]\n        pending: yes please\n        mnist: [{act: relu}",
     "notebooks.activation.more_seeds.full.pending: expected true or false; got 'yes please'"),
    ("mnist: [{act: relu}, {act: gelu}, {act: silu}]", "mnist: [{act: relu}, {act: gelu}, {act: selu}]",
     "notebooks.activation.more_seeds.full.mnist[2]: {'act': 'selu'} is not one of the entry's "
     "parameter sets; valid: [{'act': 'sigmoid'}, {'act': 'tanh'}"),
    ("mnist: [{act: relu}, {act: gelu}, {act: silu}]", "mnist: {act: relu}",
     "notebooks.activation.more_seeds.full.mnist: expected a list of parameter sets"),
    ("        seeds: [0, 1, 2, 3, 4]\n        mnist: [{act: relu}",
     "        seeds: 5\n        mnist: [{act: relu}",
     "notebooks.activation.more_seeds.full.seeds: expected a list of seeds such as [0, 1, 2, 3, 4]; got 5"),
    ("      full:\n        seeds: [0, 1, 2, 3, 4]\n        mnist: [{act: relu}",
     "      ful:\n        seeds: [0, 1, 2, 3, 4]\n        mnist: [{act: relu}",
     "notebooks.activation.more_seeds: unknown key 'ful'; valid: smoke, quick, full"),
    ("    params: {mix: [none, cutout, mixup, cutmix]}\n    pending: {full: true}",
     "    params: {mix: [none, cutout, mixup, cutmix]}\n    pending: {full: [{mix: cutmix}, {mix: stripes}]}",
     "notebooks.mixing.pending.full[1]: {'mix': 'stripes'} is not one of the entry's parameter sets; "
     "valid: [{'mix': 'none'}"),
    ("    params: {mix: [none, cutout, mixup, cutmix]}\n    pending: {full: true}",
     "    params: {mix: [none, cutout, mixup, cutmix]}\n    pending: {full: 3}",
     "notebooks.mixing.pending.full: expected true or a list of parameter sets; got 3"),
    ("    params: {mix: [none, cutout, mixup, cutmix]}\n    pending: {full: true}",
     "    params: {mix: [none, cutout, mixup, cutmix]}\n    pending: {fast: true}",
     "notebooks.mixing.pending: unknown key 'fast'; valid: smoke, quick, full"),
])
def test_a_bad_more_seeds_or_pending_entry_is_refused_where_it_is(tmp_path, monkeypatch, old, new, error):
    assert error in _refused(tmp_path, monkeypatch, old, new)


def test_a_setup_refers_to_a_result_of_the_reference_file(tmp_path, monkeypatch):
    message = _refused(tmp_path, monkeypatch, "reference: bigballon_baseline", "reference: bigballon_base")
    assert ("notebooks.published.setups.bigballon_baseline.reference: unknown result id 'bigballon_base' "
            "(the results of lenet_core/reference.yml); valid: lecun1998_lenet5, ") in message
    message = _refused(tmp_path, monkeypatch, "        reference: d2l_lenet\n", "")
    assert message.endswith("notebooks.published.setups.d2l_lenet: missing 'reference'; "
                            "required: title, dataset, reference, config; valid: title, dataset, reference, config")


def test_every_rung_adds_its_change_to_the_rungs_before(tmp_path, monkeypatch):
    _spec_with_ladder(tmp_path, monkeypatch, '[{rung: start}, {rung: relu, act: relu}, {rung: adam, optimizer: adam, lr: 0.001}]')
    start, relu, adam = experiments.ladder("mnist", "smoke")
    assert (start.config.act, relu.config.act, adam.config.act) == ("scaled_tanh", "relu", "relu")
    assert (relu.config.optimizer, adam.config.optimizer, adam.config.lr) == ("sdlm", "adam", 0.001)
    assert [r.label for r in (start, relu, adam)] == ["start", "relu", "adam"]


def test_a_pending_rung_is_left_out_its_changes_joining_the_rung_above(tmp_path, monkeypatch):
    _spec_with_ladder(tmp_path, monkeypatch, '[{rung: start, pending: [smoke]}, {rung: relu, act: relu, pending: [smoke]}, '
                                             '{rung: adam, optimizer: adam, lr: 0.001}, {rung: bn, batch_norm: true}]')
    every = experiments.ladder("mnist", "smoke", include_pending=True)
    shown = experiments.ladder("mnist", "smoke")
    assert [r.label for r in every] == ["start", "relu", "adam", "bn"] and [r.label for r in shown] == ["adam", "bn"]
    assert [r.config for r in shown] == [r.config for r in every[2:]]  # the rungs above keep their configuration
    assert experiments.pending_rungs("smoke") == ["start", "relu"] and experiments.pending_rungs("full") == []
    # planned, not published: the runs only the pending rungs add are the profile's pending ones
    pending = {c.canonical_json() for c in executions.pending_configs("smoke")}
    assert pending == {c.canonical_json() for r in every[:2] for c in r.configs}


@pytest.mark.parametrize("rungs, message", [
    ("[{rung: start, pending: smoke}, {rung: relu, act: relu}]",
     "notebooks.rungs.ladder[0].pending: expected a list of profiles; got 'smoke'; valid: smoke, quick, full"),
    ("[{rung: start}, {rung: relu, act: relu, pending: [quik]}]", "notebooks.rungs.ladder[1].pending: expected a list"),
    ("[{rung: start}, {rung: relu, act: relu, pending: [smoke]}]",
     "notebooks.rungs.ladder[1].pending: the top rung cannot be pending"),
])
def test_a_pending_rung_is_checked(tmp_path, monkeypatch, rungs, message):
    with pytest.raises(SchemaError, match=re.escape(message)):
        _spec_with_ladder(tmp_path, monkeypatch, rungs)
        experiments.ladder("mnist", "smoke")


def test_a_longer_rung_scales_the_profile_epochs_per_dataset(tmp_path, monkeypatch):
    _spec_with_ladder(tmp_path, monkeypatch,
                      '[{rung: start}, {rung: longer, epochs_factor: {cifar10: 4, default: 2}}, {rung: after, act: relu}]')
    for dataset, epochs in (("mnist", 6), ("cifar10", 12)):
        start, longer, after = experiments.ladder(dataset, "smoke")
        assert (start.config.epochs, longer.config.epochs, after.config.epochs) == (3, epochs, epochs)


@pytest.mark.parametrize("factor", ["0", "-1", "many"])
def test_a_bad_epochs_factor_is_refused(tmp_path, monkeypatch, factor):
    _spec_with_ladder(tmp_path, monkeypatch, f'[{{rung: longer, epochs_factor: {factor}}}]')
    with pytest.raises(ValueError, match="rung 'longer': epochs_factor must be a positive number"):
        experiments.ladder("mnist", "smoke")


def test_the_published_ladder_resolves_on_every_dataset():
    experiments._load.cache_clear()
    for dataset in ("mnist", "fashion_mnist", "cifar10"):
        rungs = experiments.ladder(dataset, "full", include_pending=True)
        same = dict(dataset=dataset, epochs=rungs[0].config.epochs, train_size=0, seed=0,
                    data_copy=experiments.published_copy(dataset))
        assert rungs[0].config == RunConfig.classic(**same)  # the paper's network, then its two substitutes
        assert [r.label for r in rungs[1:3]] == ["+ softmax cross-entropy", "+ mini-batch SGD with momentum"]
        assert rungs[2].config == RunConfig.classic(**{**same, "epochs": 30}, **SUBSTITUTES)
        assert len({r.config for r in rungs}) == len(rungs)  # every rung changes something
        # while the first two are being trained, the published ladder starts at the third, unchanged above
        shown = experiments.ladder(dataset, "full")
        assert [r.config for r in shown] == [r.config for r in rungs[2:]]
        assert experiments.pending_rungs("full") == ["LeNet-5 (1998)", "+ softmax cross-entropy"]


def test_the_classic_notebooks_ways_are_the_ladders_first_three_rungs():
    from lenet_core.book.results import CLASSIC_WAYS

    values, rungs = {}, []
    for name, rung in experiments.rung_changes("mnist", "quick", include_pending=True)[:3]:
        values = {**values, **{k: v for k, v in rung.items() if k != "epochs"}}  # the notebook has its own
        rungs.append(dict(values))
    assert [params for _, params in CLASSIC_WAYS] == rungs == experiments.param_sets("classic")
    # in the full profile the first two rungs are the classic notebook's runs, at the paper's 20 passes
    for dataset in ("mnist", "fashion_mnist", "cifar10"):
        first = experiments.ladder(dataset, "full", include_pending=True)
        for rung, params in zip(first[:2], rungs):
            assert rung.configs == experiments.experiment("classic", dataset=dataset, profile="full", **params).configs
            assert rung.config.epochs == 20
        assert first[2].config.epochs == first[3].config.epochs == 30  # the ladder's length from the third


def test_pending_parameter_sets_are_planned_but_not_published():
    """A chapter (or some of its settings) whose runs are being trained: the sweep's plan of the
    profile and the pages leave them out, the plan of what belongs in the store keeps them."""
    from lenet_core import sweep
    from lenet_core.store import run_key

    experiments._load.cache_clear()
    assert experiments.param_sets("mixing", "full") == [] and len(experiments.param_sets("mixing", "quick")) == 4
    norms = experiments.param_sets("normalization", "full")
    assert len(norms) == 6 and all("norm_layer" not in p for p in norms)
    assert len(experiments.param_sets("normalization", "quick")) == len(experiments.param_sets("normalization")) == 10
    pending = executions.pending_configs("full", "mixing")
    assert {(c.dataset, c.mix) for c in pending} == {(d, m) for d in ("mnist", "fashion_mnist", "cifar10")
                                                     for m in ("none", "cutout", "mixup", "cutmix")}
    assert len(pending) == 4 * 3 * 3 and {c.augment for c in pending if c.dataset == "mnist"} == {"shift"}
    assert not any(j.notebook == "mixing" for j in sweep.plan("full")[0])
    assert any(j.notebook == "mixing" for j in sweep.plan("quick")[0])
    assert {run_key(c) for c in pending} <= sweep.planned_keys()
    assert set(pending) <= set(executions.pending_configs("full")) and executions.pending_configs("quick") == []


