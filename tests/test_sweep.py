"""The sweep's planning, skipping, failure reporting and resuming (executor replaced by a fast fake)."""

import io

import pytest

from lenet_core import experiments, sweep
from lenet_core.store import load, run_key

pytestmark = pytest.mark.usefixtures("mnist_ready")


@pytest.fixture(autouse=True)
def executed_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_EXECUTED_DIR", str(tmp_path / "executed"))
    return tmp_path / "executed"


def fake_execute(job):
    """What the notebook does, minus the kernel: train or load every run, then write the output."""
    for exp in job.experiments:
        exp.run(log=None)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    job.output.write_text("{}")


def test_plan_covers_the_specification_and_lists_what_it_skips():
    jobs, skipped = sweep.plan("smoke")
    spec = experiments.load_spec()["notebooks"]
    expected = sum(len(experiments.param_sets(nb)) for nb in spec)
    assert len(jobs) + len(skipped) == expected  # smoke: one dataset
    published = {f"published/mnist/setup={name}" for name in experiments.setups()}  # none on MNIST
    assert {s.name for s in skipped} == {"augmentation/mnist/augment=flip",
                                         "augmentation/mnist/augment=shift_flip"} | published
    assert all("valid for mnist" in s.reason for s in skipped if s.name not in published)
    assert all("only; got dataset 'mnist'" in s.reason for s in skipped if s.name in published)
    modern = next(j for j in jobs if j.notebook == "modern")
    assert len(modern.experiments) == len(spec["modern"]["ladder"])


def test_plan_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown notebook 'pool'; valid: classic, activation, pooling"):
        sweep.plan("smoke", only=["pool"])
    with pytest.raises(ValueError, match="unknown profile 'huge'; valid: smoke, quick, full"):
        sweep.plan("huge")


def test_a_sweep_runs_everything_once_then_skips_it(monkeypatch):
    out = io.StringIO()
    assert sweep.run("smoke", only=["pooling"], jobs=2, executor=fake_execute, out=out) == 0
    jobs, _ = sweep.plan("smoke", only=["pooling"])
    assert len(jobs) == 3 and all(j.done() for j in jobs)
    assert all(load(run_key(c)) for j in jobs for c in j.configs)
    assert "3 executed, 0 failed" in out.getvalue()

    def must_not_run(job):
        raise AssertionError(f"{job.name} ran again")

    out = io.StringIO()
    assert sweep.run("smoke", only=["pooling"], executor=must_not_run, out=out) == 0
    assert "3 already done, 0 runs to train" in out.getvalue()


def test_a_failing_notebook_does_not_stop_the_others():
    def flaky(job):
        if job.params == {"pool": "max"}:
            raise RuntimeError("kernel died\nMemoryError: out of memory")
        fake_execute(job)

    out = io.StringIO()
    assert sweep.run("smoke", only=["pooling"], jobs=1, executor=flaky, out=out) == 1
    text = out.getvalue()
    assert "2 executed, 1 failed" in text
    assert "FAILED pooling/mnist/pool=max: MemoryError: out of memory" in text
    assert "pool=max.failed.ipynb" in text


def test_an_interrupted_sweep_resumes_where_it_stopped():
    finished = []

    def interrupted(job):
        if job.params == {"pool": "max"}:
            raise KeyboardInterrupt  # Ctrl-C while this notebook runs
        fake_execute(job)
        finished.append(job.name)

    with pytest.raises(KeyboardInterrupt):
        sweep.run("smoke", only=["pooling"], jobs=1, executor=interrupted, out=io.StringIO())
    resumed = []

    def record(job):
        resumed.append(job.name)
        fake_execute(job)

    assert sweep.run("smoke", only=["pooling"], jobs=1, executor=record, out=io.StringIO()) == 0
    assert "pooling/mnist/pool=max" in resumed
    assert not set(finished) & set(resumed)  # what finished is not redone
    assert len(finished) + len(resumed) == 3


def test_slugs_are_file_names():
    assert sweep.slug({}) == "default"
    assert sweep.slug({"optimizer": "adam", "lr": 0.003}) == "optimizer=adam_lr=0.003"
    assert "/" not in sweep.slug({"x": "a/b c"})


def test_the_committed_store_holds_only_runs_the_specification_asks_for():
    """Every record in results/ is a run some profile's sweep plans: a change to the specification
    that orphans stored runs shows up here, and the orphans are removed, not published by accident."""
    from lenet_core.paths import project_root

    planned = {run_key(c) for profile in experiments.PROFILES
               for job in sweep.plan(profile)[0] for c in job.configs}
    stored = {p.stem for p in (project_root() / "results").glob("*.json")}
    assert stored, "the committed run store is empty"
    assert sorted(stored - planned) == []
