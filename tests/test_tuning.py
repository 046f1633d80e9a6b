"""Each setting at its own learning rate: the search by successive halving, chosen on validation."""

import math
import re

import pytest

from lenet_core import executions, experiments, store, sweep, tuning
from lenet_core.schema import SchemaError

SPEC = """
lr_search: {seed: 0, short_fraction: 0.5, keep: 2, pending: [full]}
profiles:
  smoke: {epochs: 2, train_size: 256, seeds: [0, 1], datasets: [mnist]}
  full: {epochs: 6, train_size: 256, seeds: [0, 1, 2], datasets: [mnist]}
notebooks:
  optimization:
    base: {batch_size: 64}
    params:
      - {optimizer: sgd, lr: 0.05}
      - {optimizer: adam, lr: 0.001}
    lr_factors: [0.1, 1, 10, 1000000]
"""


@pytest.fixture
def spec(use_spec):
    return use_spec(SPEC)


def _stored(exp):
    return exp.stored_runs()[0]


SGD = dict(optimizer="sgd", lr=0.05)


@pytest.fixture(scope="module")
def searched(tmp_path_factory, mnist_ready):
    """One search (SGD's), trained once into a store of its own and shared by the tests below."""
    root = tmp_path_factory.mktemp("search")
    (root / "sweep.yml").write_text(SPEC)
    env = dict(LENET_SWEEP_SPEC=root / "sweep.yml", LENET_RESULTS_DIR=root / "results",
               LENET_CHECKPOINTS_DIR=root / "checkpoints")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, str(v))
        experiments._load.cache_clear()
        before = tuning.search("optimization", "mnist", "smoke", **SGD)
        found = tuning.run(before, log=None)
    experiments._load.cache_clear()
    return env, before, found


@pytest.fixture
def in_search_store(searched, monkeypatch):
    env, before, found = searched
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    experiments._load.cache_clear()
    yield before, found
    experiments._load.cache_clear()


def test_the_search_keeps_the_best_short_runs_and_chooses_on_validation_loss(in_search_store):
    before, found = in_search_store
    assert before.grid == [0.005, 0.05, 0.5, 50000.0] and before.long == [] and before.chosen is None
    assert [e.config.epochs for e in before.short] == [1, 1, 1, 1] and {e.seeds[0] for e in before.short} == {0}
    short = {e.config.lr: _stored(e) for e in found.short}
    assert short[50000.0].status == "diverged"  # a rate that diverges ranks last, whatever else
    ranked = sorted(short, key=lambda lr: (short[lr].metric("val_loss_best") if short[lr].ok else math.inf, lr))
    assert [e.config.lr for e in found.long] == sorted(ranked[:2])  # the two best, at full length
    assert all(e.config.epochs == 2 for e in found.long)
    long = {e.config.lr: _stored(e).metric("val_loss_best") for e in found.long}
    assert found.chosen == min(long, key=long.get)
    rows = found.rows()
    assert [r["stage"] for r in rows] == ["short"] * 4 + ["full"] * 2
    assert [r["lr"] for r in rows if r["chosen"]] == [found.chosen]


def test_the_test_set_chooses_nothing(in_search_store, monkeypatch):
    """Rewriting every stored test accuracy changes no choice."""
    _, found = in_search_store
    real_load = store.load

    def upside_down(key):
        record = real_load(key)
        if record and record["status"] == "ok":
            record["metrics"].update(test_acc_best=1 - record["metrics"]["test_acc_best"], test_loss_best=0.0)
        return record

    monkeypatch.setattr(store, "load", upside_down)
    again = tuning.search("optimization", "mnist", "smoke", **SGD)
    assert again.chosen == found.chosen is not None


@pytest.mark.usefixtures("spec")
def test_the_tuned_setting_waits_for_its_search():
    with pytest.raises(ValueError, match=r"the learning-rate search of optimization .* is not complete: 0 of 4 .*"
                                         r"tune_lr=True"):
        tuning.tuned("optimization", "mnist", "smoke", **SGD)


def test_the_tuned_setting_trains_the_chapters_seeds_at_the_chosen_rate(in_search_store):
    _, found = in_search_store
    exp = tuning.tuned("optimization", "mnist", "smoke", optimizer="sgd", lr=0.05)
    assert exp.seeds == [0, 1] and {c.lr for c in exp.configs} == {found.chosen}
    chosen_run = next(e for e in found.long if e.config.lr == found.chosen)
    assert exp.configs[0] == chosen_run.configs[0]  # the search seed's full run is reused, not retrained
    listed = executions.notebook_experiments("optimization", "mnist", "smoke", tune_lr=True, optimizer="sgd", lr=0.05)
    assert listed[:-1] == found.experiments() and listed[-1].configs == exp.configs


