"""The sweep: execute every (notebook, parameter set, dataset) of a profile with papermill.

Planning, skipping stored work, progress and failure reporting live here;
the executor only runs one notebook. Runs are cached by the run store, so a
killed sweep resumes where it stopped: finished runs load in seconds, and an
executed notebook is moved into `book/` only once it has run to the end.
"""


import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from . import jobs as jobs_module
from .executions import notebook_experiments
from .experiments import active_profile, check_notebook, load_spec, param_sets, profile_settings
from .jobs import Job, one_line
from .kernel import WarmKernel, execute, kernel_env
from .tuning import tuned_sets


@dataclass
class Skipped:
    name: str
    reason: str


def plan(profile: str, only: list[str] | None = None, datasets: list[str] | None = None,
         data_copy: str | None = None) -> tuple[list[Job], list[Skipped]]:
    """Every job of the profile; combinations a dataset does not allow (flipped digits, a published
    setup on another dataset than its own) are refused when their experiments are built, and listed
    as skipped with the reason.

    `data_copy` trains the datasets that have that copy, other than the one the book publishes,
    on it (only those datasets are planned); None plans the published copies.
    """
    from .data import COPIES
    from .experiments import published_copy

    profile = active_profile(profile)
    if data_copy is not None:
        valid = sorted({c for copies in COPIES.values() for c in copies})
        if data_copy not in valid:
            raise ValueError(f"unknown data copy {data_copy!r}; valid: {', '.join(valid)}")
        have = [d for d, copies in COPIES.items() if data_copy in copies and published_copy(d) != data_copy]
        datasets = [d for d in (datasets or have) if d in have]
    notebooks = list(load_spec()["notebooks"])
    for name in only or []:
        check_notebook(name)
    jobs, skipped = [], []
    for notebook in only or notebooks:
        wanted = profile_settings(notebook, profile)["datasets"]
        for dataset in wanted if datasets is None else [d for d in datasets if d in wanted]:
            for params in param_sets(notebook, profile) + tuned_sets(notebook, profile):
                job = Job(notebook, dataset, params, profile, data_copy=data_copy)
                try:
                    job.experiments = notebook_experiments(notebook, dataset, profile, data_copy=data_copy, **params)
                except ValueError as exc:
                    skipped.append(Skipped(job.name, str(exc)))
                    continue
                jobs.append(job)
    return jobs, skipped


def planned_keys() -> set[str]:
    """The key of every run some profile plans: the jobs on the copies the book publishes, on the
    copies still being trained beside them, the runs still pending, and both sides of the
    copy comparison."""
    from .executions import pending_configs
    from .experiments import PROFILES, copies_in_progress, copy_comparison
    from .store import run_key

    keys = {run_key(c) for profile in PROFILES for copy in [None, *copies_in_progress()]
            for job in plan(profile, data_copy=copy)[0] for c in job.configs}
    keys |= {run_key(c) for profile in PROFILES for c in pending_configs(profile)}
    return keys | {run_key(c) for pair in copy_comparison("full") for c in pair.official.configs + pair.other.configs}


def orphans() -> list[str]:
    """Keys stored in the run store that no profile plans (for example after the published copy
    of a dataset changed): left out of every page, and safe to remove."""
    from .store import results_dir

    planned = planned_keys()
    return sorted(p.stem for p in results_dir().glob("*.json") if p.stem not in planned)


def default_jobs() -> int:
    """One notebook per core, each training with one thread (faster than one process with all)."""
    return max(1, os.cpu_count() or 1)


def run_locally(todo: list[Job], jobs: int, executor=None, env: dict[str, str] | None = None):
    """Execute jobs on this machine, `jobs` at once; yields (job, error or None) as each ends.
    `executor(job)` runs one job; by default `execute` on a warm kernel per thread, started
    with `env` (see `kernel.kernel_env`)."""
    kernels: dict[int, WarmKernel] = {}
    if executor is None:
        def executor(job):
            kernel = kernels.setdefault(threading.get_ident(), WarmKernel(jobs_module.notebooks_dir(), env))
            execute(job, kernel=kernel)

    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = {pool.submit(executor, job): job for job in todo}
    try:
        for future in as_completed(futures):
            error = future.exception()
            if error is not None and not isinstance(error, Exception):
                raise error  # an interrupt, not a failure of this notebook
            yield futures[future], error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # an interrupted sweep lets running notebooks finish
        for kernel in kernels.values():
            kernel.close()


def run(profile: str, only: list[str] | None = None, datasets: list[str] | None = None,
        jobs: int | None = None, executor=None, out=sys.stdout, scheduler: str | None = None,
        data_mirror: str | None = None, data_copy: str | None = None) -> int:
    """Execute the sweep; returns the number of failed jobs (0 = all done).

    Locally (the default) `jobs` notebooks run at once on this machine. With
    `scheduler` (a Dask scheduler address) every notebook execution is a task
    on that cluster instead; see `lenet_core.cluster`. Planning, skipping what
    is stored, progress and the summary are the same either way.
    """
    from tqdm.auto import tqdm

    all_jobs, skipped = plan(profile, only, datasets, data_copy)
    todo = [j for j in all_jobs if not j.done()]
    if scheduler:
        from . import cluster

        client = cluster.connect(scheduler)
        where = f"on the Dask cluster at {scheduler} ({cluster.describe(client)})"
        unfinished = "the tasks still on the cluster are cancelled"
        completed = cluster.run_on_cluster(client, todo, data_mirror)
    else:
        jobs = jobs or default_jobs()
        # The kernels' own bars would interleave; several notebooks at once train one thread each.
        env = kernel_env(threads=1 if jobs > 1 else None, progress=False)
        where = f"{jobs} at a time"
        unfinished = "notebooks already running are let finish"
        completed = run_locally(todo, jobs, executor, env)
    n_runs = sum(len(j.configs) for j in all_jobs)
    n_train = sum(len(j.pending()) for j in todo)
    print(f"sweep {active_profile(profile)}: {len(all_jobs)} notebook executions ({n_runs} runs), "
          f"{len(all_jobs) - len(todo)} already done, {n_train} runs to train, {where}", file=out)
    failures: list[tuple[Job, str]] = []
    costs = {id(j): j.cost() for j in todo}
    bar = tqdm(total=sum(costs.values()), unit="s", desc="sweep", file=out,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} est. s [{elapsed}<{remaining}] {postfix}")
    started = time.perf_counter()
    try:
        for job, error in completed:
            if error is not None:
                failures.append((job, one_line(error)))
            bar.update(costs[id(job)])
            bar.set_postfix_str(f"last: {job.name}{' FAILED' if error else ''}")
    except BaseException:
        print(f"\nsweep interrupted: runs finished so far are stored; run it again to resume ({unfinished})",
              file=out)
        raise
    finally:
        completed.close()
        bar.close()
    print(f"sweep finished in {time.perf_counter() - started:.0f} s: "
          f"{len(todo) - len(failures)} executed, {len(failures)} failed", file=out)
    for s in skipped:
        print(f"  skipped {s.name}: {s.reason}", file=out)
    for job, message in failures:
        print(f"  FAILED {job.name}: {message}\n    see {job.output.with_suffix('.failed.ipynb')}", file=out)
    return len(failures)


