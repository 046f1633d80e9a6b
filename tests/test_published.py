"""Published setups re-run with their own protocol: what they resolve to, where they run, how
the sweep, the notebook's tables and the book page show them."""

import matplotlib.pyplot as plt
import pytest

from lenet_core import book, experiments, report, sweep

pytestmark = pytest.mark.usefixtures("mnist_ready")

SETUPS = {"d2l_lenet": "fashion_mnist", "d2l_batch_norm": "fashion_mnist", "bigballon_baseline": "cifar10",
          "bigballon_augmentation": "cifar10", "bigballon_weight_decay": "cifar10"}
FIELDS = ("act", "pool", "init", "optimizer", "lr", "schedule", "batch_size", "epochs", "train_size",
          "batch_norm", "augment", "weight_decay", "normalize")
# d2l feeds pixel values in [0, 1]; BIGBALLON's "+ preprocessing" step normalizes per channel.
D2L = dict(act="sigmoid", pool="avg", init="xavier_uniform", optimizer="sgd", lr=0.1, schedule="constant",
           batch_size=128, epochs=10, train_size=0, batch_norm=False, augment="none", weight_decay=0.0,
           normalize=False)
BIGBALLON = dict(act="relu", pool="max", init="kaiming_normal", optimizer="nesterov", lr=0.01, schedule="bigballon",
                 batch_size=128, epochs=200, train_size=0, batch_norm=False, augment="none", weight_decay=0.0,
                 normalize=True)
FULL = {"d2l_lenet": D2L, "d2l_batch_norm": {**D2L, "batch_norm": True}, "bigballon_baseline": BIGBALLON,
        "bigballon_augmentation": {**BIGBALLON, "augment": "shift_flip"},
        "bigballon_weight_decay": {**BIGBALLON, "augment": "shift_flip", "weight_decay": 0.0002}}


@pytest.fixture(autouse=True)
def executed_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_EXECUTED_DIR", str(tmp_path / "executed"))


def _fields(config) -> dict:
    return {f: getattr(config, f) for f in FIELDS}


@pytest.mark.parametrize("name", list(FULL))
def test_in_full_a_setup_is_its_published_protocol_on_its_own_dataset(name):
    exp = experiments.published_setup(name, profile="full")
    assert exp.dataset == SETUPS[name] and exp.config.dataset == SETUPS[name]
    assert _fields(exp.config) == FULL[name]
    assert exp.seeds == [0, 1, 2]
    assert exp.label == experiments.setups()[name]["title"]


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_the_shorter_profiles_keep_their_own_budget_and_the_setups_protocol(profile):
    budget = experiments.profile_settings("published", profile)
    for name in FULL:
        exp = experiments.published_setup(name, SETUPS[name], profile=profile)
        assert (exp.config.epochs, exp.config.train_size) == (budget["epochs"], budget["train_size"])
        assert exp.seeds == budget["seeds"]
        assert {**_fields(exp.config), "epochs": 0, "train_size": 0} == {**FULL[name], "epochs": 0, "train_size": 0}


def test_lenet_profile_overrides_the_profile_given(monkeypatch):
    monkeypatch.setenv("LENET_PROFILE", "smoke")
    assert experiments.published_setup("d2l_lenet", profile="full").config.epochs == 1


def test_a_setup_refuses_another_dataset_and_unknown_names():
    with pytest.raises(ValueError, match="setup 'd2l_lenet' is published on fashion_mnist only; got dataset "
                                         "'mnist'; valid: fashion_mnist"):
        experiments.published_setup("d2l_lenet", "mnist")
    with pytest.raises(ValueError, match="setup 'bigballon_baseline' .* valid: cifar10"):
        experiments.published_setup("bigballon_baseline", "fashion_mnist")
    with pytest.raises(ValueError, match="unknown setup 'lenet'; valid: d2l_lenet, d2l_batch_norm, "
                                         "bigballon_baseline, bigballon_augmentation, bigballon_weight_decay"):
        experiments.published_setup("lenet")
    with pytest.raises(ValueError, match="unknown profile 'long'"):
        experiments.published_setup("d2l_lenet", profile="long")


def test_the_sweep_lists_every_setup_once_and_skips_it_elsewhere_with_the_reason():
    assert [p["setup"] for p in experiments.param_sets("published")] == list(experiments.setups()) == list(SETUPS)
    jobs, skipped = sweep.plan("full", only=["published"])
    assert {(j.params["setup"], j.dataset) for j in jobs} == set(SETUPS.items())
    for job in jobs:
        assert _fields(job.configs[0]) == FULL[job.params["setup"]] and len(job.configs) == 3
    assert len(skipped) == 2 * len(SETUPS)  # full: three datasets, one each
    for s in skipped:
        _, dataset, slug = s.name.split("/")
        name = slug.removeprefix("setup=")
        assert dataset != SETUPS[name]
        assert f"published on {SETUPS[name]} only; got dataset '{dataset}'" in s.reason

    quick, skipped = sweep.plan("quick", only=["published"])  # MNIST and Fashion-MNIST: only d2l runs
    assert {(j.params["setup"], j.dataset) for j in quick} == {("d2l_lenet", "fashion_mnist"),
                                                                ("d2l_batch_norm", "fashion_mnist")}
    assert {j.configs[0].epochs for j in quick} == {experiments.profile_settings("published", "quick")["epochs"]}
    assert len(skipped) == 2 * len(SETUPS) - 2