@pytest.mark.usefixtures("spec")
def test_the_sweep_plans_the_searches_except_where_they_are_pending():
    jobs = sweep.plan("smoke")[0]
    assert [j.params for j in jobs][-2:] == [{"optimizer": "sgd", "lr": 0.05, "tune_lr": True},
                                             {"optimizer": "adam", "lr": 0.001, "tune_lr": True}]
    assert len(jobs[-1].configs) == 4  # the short stage, until it is stored
    assert not any(j.params.get("tune_lr") for j in sweep.plan("full")[0])
    pending = executions.pending_configs("full")
    assert len(pending) == 8 and {c.epochs for c in pending} == {3}  # every known run of both searches


@pytest.mark.parametrize("old, new, error", [
    ("lr_factors: [0.1, 1, 10, 1000000]", "lr_factors: [1, 0.1]",
     "notebooks.optimization.lr_factors: expected at least two increasing positive factors"),
    ("lr_factors: [0.1, 1, 10, 1000000]", "lr_factors: [0, 1]",
     "notebooks.optimization.lr_factors: expected at least two increasing positive factors"),
    ("keep: 2", "keep: 0", "lr_search.keep: expected how many rates train the full length"),
    ("short_fraction: 0.5", "short_fraction: 2", "lr_search.short_fraction: 2 is out of range [0, 1]"),
    ("pending: [full]", "pending: [fast]", "lr_search.pending[0]: unknown value 'fast'"),
    ("lr_search: {seed: 0, short_fraction: 0.5, keep: 2, pending: [full]}\n", "",
     "notebooks.optimization.lr_factors: needs the top-level lr_search"),
])
def test_a_bad_search_is_refused(spec, old, new, error):
    spec.write_text(SPEC.replace(old, new))
    experiments._load.cache_clear()
    with pytest.raises(SchemaError, match=error.replace("[", r"\[").replace("]", r"\]")):
        experiments.load_spec()


@pytest.mark.usefixtures("spec")
def test_a_notebook_without_factors_has_no_search(spec):
    spec.write_text(SPEC.replace("    lr_factors: [0.1, 1, 10, 1000000]\n", ""))
    experiments._load.cache_clear()
    with pytest.raises(ValueError, match="notebook 'optimization' searches no learning rate"):
        tuning.search("optimization", "mnist", "smoke", optimizer="sgd", lr=0.05)
    assert tuning.tuned_sets("optimization", "smoke") == []


def test_the_chapter_shows_each_setting_at_its_own_rate_beside_the_shared_one(in_search_store, tmp_path):
    from lenet_core.book.reference import Chapter
    from lenet_core.book.tuned import tuned_section

    _, found = in_search_store
    chapter = Chapter("optimization", "Optimizers", {"optimizer": "adam", "lr": 0.001})
    text = tuned_section(chapter, "smoke", tmp_path)
    sgd = next(line for line in text.splitlines() if line.startswith("| `optimizer=sgd"))
    assert f"| {found.chosen:g}" in sgd and "seeds stored" in sgd  # its rate; seed 1 at it is not trained yet
    adam = next(line for line in text.splitlines() if line.startswith("| `optimizer=adam"))
    assert "| searching |" in adam  # nothing of its search is stored
    assert "trains seed 0 for 0.5 of the epochs, the 2 with the lowest validation loss" in text
    assert (tmp_path / "_generated" / "img" / "optimization_mnist_lr.png").stat().st_size > 0
    pending = tuned_section(chapter, "full", tmp_path)  # being trained there: how far, no number
    assert "searches of the full profile are being trained: 0 of the 8 runs known so far" in pending
    assert "|" not in pending


LADDER_SPEC = SPEC.split("notebooks:")[0] + """notebooks:  # the same rule and profiles, a ladder instead
  rungs:
    kind: ladder
    base: {preset: classic, output: linear, loss: cross_entropy, optimizer: momentum, lr: 0.05, batch_size: 32}
    ladder:
      - {rung: start}
      - {rung: "+ relu", act: relu}
    lr_factors: [0.5, 1, 2]
"""


