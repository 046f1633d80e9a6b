"""The backlog: the runs planned but not yet published, counted, costed and trained."""

import os
import subprocess
import sys

import pytest

from lenet_core import backlog, store, tuning
from lenet_core.cli import main

pytestmark = pytest.mark.usefixtures("mnist_ready")

# A smoke profile with one published setting, one pending setting and a pending learning-rate search.
SPEC = """
lr_search: {seed: 0, short_fraction: 0.5, keep: 1, pending: [smoke]}
profiles:
  smoke: {epochs: 2, train_size: 128, seeds: [0, 1], datasets: [mnist]}
notebooks:
  optimization:
    base: {batch_size: 64}
    params:
      - {optimizer: adam, lr: 0.001}
      - {optimizer: sgd, lr: 0.05}
    pending: {smoke: [{optimizer: sgd, lr: 0.05}]}
    lr_factors: [0.5, 1]
"""


@pytest.fixture
def spec(use_spec):
    return use_spec(SPEC)


@pytest.mark.usefixtures("spec")
def test_the_backlog_lists_the_unpublished_runs_and_trains_them_stage_by_stage(capsys):
    (part,) = backlog.parts("smoke")
    # SGD's two seeds; each setting's short search stage (two rates, one seed; Adam's at 0.001 and
    # SGD's at 0.05 are runs of their own: one epoch)
    assert part.name == "optimization" and part.planned == 2 + 2 * 2 and len(part.todo) == 6
    assert main(["store", "backlog", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "optimization: 6 of 6 runs to train, 8 epochs" in out
    assert "6 runs of a dataset with no stored run are not costed" in out  # nothing stored: no speed known
    assert main(["store", "backlog", "--profile", "smoke", "--train"]) == 0
    # the long stages became known once the short ones were in, and were trained in a later round
    assert "trained 8 runs" in capsys.readouterr().out
    assert [p.todo for p in backlog.parts("smoke")] == [[]]
    for params in ({"optimizer": "adam", "lr": 0.001}, {"optimizer": "sgd", "lr": 0.05}):
        found = tuning.search("optimization", "mnist", "smoke", **params)
        assert found.chosen is not None
    assert not list(store.checkpoints_dir().glob("*.claim")) and not list(store.checkpoints_dir().glob("*.partial.pt"))


@pytest.mark.usefixtures("spec")
def test_the_cost_is_estimated_from_the_speed_of_similar_stored_runs():
    from test_book import fake_record, store as put

    (part,) = backlog.parts("smoke")
    config = part.todo[0]
    record = fake_record(config.replace(seed=7), [0.5, 0.6])
    record["provenance"]["train_images_per_second"] = 64.0  # 128 images an epoch: 2 seconds
    put(record)
    speed = backlog.speeds(backlog.stored_records())
    assert backlog.seconds(config, speed) == pytest.approx(config.epochs * 128 / 64.0)
    assert backlog.seconds(config.replace(dataset="cifar10"), speed) is None  # no CIFAR-10 run stored
    assert backlog.seconds(config.replace(batch_size=32), speed) == pytest.approx(config.epochs * 2.0)  # coarser


def test_a_claim_of_a_live_process_is_respected_and_one_of_an_ended_process_taken_over():
    key = "mnist-0000000000000000"
    path = store.checkpoints_dir() / f"{key}.claim"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getppid()))  # a live process that is not this one
    assert not backlog.claim(key)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(ended.stdout.strip())
    assert backlog.claim(key) and path.read_text() == str(os.getpid())
    assert backlog.claim(key)  # this process holds it already
    backlog.release(key)
    assert not path.exists()


def test_only_the_parts_named_are_counted_and_trained(use_spec, capsys):
    use_spec(SPEC + """  pooling:
    base: {batch_size: 64}
    params: {pool: [avg]}
    pending: {smoke: true}
""")
    assert [p.name for p in backlog.parts("smoke")] == ["optimization", "pooling"]
    assert [p.name for p in backlog.parts("smoke", ["pooling"])] == ["pooling"]
    assert main(["store", "backlog", "--profile", "smoke", "--only", "pooling", "--train"]) == 0
    out = capsys.readouterr().out
    assert "pooling: 2 of 2 runs to train" in out and "optimization" not in out and "trained 2 runs" in out
    assert [len(p.todo) for p in backlog.parts("smoke")] == [6, 0]  # the other part is untouched
    assert main(["store", "backlog", "--profile", "smoke", "--only", "activation"]) == 2
    assert "unknown backlog part 'activation'; valid: optimization, pooling" in capsys.readouterr().err


def test_an_unknown_profile_is_refused(capsys):
    assert main(["store", "backlog", "--profile", "huge"]) == 2
    assert "unknown profile 'huge'; valid: smoke, quick, full" in capsys.readouterr().err
