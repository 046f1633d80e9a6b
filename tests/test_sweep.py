"""The sweep's planning, skipping, failure reporting and resuming (executor replaced by a fast
fake), and the warm kernels that execute its notebooks (a tiny probe notebook on a real kernel)."""

import io
import os

import nbformat
import pytest

from lenet_core import experiments, jobs, kernel, sweep, tuning
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
    # smoke: one dataset; one execution per parameter set, and one more per learning-rate search
    expected = sum(len(experiments.param_sets(nb)) + len(tuning.tuned_sets(nb, "smoke")) for nb in spec)
    assert len(jobs) + len(skipped) == expected and any(j.params.get("tune_lr") for j in jobs)
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
    assert jobs.slug({}) == "default"
    assert jobs.slug({"optimizer": "adam", "lr": 0.003}) == "optimizer=adam_lr=0.003"
    assert "/" not in jobs.slug({"x": "a/b c"})


def test_the_committed_store_holds_only_runs_the_specification_asks_for(monkeypatch):
    """Every record in results/ is a run some profile's sweep plans: a change to the specification
    that orphans stored runs shows up here, and the orphans are removed, not published by accident."""
    from lenet_core.paths import project_root

    monkeypatch.setenv("LENET_RESULTS_DIR", str(project_root() / "results"))  # the committed store, read only
    stored = {p.stem for p in (project_root() / "results").glob("*.json")}
    assert stored, "the committed run store is empty"
    assert sweep.orphans() == [], "remove them with `python -m lenet_core store orphans --remove`"
    assert len(stored) > len(sweep.planned_keys() - stored)  # the plan is not empty either


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_committed_store_holds_every_run_the_book_publishes(profile):
    """`make book` (full) and `make book PROFILE=quick` on a fresh clone load every run and train
    nothing: each run a sweep of these profiles plans is in results/ (a diverged run counts)."""
    from lenet_core.paths import project_root

    stored = {p.stem for p in (project_root() / "results").glob("*.json")}
    missing = sorted({f"{job.name} seed {c.seed}"
                      for job in sweep.plan(profile)[0] for c in job.configs if run_key(c) not in stored})
    # the copy comparison of the Method page: every side whose copy is not still being trained
    missing += sorted({f"copy comparison: {pair.label} ({c.data_copy}) seed {c.seed}"
                       for pair in experiments.copy_comparison(profile)
                       for c in pair.official.configs + pair.other.configs
                       if c.data_copy not in experiments.copies_in_progress() and run_key(c) not in stored})
    assert missing == [], f"{len(missing)} runs of the {profile} profile are not in results/: {missing[:5]}"


def test_orphans_are_listed_and_removed_with_their_weights(monkeypatch, capsys):
    from lenet_core import cli, store

    assert sweep.run("smoke", only=["pooling"], jobs=1, executor=fake_execute, out=io.StringIO()) == 0
    kept = {run_key(c) for job in sweep.plan("smoke", only=["pooling"])[0] for c in job.configs}
    orphan = next(iter(kept))
    monkeypatch.setattr(sweep, "planned_keys", lambda: kept - {orphan})
    assert sweep.orphans() == [orphan]
    assert cli.main(["store", "orphans"]) == 0 and orphan in capsys.readouterr().out
    assert store.result_path(orphan).exists()  # listing removes nothing
    assert cli.main(["store", "orphans", "--remove"]) == 0
    assert not store.result_path(orphan).exists() and not store.checkpoint_path(orphan).exists()
    assert all(store.result_path(k).exists() for k in kept - {orphan})
    assert "removed 1 run" in capsys.readouterr().out


def test_a_sweep_of_another_copy_plans_only_the_datasets_where_it_is_not_the_published_one():
    assert experiments.published_copy("mnist") == "official"
    jobs, _ = sweep.plan("full", only=["pooling"], data_copy="official")
    expected = {d for d in ("mnist", "fashion_mnist", "cifar10") if experiments.published_copy(d) != "official"}
    assert {j.dataset for j in jobs} == expected
    for job in jobs:
        assert all(c.data_copy == "official" for c in job.configs)
        assert job.parameters["data_copy"] == "official" and job.name.startswith(f"pooling/{job.dataset}-official/")
    published, _ = sweep.plan("full", only=["pooling"], datasets=["mnist"])
    assert "data_copy" not in published[0].parameters and published[0].name == "pooling/mnist/pool=avg"
    with pytest.raises(ValueError, match="unknown data copy 'png'; valid: jpeg, official"):
        sweep.plan("full", data_copy="png")