@pytest.mark.usefixtures("mnist_ready")
def test_every_rung_of_the_ladder_searches_its_own_rate_and_the_page_says_which_verdicts_change(spec, tmp_path):
    from test_book import fake_record, store as put

    from lenet_core.book.tuned import tuned_ladder_section

    spec.write_text(LADDER_SPEC)
    experiments._load.cache_clear()
    assert tuning.tuned_sets("rungs", "smoke") == [{"tune_lr": True}] and tuning.tuned_sets("rungs", "full") == []
    assert [j.params for j in sweep.plan("smoke")[0]] == [{}, {"tune_lr": True}]
    assert len(executions.pending_configs("full", "rungs")) == 2 * 3  # each rung's short stage, still pending

    def record(config, acc, val_loss=0.1):
        rec = fake_record(config, [acc - 0.01, acc])
        rec["metrics"]["val_loss_best"] = val_loss
        put(rec)

    # each rung's short stage, then its long stage: start keeps its recipe's 0.05, + relu chooses 0.1
    losses = {"start": ({0.025: 0.3, 0.05: 0.2, 0.1: 0.5}, {0.025: 0.25, 0.05: 0.1}),
              "+ relu": ({0.025: 0.1, 0.05: 0.4, 0.1: 0.2}, {0.025: 0.3, 0.1: 0.05})}
    accuracy = {("start", 0.05): 0.90, ("+ relu", 0.05): 0.80, ("+ relu", 0.1): 0.95}
    for stage in (0, 1):
        for name, _, found in tuning.ladder_searches("rungs", "mnist", "smoke"):
            exps = (found.short, found.long)[stage]
            assert [e.config.lr for e in exps] == sorted(losses[name][stage])
            for e in exps:
                record(e.configs[0], accuracy.get((name, e.config.lr), 0.5), losses[name][stage][e.config.lr])
    searches = tuning.ladder_searches("rungs", "mnist", "smoke")
    assert [(name, found.chosen) for name, _, found in searches] == [("start", 0.05), ("+ relu", 0.1)]
    for (name, values, found), rung in zip(searches, experiments.ladder("mnist", "smoke", notebook="rungs")):
        for config in tuning.tuned("rungs", "mnist", "smoke", found=found, **values).configs:
            record(config, accuracy[(name, found.chosen)] + 0.002 * config.seed)
        for config in rung.configs:
            record(config, accuracy[(name, 0.05)] + 0.002 * config.seed)
    from lenet_core import report

    shared = {r.label: r.stored_runs() for r in experiments.ladder("mnist", "smoke", notebook="rungs")}
    table = report.tuned_ladder_table(tuning.ladder_searches("rungs", "mnist", "smoke"), shared, "mnist", "smoke")
    assert table.to_dict("records")[1] == {"rung": "+ relu", "rates searched": "0.025, 0.05, 0.1", "chosen": "0.1",
                                           "at the recipe's rate": "80.10 ± 1.27 (n=2)",
                                           "at its own rate": "95.10 ± 1.27 (n=2)"}
    text = tuned_ladder_section("smoke", tmp_path)
    assert "| `+ relu` | 0.05 | 80.10 ± 1.27 (n=2) | -10.00 (worse) | 0.1 | 95.10 ± 1.27 (n=2) | +5.00 (better) |" in text
    assert "Steps whose verdict changes once every rung has its own rate: `+ relu` (worse at the shared rates, " \
           "better at their own)." in text
    assert "is being trained" in tuned_ladder_section("full", tmp_path)


GRID_SPEC = SPEC.replace("lr_factors: [0.1, 1, 10, 1000000]", "lr_factors: [0.5, 1, 2]")


