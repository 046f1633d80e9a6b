"""Shared fixtures: every test gets its own empty run store; data comes from `make data`."""

import os

import pytest
import torch

from lenet_core import data


def pytest_configure(config):
    """Under pytest-xdist each worker is one of several processes sharing the cores: one thread each."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Results and checkpoints go to a temp folder, never into the repository's store."""
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("LENET_CHECKPOINTS_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("LENET_PROGRESS", "0")
    return tmp_path


@pytest.fixture(scope="session")
def mnist_ready():
    """MNIST must have been prepared (`make data`); say how when it was not. Returns its provenance."""
    try:
        return data.provenance("mnist")
    except data.DataError as exc:
        pytest.fail(f"{exc}", pytrace=False)


@pytest.fixture
def use_spec(tmp_path, monkeypatch):
    """A sweep specification of the test's own: `use_spec(text)` writes it, points the project at
    it and returns its path (the loaded specification is forgotten before and after)."""
    from lenet_core import experiments

    def use(text: str):
        path = tmp_path / "sweep.yml"
        path.write_text(text)
        monkeypatch.setenv("LENET_SWEEP_SPEC", str(path))
        experiments._load.cache_clear()
        return path

    yield use
    experiments._load.cache_clear()
