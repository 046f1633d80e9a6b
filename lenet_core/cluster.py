"""The sweep on a Dask distributed cluster: each notebook execution is one task.

    python -m lenet_core sweep --profile full --scheduler tcp://HOST:8786 [--data-mirror DIR]

Workers share nothing with the client but the scheduler connection. A task
carries everything its notebook needs (the notebook file, the sweep
specification, the records of the job's runs already stored) and runs it in a
private temporary folder on the worker: its own run store, its own output
folder. The worker prepares the dataset itself, from torchvision's download
or from a mirror folder on the worker (`--data-mirror`), and runs the notebook
only when its copy is the data this checkout's run keys name (the same
content; a JPEG copy of CIFAR-10 is not the original). The task returns
what it produced (the new runs' records and weights, the executed notebook)
and the client writes them into its run store and `book/runs/`, each file
atomically and each run only if it is not stored yet. A worker lost mid-task
costs only that task: the scheduler runs it again elsewhere, and nothing of
the lost attempt reached the client.

Start workers with `--nthreads 1` (one notebook at a time per worker process;
more processes per machine with `--nworkers N`). A task's notebook runs on a
kernel of its own, started with the task's folders and settings as its
environment (`kernel.kernel_env`); the worker's own environment is left as it is.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .paths import atomic_write

ADDRESS = re.compile(r"^(tcp|tls)://[^\s/:]+:\d+$")
CONNECT_TIMEOUT = "10s"


def connect(address: str):
    """A Dask client for the scheduler at `address`; ValueError naming the problem otherwise."""
    if not ADDRESS.match(address):
        raise ValueError(f"scheduler address {address!r} is not valid; expected tcp://HOST:PORT "
                         f"(or tls://HOST:PORT), e.g. tcp://10.0.0.5:8786")
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("running the sweep on a Dask cluster needs the distributed package: "
                         "pip install -e '.[dask]'") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def describe(client) -> str:
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return f"{len(workers)} worker{'s' if len(workers) != 1 else ''} now"


def _data_mismatch(dataset: str, worker: dict, wanted: dict) -> str:
    def copy(identity):
        return f"{'lossy' if identity['lossy'] else 'lossless'} copy, content {identity['content_sha256'][:12]}"

    return (f"the worker's {dataset} ({copy(worker)}) is not the data this checkout keys its runs on "
            f"({copy(wanted)}); give the workers the same copy: --data-mirror, and on a worker caching "
            f"another one `python -m lenet_core data prepare {dataset} --force --mirror DIR`")


def execute_task(notebook: str, dataset: str, params: dict, profile: str, notebook_source: bytes,
                 spec: str, stored: dict[str, str], data_mirror: str | None, data_identity: dict,
                 copy: str, data_copy: str | None = None) -> dict:
    """On a worker: execute one notebook in a private folder and return what it produced.

    `copy` is the copy of the dataset the runs train on (the client's, named by
    `data_identity`); `data_copy` is the job's own choice (None: the published copy).
    Returns {"records": {key: json text}, "weights": {key: bytes}, "notebook": bytes} for the
    runs it trained, or {"error": one line, "failed_notebook": bytes or None} when the
    notebook failed or the worker's data is not `data_identity`: a failure is a result, not an
    exception, so it is not retried.
    """
    from . import data
    from .jobs import Job, one_line
    from .kernel import execute, kernel_env

    worker_identity = data.identity(data.prepare(dataset, mirror=data_mirror, copy=copy))  # cached after the first
    if worker_identity != data_identity:  # its runs would not be the runs the client's keys name
        return {"error": _data_mismatch(dataset, worker_identity, data_identity), "failed_notebook": None}
    with tempfile.TemporaryDirectory(prefix="lenet-task-") as tmp:
        tmp = Path(tmp)
        folders = {name: tmp / name for name in ("results", "checkpoints", "notebooks")}
        for folder in folders.values():
            folder.mkdir()
        (folders["notebooks"] / f"{notebook}.ipynb").write_bytes(notebook_source)
        (tmp / "sweep.yml").write_text(spec)
        for key, text in stored.items():  # the notebook loads these instead of training them
            (folders["results"] / f"{key}.json").write_text(text)
        env = kernel_env(threads=int(os.environ.get("LENET_THREADS", "1")), progress=False,
                         results=folders["results"], checkpoints=folders["checkpoints"], spec=tmp / "sweep.yml")
        job, output = Job(notebook, dataset, params, profile, data_copy=data_copy), tmp / "executed.ipynb"
        try:
            execute(job, source=folders["notebooks"], output=output, env=env)
        except Exception as exc:
            failed = output.with_suffix(".failed.ipynb")
            return {"error": one_line(exc), "failed_notebook": failed.read_bytes() if failed.exists() else None}
        keys = {p.stem for p in folders["results"].glob("*.json")} - set(stored)
        return {"records": {k: (folders["results"] / f"{k}.json").read_text() for k in keys},
                "weights": {k: (folders["checkpoints"] / f"{k}.pt").read_bytes() for k in keys
                            if (folders["checkpoints"] / f"{k}.pt").exists()},
                "notebook": output.read_bytes()}


def _stored_records(job) -> dict[str, str]:
    from .store import result_path, run_key

    paths = {run_key(c): result_path(run_key(c)) for c in job.configs}
    return {k: p.read_text() for k, p in paths.items() if p.exists()}


def collect(job, outcome: dict) -> Exception | None:
    """On the client: write a task's results into the run store and book/runs; the error, if any."""
    from .store import checkpoint_path, result_path, run_key

    if "error" in outcome:
        if outcome.get("failed_notebook"):
            job.output.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(job.output.with_suffix(".failed.ipynb"),
                         lambda tmp: tmp.write_bytes(outcome["failed_notebook"]))
        return RuntimeError(outcome["error"])
    expected = {run_key(c) for c in job.configs}
    for key, text in outcome["records"].items():
        if key not in expected or result_path(key).exists():
            continue  # not this job's, or already stored (by an earlier attempt or another sweep)
        if key in outcome["weights"]:
            atomic_write(checkpoint_path(key), lambda tmp: tmp.write_bytes(outcome["weights"][key]))
        atomic_write(result_path(key), lambda tmp: tmp.write_text(text))  # its presence means "done"
    missing = sorted(k for k in expected if not result_path(k).exists())
    if missing:
        return RuntimeError(f"the task came back without run{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    job.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(job.output, lambda tmp: tmp.write_bytes(outcome["notebook"]))
    return None


def run_on_cluster(client, todo: list, data_mirror: str | None = None):
    """Submit every job as a task; yields (job, error or None) as each ends, its results written."""
    from distributed import as_completed

    from . import data
    from .experiments import spec_path
    from .jobs import notebooks_dir

    spec = spec_path().read_text()
    futures = {}
    try:
        for job in todo:
            source = (notebooks_dir() / f"{job.notebook}.ipynb").read_bytes()
            copy = job.configs[0].data_copy
            future = client.submit(execute_task, job.notebook, job.dataset, job.params, job.profile, source, spec,
                                   _stored_records(job), data_mirror, data.identity(data.provenance(job.dataset, copy)),
                                   copy, job.data_copy, pure=False, key=f"lenet-{job.name}-{os.urandom(4).hex()}")
            futures[future] = job
        for future in as_completed(futures, loop=client.loop):
            job = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # the task could not run (e.g. lost too many workers)
                yield job, exc
                continue
            yield job, collect(job, outcome)
    finally:
        client.cancel(list(futures))
        client.close()