def probe_notebook(folder):
    """A tiny notebook that shows what it inherits from its kernel: its namespace, its process,
    its execution counts; `fail` makes it fail."""
    from nbformat.v4 import new_code_cell, new_notebook

    params = new_code_cell('dataset = "mnist"\nprofile = "smoke"\nfail = False\nn = 0')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        params,
        new_code_cell('import os\nassert "leak" not in globals(), "the previous notebook left its variables"\n'
                      "leak = n\nprint(os.getpid())"),
        new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()"),
        new_code_cell('if fail:\n    raise RuntimeError("the probe failed")'),
        new_code_cell('print(os.environ.get("LENET_THREADS"), os.environ.get("LENET_PROGRESS"))'),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "probe.ipynb")


def probe(n: int, fail: bool = False) -> jobs.Job:
    return jobs.Job("probe", "mnist", {"fail": fail, "n": n}, "smoke")


def kernel_pid(job: jobs.Job) -> int:
    """The kernel process that ran the job, checking that it ran as on a new kernel."""
    cells = [c for c in nbformat.read(job.output, as_version=4).cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == [1, 2, 3, 4, 5, 6]  # papermill's injected cell first
    assert "image/png" in cells[3].outputs[0]["data"]  # figures still show
    return int(cells[2].outputs[0]["text"])


@pytest.fixture
def probe_folder(tmp_path, monkeypatch):
    probe_notebook(tmp_path)
    monkeypatch.setattr(jobs, "notebooks_dir", lambda: tmp_path)
    return tmp_path


def test_a_warm_kernel_runs_each_notebook_as_a_new_kernel_would(probe_folder, monkeypatch):
    monkeypatch.delenv("LENET_THREADS", raising=False)
    warm = kernel.WarmKernel(probe_folder)
    try:
        kernel.execute(probe(1), kernel=warm)
        kernel.execute(probe(2), kernel=warm)
        with pytest.raises(Exception, match="the probe failed"):
            kernel.execute(probe(3, fail=True), kernel=warm)
        assert warm.km is None  # a kernel that failed a notebook is not reused
        assert probe(3, fail=True).output.with_suffix(".failed.ipynb").exists()
        assert not probe(3, fail=True).output.exists()
        kernel.execute(probe(4), kernel=warm)
    finally:
        warm.close()
    kernel.execute(probe(5), env={"LENET_THREADS": "3"})  # a kernel of its own, with these settings
    assert kernel_settings(probe(5)).split()[0] == "3" and "LENET_THREADS" not in os.environ
    first, second, after_failure = (kernel_pid(probe(n)) for n in (1, 2, 4))
    assert first == second != after_failure


def kernel_settings(job: jobs.Job) -> str:
    """What the job's kernel had as LENET_THREADS and LENET_PROGRESS."""
    cells = [c for c in nbformat.read(job.output, as_version=4).cells if c.cell_type == "code"]
    return cells[-1].outputs[0]["text"].strip()


def test_a_local_sweep_reuses_one_kernel_per_thread_and_shuts_them_down(probe_folder, monkeypatch):
    monkeypatch.delenv("LENET_THREADS", raising=False)
    monkeypatch.setenv("LENET_PROGRESS", "1")
    before = dict(os.environ)
    todo = [probe(n) for n in range(5)]
    env = kernel.kernel_env(threads=1, progress=False)
    assert env == {"LENET_THREADS": "1", "LENET_PROGRESS": "0"}
    assert [error for _, error in sweep.run_locally(todo, jobs=2, env=env)] == [None] * 5
    assert dict(os.environ) == before  # the settings went to the kernels, not into this process
    assert {kernel_settings(job) for job in todo} == {"1 0"}
    pids = {kernel_pid(job) for job in todo}
    assert 1 <= len(pids) <= 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