@pytest.mark.usefixtures("mnist_ready")
def test_what_we_found_judges_each_setting_at_its_own_rate_and_names_the_verdicts_that_change(spec, tmp_path):
    from test_book import fake_record, store as put

    from lenet_core.book.found import chapter_findings, chapter_section
    from lenet_core.book.reference import Chapter

    spec.write_text(GRID_SPEC)
    experiments._load.cache_clear()
    chapter = Chapter("optimization", "Optimizers", {"optimizer": "adam", "lr": 0.001})
    adam, sgd = dict(optimizer="adam", lr=0.001), dict(optimizer="sgd", lr=0.05)

    def record(config, acc, val_loss=0.1):
        rec = fake_record(config, [acc - 0.01, acc])
        rec["metrics"]["val_loss_best"] = val_loss
        put(rec)

    def cells_at(params, lr, acc, val_loss=0.1):
        for config in experiments.experiment("optimization", dataset="mnist", profile="smoke", **{**params, "lr": lr}).configs:
            record(config, acc + 0.002 * config.seed, val_loss)

    cells_at(adam, 0.001, 0.90)  # the shared rates: SGD is worse than Adam
    cells_at(sgd, 0.05, 0.80)
    assert chapter_findings(chapter, "mnist", "smoke").shared is None  # no search stored yet: the shared rates
    # each search: Adam keeps its 0.001, SGD chooses 0.1 (the lowest validation loss of its long stage)
    losses = {"adam": ({0.0005: 0.3, 0.001: 0.2, 0.002: 0.5}, {0.0005: 0.25, 0.001: 0.1}),
              "sgd": ({0.025: 0.4, 0.05: 0.2, 0.1: 0.1}, {0.05: 0.3, 0.1: 0.05})}
    for stage in (0, 1):
        for params in (adam, sgd):
            found = tuning.search("optimization", "mnist", "smoke", **params)
            for e in (found.short, found.long)[stage]:
                record(e.configs[0], 0.5, losses[params["optimizer"]][stage][e.config.lr])
    cells_at(adam, 0.001, 0.90)  # the search seed's long runs are these runs' seed 0: written after them
    cells_at(sgd, 0.05, 0.80)
    cells_at(sgd, 0.1, 0.95, val_loss=0.05)  # at its own rate SGD beats Adam
    found = chapter_findings(chapter, "mnist", "smoke")
    assert found.shared is not None and [c.summary().mean for c in found.cells] == pytest.approx([0.951, 0.901])
    assert found.changed() == [("optimizer=sgd, lr=0.05", "worse", "better")]
    text = chapter_section({"mnist": found})
    assert "Each setting, the baseline too, is at its own learning rate" in text
    assert "**Better** than the baseline: `optimizer=sgd, lr=0.05` (+5.00 points" in text
    assert "At the shared rates the verdicts differ for: `optimizer=sgd, lr=0.05` (worse there, better at its own " \
           "rate)." in text
    pending = chapter_findings(chapter, "mnist", "full")  # the full profile's searches are being trained
    assert pending.shared is None and "own learning rate" not in chapter_section({"mnist": pending})


J_SPEC = SPEC.split("notebooks:")[0] + """notebooks:  # the 1998 network: its MAP criterion's constant j
  classic:
    base: {preset: classic}
    params: [{}, {output: linear, loss: cross_entropy}]
    lr_factors: [0.1, 1]
    map_j_grid: [1, 10, 100]
"""


@pytest.mark.usefixtures("mnist_ready")
def test_the_map_constant_is_chosen_on_validation_accuracy_at_the_chosen_rate(use_spec):
    from test_book import fake_record, store as put

    use_spec(J_SPEC)
    assert tuning.j_search("classic", "mnist", "smoke", output="linear", loss="cross_entropy") is None  # no j there
    assert tuning.j_search("classic", "mnist", "smoke").runs == []  # until the rate is chosen
    found = tuning.search("classic", "mnist", "smoke")
    for stage in ("short", "long"):
        for e in getattr(found, stage):
            put(fake_record(e.configs[0], [0.5, 0.6]))
        found = tuning.search("classic", "mnist", "smoke")
    chosen = tuning.j_search("classic", "mnist", "smoke")
    assert chosen.lr == found.chosen == 5e-5 and [e.config.map_j for e in chosen.runs] == [1, 10, 100]
    assert all(e.seeds == [0] and e.config.epochs == 2 and e.config.lr == found.chosen for e in chosen.runs)
    assert chosen.runs[1].configs == [c for e in found.long if e.config.lr == found.chosen for c in e.configs]
    assert chosen.chosen is None  # j = 1 and 100 are not stored yet
    planned = {c for e in executions.notebook_experiments("classic", "mnist", "smoke", tune_lr=True) for c in e.configs}
    assert {c for e in chosen.runs for c in e.configs} <= planned
    # the best validation accuracy chooses; the test set chooses nothing
    put(fake_record(chosen.runs[0].configs[0], [0.7, 0.65]))
    record = fake_record(chosen.runs[2].configs[0], [0.55, 0.58])
    record["metrics"]["test_acc_best"] = 0.99
    put(record)
    assert chosen.chosen == 1
    assert chosen.table()["chosen"].tolist() == ["yes", "", ""]
    put(fake_record(chosen.runs[0].configs[0], [0.6, 0.5]))  # a tie with the default: the default
    assert chosen.chosen == 10


@pytest.mark.parametrize("old, new, message", [
    ("map_j_grid: [1, 10, 100]", "map_j_grid: [1, 100]", "expected increasing positive values of j with the default 10"),
    ("map_j_grid: [1, 10, 100]", "map_j_grid: [10, 1]", "got [10, 1]"),
    ("    lr_factors: [0.1, 1]\n", "", "j is searched at the rate the learning-rate search chooses: the entry needs lr_factors"),
])
def test_a_bad_map_j_grid_is_refused(use_spec, old, new, message):
    use_spec(J_SPEC.replace(old, new))
    with pytest.raises(SchemaError, match=f"notebooks.classic.map_j_grid: .*{re.escape(message)}"):
        experiments.load_spec()
