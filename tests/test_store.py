import importlib
import json

import pytest

from lenet_core import data, store
from lenet_core.config import RunConfig

train_module = importlib.import_module("lenet_core.train")  # the module (lenet_core.train is the function)

pytestmark = pytest.mark.usefixtures("mnist_ready")

CFG = RunConfig(train_size=256, epochs=1, batch_size=64)


def test_run_key_depends_on_config_seed_data_and_engine(monkeypatch):
    key = store.run_key(CFG)
    assert key.startswith("mnist-") and key == store.run_key(RunConfig.from_dict(CFG.to_dict()))
    assert store.run_key(CFG.replace(seed=1)) != key
    assert store.run_key(CFG.replace(act="tanh")) != key
    monkeypatch.setattr(train_module, "ENGINE_VERSION", "999")
    assert store.run_key(CFG) != key
    monkeypatch.undo()
    prov = dict(data.provenance("mnist"), content_sha256="0" * 64)
    monkeypatch.setattr(data, "provenance", lambda name, copy="official": prov)
    assert store.run_key(CFG) != key


def test_an_engine_revision_changes_only_the_keys_of_the_runs_it_applies_to(monkeypatch):
    swa, ema = CFG.replace(average="swa"), CFG.replace(average="ema")
    keys = {c: store.run_key(c) for c in (CFG, swa, ema)}
    assert train_module.engine_version(swa) == "1+swa-best-averaged" and train_module.engine_version(ema) == "1"
    monkeypatch.setitem(train_module.ENGINE_REVISIONS, "probe", lambda c: c.average == "ema")
    assert store.run_key(ema) != keys[ema]
    assert store.run_key(CFG) == keys[CFG] and store.run_key(swa) == keys[swa]
    monkeypatch.delitem(train_module.ENGINE_REVISIONS, "swa-best-averaged")
    assert store.run_key(swa) != keys[swa]


def test_the_key_ignores_where_the_data_came_from(monkeypatch):
    key = store.run_key(CFG)
    prov = dict(data.provenance("mnist"), location="/elsewhere", source="torchvision download")
    monkeypatch.setattr(data, "provenance", lambda name, copy="official": prov)
    assert store.run_key(CFG) == key


def test_train_or_load_stores_then_loads_without_retraining(monkeypatch):
    said = []
    first = store.train_or_load(CFG, log=said.append)
    path = store.result_path(first["key"])
    assert path.exists() and store.checkpoint_path(first["key"]).exists()
    assert json.loads(path.read_text()) == first
    assert said[0].startswith("trained and stored run")

    def no_training(*args, **kwargs):
        raise AssertionError("a stored run was retrained")

    monkeypatch.setattr(store, "train", no_training)
    second = store.train_or_load(CFG, log=said.append)
    assert second == first
    assert said[1].startswith(f"loaded stored run {first['key']}")
    assert first["provenance"]["date"] in said[1] and "torch" in said[1]  # says where it came from


def test_an_interrupted_write_leaves_no_result(monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were stopped mid-write

    monkeypatch.setattr(json, "dumps", crash)
    with pytest.raises(KeyboardInterrupt):
        store.train_or_load(CFG, log=None)
    folder = store.results_dir()
    assert not list(folder.glob("*.json")) and not list(folder.glob(".*tmp"))
    monkeypatch.undo()
    assert store.load(store.run_key(CFG)) is None


def test_a_training_crash_stores_nothing(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(store, "train", boom)
    with pytest.raises(RuntimeError):
        store.train_or_load(CFG, log=None)
    assert not store.results_dir().exists() or not any(store.results_dir().iterdir())


def test_an_interrupted_run_carries_on_from_its_last_epoch_and_leaves_no_state_behind(monkeypatch):
    import importlib

    engine = importlib.import_module("lenet_core.train")  # the module, not the function of that name
    config = CFG.replace(epochs=3)
    real, calls = engine.evaluate, []

    def killed_on_the_second_validation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", killed_on_the_second_validation)
    with pytest.raises(KeyboardInterrupt):
        store.train_or_load(config, log=None)
    key = store.run_key(config)
    assert store.load(key) is None and store.partial_path(key).exists()  # nothing stored, epoch 1 kept
    monkeypatch.setattr(engine, "evaluate", real)
    said = []
    record = store.train_or_load(config, log=said.append)
    assert said[0] == f"resuming run {key} from {key}.partial.pt"
    assert record["provenance"]["resumed_after_epochs"] == [1] and len(record["history"]) == 3
    assert not store.partial_path(key).exists() and store.checkpoint_path(key).exists()


def test_an_unreadable_record_is_retrained():
    key = store.run_key(CFG)
    store.result_path(key).parent.mkdir(parents=True)
    store.result_path(key).write_text('{"config": ')  # truncated by something outside the engine
    record = store.train_or_load(CFG, log=None)
    assert record["key"] == key and store.load(key) == record


def test_a_diverged_run_is_stored_as_diverged():
    record = store.train_or_load(RunConfig(optimizer="sgd", lr=1e20, train_size=256, epochs=2), log=None)
    assert record["status"] == "diverged"
    assert store.load(record["key"])["status"] == "diverged"  # valid JSON: no NaN in it


def test_no_committed_record_names_an_absolute_path_of_the_machine_it_was_prepared_on():
    from lenet_core.paths import project_root

    paths = sorted((project_root() / "results").glob("*.json"))
    assert paths
    absolute = [p.name for p in paths if json.loads(p.read_text())["data"]["location"].startswith("/")]
    assert absolute == []


def test_the_two_cifar10_copies_have_different_keys_and_runs_stored_before_copies_had_names_keep_theirs():
    from lenet_core.paths import project_root

    official, jpeg = RunConfig(dataset="cifar10"), RunConfig(dataset="cifar10", data_copy="jpeg")
    assert store.run_key(official) != store.run_key(jpeg)
    # the committed JPEG runs (the copy comparison's), stored before the configuration named its copy:
    # their keys are unchanged
    records = [json.loads(p.read_text()) for p in sorted((project_root() / "results").glob("cifar10-*.json"))]
    old = [r for r in records if r["data"].get("lossy") and "data_copy" not in r["config"]]
    assert old, "no committed JPEG run left from before copies had names"
    for record in old:
        assert store.run_key(RunConfig.from_dict({**record["config"], "data_copy": "jpeg"})) == record["key"]
