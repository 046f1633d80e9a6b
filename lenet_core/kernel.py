"""Running one job's notebook with papermill, on a new kernel or on a warm one reused between
notebooks; the executed notebook appears only when it ran to the end.

What the notebook's training needs to know from its caller (threads, progress bars, which run
store) reaches its kernel as that kernel process's environment, given here as an argument
(`kernel_env`); nothing changes the caller's own `os.environ`.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import jobs
from .jobs import Job
from .paths import atomic_write


def kernel_env(threads: int | None = None, progress: bool | None = None, results: Path | None = None,
               checkpoints: Path | None = None, spec: Path | None = None) -> dict[str, str]:
    """The environment variables that tell a notebook's kernel how to train: torch threads per
    run, whether to draw progress bars, and the run store and sweep specification to use
    (None leaves a setting to the kernel's inherited environment)."""
    values = {"LENET_THREADS": threads, "LENET_PROGRESS": None if progress is None else int(progress),
              "LENET_RESULTS_DIR": results, "LENET_CHECKPOINTS_DIR": checkpoints, "LENET_SWEEP_SPEC": spec}
    return {k: str(v) for k, v in values.items() if v is not None}


def execute(job: Job, source: Path | None = None, kernel: WarmKernel | None = None,
            output: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run the job's notebook (from `source`, default notebooks/) with papermill into `output`
    (default `job.output`), on `kernel` when given, else on a new kernel started with `env`
    added to this process's environment; the output appears only when it ran to the end."""
    import papermill

    source = source or jobs.notebooks_dir()
    output = output or job.output
    own = kernel is None
    kernel = kernel or WarmKernel(source, env)
    output.parent.mkdir(parents=True, exist_ok=True)
    failed = output.with_suffix(".failed.ipynb")
    failed.unlink(missing_ok=True)
    tmp = output.with_name(f".{output.stem}.{os.getpid()}.running.ipynb")
    try:
        papermill.execute_notebook(str(source / f"{job.notebook}.ipynb"), str(tmp),
                                   parameters=job.parameters, progress_bar=False, cwd=str(source),
                                   kernel_name="python3", km=kernel.ready())
    except BaseException:
        kernel.close()  # its state is unknown: the next notebook gets a new kernel
        if tmp.exists():
            os.replace(tmp, failed)  # kept for the user to open: it shows the failing cell
        raise
    finally:
        kernel.close() if own else kernel.release()
    atomic_write(output, lambda out: os.replace(tmp, out))


class WarmKernel:
    """One Python kernel that executes notebook after notebook (one per sweep thread).

    A notebook that only loads stored runs spends most of its time starting a kernel and
    importing torch; a warm kernel pays for that once. Before each notebook after the first it
    is reset to what a new kernel offers: an empty namespace, a new history with execution
    count 1, no open figures (modules stay imported, and the datasets stay cached). A kernel
    that failed a notebook or died is replaced by a new one. `env` is added to this process's
    environment for the kernel process (see `kernel_env`).
    """

    RESET = 'import matplotlib.pyplot as _plt\n_plt.close("all")\nget_ipython().reset(new_session=True)\n'

    def __init__(self, cwd: Path, env: dict[str, str] | None = None):
        self.cwd = str(cwd)
        self.env = dict(env or {})
        self.km = None
        self.used = False
        self.clients: list = []

    def ready(self):
        """The kernel manager to hand to papermill: started, or reset when it ran a notebook."""
        from jupyter_core.utils import run_sync

        if self.km is not None and not run_sync(self.km.is_alive)():
            self.close()
        if self.km is None:
            from jupyter_client import AsyncKernelManager

            self.km = AsyncKernelManager(kernel_name="python3")
            self.km.client = self._client  # papermill's client is closed in release()
            run_sync(self.km.start_kernel)(cwd=self.cwd, env={**os.environ, **self.env})
        elif self.used:
            kc = self.km.client()
            kc.start_channels()
            run_sync(kc.wait_for_ready)(timeout=60)
            reply = run_sync(kc.execute_interactive)(self.RESET, silent=True, timeout=60)
            self.release()
            if reply["content"]["status"] != "ok":
                self.close()
                return self.ready()
        self.used = True
        return self.km

    def _client(self, **kwargs):
        from jupyter_client import AsyncKernelManager

        kc = AsyncKernelManager.client(self.km, **kwargs)
        self.clients.append(kc)
        return kc

    def release(self) -> None:
        """Close the connections opened to the kernel (the kernel keeps running)."""
        while self.clients:
            self.clients.pop().stop_channels()

    def close(self) -> None:
        """Shut the kernel down."""
        from jupyter_core.utils import run_sync

        self.release()
        if self.km is not None:
            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            finally:
                self.km, self.used = None, False
