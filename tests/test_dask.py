"""The sweep on a real Dask cluster: a scheduler and two workers started here, on 127.0.0.1 only.

Each worker gets its own empty data folder and prepares MNIST itself from the
mirror ($DATA_MIRROR), so nothing but the scheduler connection is shared.
"""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

distributed = pytest.importorskip("distributed")

from lenet_core import sweep  # noqa: E402
from lenet_core.train import train  # noqa: E402
from lenet_core.paths import checkpoints_dir, results_dir  # noqa: E402
from lenet_core.store import run_key  # noqa: E402

pytestmark = [pytest.mark.dask, pytest.mark.usefixtures("mnist_ready")]

DASK = str(Path(sys.executable).with_name("dask"))
# Five notebook executions of two seeds each: small, but real notebooks in real kernels. ReLU
# with max pooling is both activation/relu and pooling/max: eight distinct runs, two of them
# wanted by two tasks at once, which the store must keep once.
SPEC = """
profiles:
  smoke: {epochs: 1, train_size: 256, seeds: [0, 1], datasets: [mnist]}
  quick: {epochs: 1, train_size: 256, seeds: [0, 1], datasets: [mnist]}
  full: {epochs: 1, train_size: 256, seeds: [0, 1], datasets: [mnist]}
notebooks:
  pooling:
    base: {}
    params: {pool: [avg, max, subsample]}
  activation:
    base: {}
    params: {act: [relu, tanh]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


@dataclass
class Cluster:
    address: str
    mirror: str | None
    workers: dict  # name -> Popen


@pytest.fixture
def spec(tmp_path, monkeypatch, use_spec):
    monkeypatch.setenv("LENET_EXECUTED_DIR", str(tmp_path / "executed"))
    return use_spec(SPEC)


@pytest.fixture
def cluster(tmp_path, spec):
    """A scheduler and two one-thread workers; every process is killed at the end, whatever happens."""
    from lenet_core.data import data_dir

    mirror = os.environ.get("DATA_MIRROR") or None
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []

    def start(args, env=None, name="scheduler"):
        log = open(tmp_path / f"{name}.log", "w")
        proc = subprocess.Popen([DASK, *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
        procs.append(proc)
        return proc

    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", "--no-show"])
        workers = {}
        for name in ("w0", "w1"):
            # Without a mirror the workers read this checkout's prepared data; with one, they prepare their own.
            data = tmp_path / f"data-{name}" if mirror else data_dir()
            workers[name] = start(["worker", address, "--name", name, "--nthreads", "1", "--no-nanny",
                                   "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "60"],
                                  env={"LENET_DATA_DIR": str(data), "LENET_THREADS": "1"}, name=name)
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=90)
        yield Cluster(address, mirror, workers)
    finally:
        for proc in procs:
            _stop(proc)


def _stored(keys):
    return {k: json.loads((results_dir() / f"{k}.json").read_text()) for k in keys}


def _assert_complete_and_clean(out: str, only: list[str] | None = None):
    jobs, _ = sweep.plan("smoke", only=only)
    keys = sorted({run_key(c) for j in jobs for c in j.configs})
    assert len(keys) == (8 if only is None else 6)
    assert sorted(p.name for p in results_dir().iterdir()) == sorted(f"{k}.json" for k in keys)  # each once, no temp files
    assert sorted(p.name for p in checkpoints_dir().iterdir()) == sorted(f"{k}.pt" for k in keys)
    assert all(j.done() for j in jobs)
    executed = [p for p in Path(os.environ["LENET_EXECUTED_DIR"]).rglob("*") if p.is_file()]
    assert sorted(p.name for p in executed) == sorted(j.output.name for j in jobs)  # no .running or .failed
    assert f"{len(jobs)} executed, 0 failed" in out
    return keys


def test_a_sweep_on_the_cluster_stores_each_run_once_with_the_local_numbers(cluster, tmp_path, monkeypatch):
    out = io.StringIO()
    assert sweep.run("smoke", scheduler=cluster.address, data_mirror=cluster.mirror, out=out) == 0
    assert "sweep smoke: 5 notebook executions (10 runs), 0 already done, 10 runs to train, on the Dask cluster" \
        in out.getvalue()  # (10 runs counted per notebook, as a local sweep counts them)
    keys = _assert_complete_and_clean(out.getvalue())
    remote = _stored(keys)

    out = io.StringIO()
    assert sweep.run("smoke", scheduler=cluster.address, out=out) == 0  # all stored: nothing is submitted
    assert "5 already done, 0 runs to train" in out.getvalue()

    # The same runs trained here, in this process, one thread per run as on the workers.
    configs = {run_key(c): c for j in sweep.plan("smoke")[0] for c in j.configs}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = {key: train(configs[key], progress=False).record for key in keys}
    finally:
        torch.set_num_threads(threads)
    for key in keys:
        for field in ("train_loss", "val_loss", "val_acc"):
            assert [h[field] for h in remote[key]["history"]] == [h[field] for h in local[key]["history"]], key
        assert remote[key]["metrics"]["test_acc_best"] == local[key]["metrics"]["test_acc_best"]
        assert remote[key]["metrics"]["test_loss_best"] == pytest.approx(local[key]["metrics"]["test_loss_best"],
                                                                         rel=1e-6)


def test_a_worker_lost_mid_sweep_costs_only_its_task(cluster):
    out, result = io.StringIO(), {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "failed", sweep.run("smoke", only=["pooling"], scheduler=cluster.address, data_mirror=cluster.mirror,
                           out=out)))
    thread.start()
    killed = None
    with distributed.Client(cluster.address, timeout="60s") as client:
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and thread.is_alive():
            workers = client.scheduler_info(n_workers=-1)["workers"]
            busy = [w["name"] for addr, w in workers.items() if client.processing().get(addr)]
            if busy:
                # let the task get into its notebook, then kill the worker holding it
                time.sleep(2)
                killed = busy[0]
                os.killpg(cluster.workers[killed].pid, signal.SIGKILL)
            time.sleep(0.2)
    thread.join(timeout=300)
    assert not thread.is_alive(), "the sweep did not finish after a worker was lost"
    assert killed is not None, "no task was ever seen running"
    assert cluster.workers[killed].wait(timeout=10) == -signal.SIGKILL
    assert result["failed"] == 0, out.getvalue()
    _assert_complete_and_clean(out.getvalue(), only=["pooling"])


def test_a_bad_or_unreachable_scheduler_is_refused_clearly(spec):
    with pytest.raises(ValueError, match="scheduler address 'localhost' is not valid; expected tcp://HOST:PORT"):
        sweep.run("smoke", scheduler="localhost", out=io.StringIO())
    with pytest.raises(ValueError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:\d+"):
        sweep.run("smoke", scheduler=f"tcp://127.0.0.1:{_free_port()}", out=io.StringIO())


def test_a_failed_notebook_comes_back_as_a_failure_with_its_copy(spec):
    """A task reports a failing notebook as data (so it is not retried); the client writes the failed
    copy where a local sweep would and stores nothing."""
    from lenet_core import cluster

    job = sweep.plan("smoke", only=["pooling"])[0][0]
    error = cluster.collect(job, {"error": "ValueError: boom", "failed_notebook": b'{"cells": []}'})
    assert isinstance(error, RuntimeError) and str(error) == "ValueError: boom"
    assert job.output.with_suffix(".failed.ipynb").read_bytes() == b'{"cells": []}'
    assert not job.output.exists() and not results_dir().exists()


def test_a_worker_with_other_data_is_refused_before_it_trains(spec):
    """Runs are keyed on the client's copy of the data: a worker holding another copy (say the original
    CIFAR-10 where the client has the JPEG one) trains nothing and the job fails naming both copies."""
    from lenet_core import cluster, data

    job = sweep.plan("smoke", only=["pooling"])[0][0]
    other = {**data.identity(data.provenance("mnist")), "lossy": True, "content_sha256": "0" * 64}
    outcome = cluster.execute_task(job.notebook, job.dataset, job.params, job.profile, b"", spec.read_text(), {},
                                   None, other, "official")
    assert outcome["failed_notebook"] is None
    assert outcome["error"].startswith("the worker's mnist (lossless copy, content ")
    assert "is not the data this checkout keys its runs on (lossy copy, content 000000000000)" in outcome["error"]
    assert isinstance(cluster.collect(job, outcome), RuntimeError)
    assert not job.output.exists() and not results_dir().exists()


def test_a_task_that_comes_back_without_its_runs_is_a_failure(spec):
    from lenet_core import cluster

    job = sweep.plan("smoke", only=["pooling"])[0][0]
    keys = [run_key(c) for c in job.configs]
    record = json.dumps({"key": keys[0]})
    error = cluster.collect(job, {"records": {keys[0]: record, "mnist-0123456789abcdef": record},
                                  "weights": {}, "notebook": b"{}"})
    assert str(error) == f"the task came back without run {keys[1]}"
    assert sorted(p.name for p in results_dir().iterdir()) == [f"{keys[0]}.json"]  # what did come back is kept
    assert not job.output.exists()