def test_every_published_number_of_d2l_and_bigballon_points_at_its_reproduction():
    ours = {}
    for source in book.PUBLISHED:
        for ref in source.results:
            if ref.ours and ref.ours[0] == "published":
                ours[ref.ours[1]["setup"]] = (ref.dataset, ref.metric)
    assert ours == {name: (dataset, experiments.setups()[name]["published_metric"])
                    for name, dataset in SETUPS.items()}
    assert {m for _, m in ours.values()} == {"val_acc_best", "test_acc_best"}
    assert all(m == ("val_acc_best" if n.startswith("d2l") else "test_acc_best") for n, (_, m) in ours.items())


def _record(accs: list[float], test_best: float, test_last: float, status: str = "ok") -> dict:
    history = [dict(epoch=i + 1, val_acc=a, train_loss=0.5, val_loss=0.5) for i, a in enumerate(accs)]
    ok = status == "ok"
    return dict(status=status, history=history,
                metrics=dict(val_acc_best=max(accs) if ok else None, test_acc_best=test_best if ok else None,
                             test_acc_last=test_last if ok else None))


def test_the_comparison_table_sets_ours_beside_the_published_number():
    source = experiments.setups()["bigballon_augmentation"]
    records = [_record([0.5, 0.74], 0.74, 0.73), _record([0.5, 0.76], 0.76, 0.75), _record([0.2], 0, 0, "diverged")]
    row = report.published_comparison(source, records).iloc[0]
    assert row["published"] == "75.06% test accuracy"
    assert row["ours, best-val epoch (%)"].startswith("75.00 ± ") and row["ours, last epoch (%)"].startswith("74.00")
    assert row["our seeds (%)"] == "74.00 to 76.00"
    assert row["ours − published (points)"] == "-0.06"
    assert row["reproduced"].startswith("yes (95% prediction interval ")  # two seeds, 74 and 76: a wide one
    assert (row["our metric"], row["diverged"]) == ("test accuracy", 1)

    d2l = report.published_comparison(experiments.setups()["d2l_lenet"], [_record([0.74, 0.72], 0.7, 0.7)]).iloc[0]
    assert (d2l["ours, best-val epoch (%)"], d2l["ours, last epoch (%)"]) == ("74.00 (n=1)", "72.00 (n=1)")
    assert d2l["our metric"] == "validation accuracy"
    empty = report.published_comparison(source, [_record([0.1], 0, 0, "diverged")]).iloc[0]
    assert (empty["our seeds (%)"], empty["ours − published (points)"], empty["diverged"]) == ("–", "–", 1)
    assert empty["reproduced"] == "–"
    far = [_record([0.5, v], v, v) for v in (0.60, 0.61, 0.62)]
    assert report.published_comparison(source, far).iloc[0]["reproduced"].startswith("**no**")


def test_the_curves_show_the_published_number_as_a_line():
    fig = report.published_curves(experiments.setups()["d2l_lenet"], [_record([0.3, 0.7], 0.7, 0.7)] * 2)
    ax = fig.axes[0]
    line = next(line for line in ax.get_lines() if line.get_label().startswith("published"))
    assert list(line.get_ydata()) == [0.73, 0.73]
    assert line.get_label() == "published validation accuracy (73%)"
    assert "ours (2 seeds)" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)


def test_the_book_page_renders_the_setups_from_an_empty_store(tmp_path):
    text = book.published_fragment("full", tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| d2l") or line.startswith("| BIGBALLON")]
    assert len(rows) == len(SETUPS)
    assert "sigmoid, avg pooling, xavier_uniform init, sgd lr 0.1, constant schedule, batch 128, 10 epochs" in rows[0]
    assert "augment shift_flip (shifts up to 4 px), weight decay 0.0002" in rows[-1] and "200 epochs" in rows[-1]
    assert all("– (0/3 seeds stored) | – |" in r for r in rows)
    smoke = book.published_fragment("smoke", tmp_path)
    assert smoke.count("not in the smoke profile") == len(SETUPS)  # smoke trains MNIST only


def test_the_protocol_column_says_when_inputs_are_raw_pixels():
    from lenet_core import book

    d2l = book.protocol(experiments.published_setup("d2l_lenet", profile="full").config)
    bigballon = book.protocol(experiments.published_setup("bigballon_baseline", profile="full").config)
    assert d2l.endswith("10 epochs, pixel values in [0, 1] as inputs")
    assert "pixel values" not in bigballon
