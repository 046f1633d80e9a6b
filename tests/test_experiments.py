"""From the sweep specification to run configurations: profiles, per-dataset values, the ladder."""

import pytest

from lenet_core import experiments


def _spec_with_ladder(tmp_path, monkeypatch, ladder: str):
    spec = (tmp_path / "sweep.yml")
    spec.write_text(f"""
profiles:
  smoke: {{epochs: 3, train_size: 512, seeds: [0], datasets: [mnist]}}
notebooks:
  modern:
    base: {{preset: classic}}
    params: [{{}}]
    ladder: {ladder}
""")
    monkeypatch.setenv("LENET_SWEEP_SPEC", str(spec))
    experiments._load.cache_clear()


def test_every_rung_adds_its_change_to_the_rungs_before(tmp_path, monkeypatch):
    _spec_with_ladder(tmp_path, monkeypatch, '[{rung: start}, {rung: relu, act: relu}, {rung: adam, optimizer: adam, lr: 0.001}]')
    start, relu, adam = experiments.ladder("mnist", "smoke")
    assert (start.config.act, relu.config.act, adam.config.act) == ("scaled_tanh", "relu", "relu")
    assert (relu.config.optimizer, adam.config.optimizer, adam.config.lr) == ("momentum", "adam", 0.001)
    assert [r.label for r in (start, relu, adam)] == ["start", "relu", "adam"]


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
        rungs = experiments.ladder(dataset, "full")
        assert rungs[0].config == rungs[0].config.classic(dataset=dataset, epochs=rungs[0].config.epochs,
                                                         train_size=0, seed=0,
                                                         data_copy=experiments.published_copy(dataset))
        assert len({r.config for r in rungs}) == len(rungs)  # every rung changes something
