"""Running one job's notebook with papermill, on a new kernel or on a warm one reused between
notebooks; the executed notebook appears only when it ran to the end."""

from __future__ import annotations

import os
from pathlib import Path

from . import jobs
from .jobs import Job
from .paths import atomic_write


def execute(job: Job, source: Path | None = None, kernel: WarmKernel | None = None) -> None:
    """Run the job's notebook (from `source`, default notebooks/) with papermill, on `kernel`
    when given, else on a new kernel; the output appears only when it ran to the end."""
    import papermill

    source = source or jobs.notebooks_dir()
    job.output.parent.mkdir(parents=True, exist_ok=True)
    failed = job.output.with_suffix(".failed.ipynb")
    failed.unlink(missing_ok=True)
    tmp = job.output.with_name(f".{job.output.stem}.{os.getpid()}.running.ipynb")
    warm = {"km": kernel.ready()} if kernel else {}
    try:
        papermill.execute_notebook(str(source / f"{job.notebook}.ipynb"), str(tmp),
                                   parameters=job.parameters, progress_bar=False, cwd=str(source),
                                   kernel_name="python3", **warm)
    except BaseException:
        if kernel:
            kernel.close()  # its state is unknown: the next notebook gets a new kernel
        if tmp.exists():
            os.replace(tmp, failed)  # kept for the user to open: it shows the failing cell
        raise
    finally:
        if kernel:
            kernel.release()
    atomic_write(job.output, lambda out: os.replace(tmp, out))


class WarmKernel:
    """One Python kernel that executes notebook after notebook (one per sweep thread).

    A notebook that only loads stored runs spends most of its time starting a kernel and
    importing torch; a warm kernel pays for that once. Before each notebook after the first it
    is reset to what a new kernel offers: an empty namespace, a new history with execution
    count 1, no open figures (modules stay imported, and the datasets stay cached). A kernel
    that failed a notebook or died is replaced by a new one.
    """

    RESET = 'import matplotlib.pyplot as _plt\n_plt.close("all")\nget_ipython().reset(new_session=True)\n'

    def __init__(self, cwd: Path):
        self.cwd = str(cwd)
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
            run_sync(self.km.start_kernel)(cwd=self.cwd)
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
