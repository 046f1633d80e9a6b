"""What one notebook execution costs when every run it needs is already stored.

    .venv/bin/python bench/notebook_overhead.py                     # activation/mnist/relu, quick profile
    .venv/bin/python bench/notebook_overhead.py --notebook augmentation --param augment=shift_flip \\
        --dataset cifar10 --repeats 3

Once the runs are in the store (`results/`) a notebook trains nothing, so
what is left is overhead: starting the kernel, importing torch, pandas,
matplotlib and lenet_core, loading the stored records, the diagnostics at
initialization and the figures. That overhead is what `make book` pays per
notebook on a fresh clone. This script executes the real notebook `--repeats`
times each way, interleaved (after one untimed warm-up execution that fills the
OS file cache):

* on a new kernel each time (papermill's default; a Dask worker does this),
* on one warm kernel, reset between notebooks (`lenet_core.kernel.WarmKernel`, what
  the local sweep does),

and splits each way's wall time into:

* kernel start and shutdown (or reset), papermill: wall time minus the cells' time,
* each code cell, from the durations papermill records in the executed notebook.

It refuses to run when the notebook would train (a run is missing from the
store): that would time training, not overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import papermill

from lenet_core.paths import project_root
from lenet_core.executions import notebook_experiments
from lenet_core.kernel import WarmKernel


def parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def execute(notebook: Path, parameters: dict, out: Path, kernel: WarmKernel | None = None
            ) -> tuple[float, list[tuple[str, float]]]:
    t0 = time.perf_counter()
    warm = {"km": kernel.ready()} if kernel else {}
    try:
        papermill.execute_notebook(str(notebook), str(out), parameters=parameters, progress_bar=False,
                                   cwd=str(notebook.parent), kernel_name="python3", **warm)
    finally:
        if kernel:
            kernel.release()
    wall = time.perf_counter() - t0
    cells = []
    for cell in json.loads(out.read_text())["cells"]:
        if cell["cell_type"] == "code" and "parameters" not in cell["metadata"].get("tags", []):
            first = next((line for line in "".join(cell["source"]).splitlines()
                          if line.strip() and not line.startswith("#")), "")
            if "injected-parameters" in cell["metadata"].get("tags", []):
                first = "(the parameters papermill injects)"
            cells.append((first[:60], cell["metadata"]["papermill"]["duration"] or 0.0))
    return wall, cells


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notebook", default="activation")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--profile", default="quick")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a notebook parameter (default for activation: act=relu)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    params = dict(kv.split("=", 1) for kv in args.param) if args.param else (
        {"act": "relu"} if args.notebook == "activation" else {})
    params = {k: parse_value(v) for k, v in params.items()}
    notebook = project_root() / "notebooks" / f"{args.notebook}.ipynb"
    if not notebook.exists():
        sys.exit(f"no notebook {notebook}")
    try:
        pending = [c for e in notebook_experiments(args.notebook, args.dataset, args.profile, **params)
                   for c in e.configs if not _stored(c)]
    except ValueError as exc:
        sys.exit(str(exc))
    if pending:
        sys.exit(f"{len(pending)} run(s) of this notebook are not stored yet (profile {args.profile}): it would "
                 f"train. Run the sweep first, or pick a stored setting.")
    os.environ.setdefault("LENET_PROGRESS", "0")
    parameters = dict(dataset=args.dataset, profile=args.profile, **params)

    kernel = WarmKernel(notebook.parent)
    with tempfile.TemporaryDirectory(prefix="lenet-overhead-") as tmp:
        out = Path(tmp) / "out.ipynb"
        try:
            execute(notebook, parameters, out)  # warm-up: file cache, bytecode
            execute(notebook, parameters, out, kernel)  # the warm kernel's first (cold) notebook
            runs = {"new kernel": [], "warm kernel": []}
            for _ in range(args.repeats):
                runs["new kernel"].append(execute(notebook, parameters, out))
                runs["warm kernel"].append(execute(notebook, parameters, out, kernel))
        finally:
            kernel.close()

    print(f"{args.notebook}.ipynb, {args.dataset}, {params or 'defaults'}, profile {args.profile}: "
          f"median of {args.repeats} executions each way, interleaved, every run loaded from the store; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}\n")
    names = [n for n, _ in runs["new kernel"][0][1]]
    columns = {way: _medians(r) for way, r in runs.items()}
    print("| part | " + " | ".join(f"{way} (s)" for way in columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    print("| kernel start and shutdown (or reset), papermill | "
          + " | ".join(f"{c[0]:.2f}" for c in columns.values()) + " |")
    for i, name in enumerate(names):
        print(f"| cell: `{name}` | " + " | ".join(f"{c[1][i]:.2f}" for c in columns.values()) + " |")
    print("| **whole execution** | " + " | ".join(f"**{c[2]:.2f}**" for c in columns.values()) + " |")
    new, warm = columns["new kernel"][2], columns["warm kernel"][2]
    print(f"\nwarm kernel / new kernel: {warm / new:.2f} of the time per notebook")
    return 0


def _medians(runs) -> tuple[float, list[float], float]:
    """(kernel and papermill, per cell, whole execution): medians over the executions."""
    walls = [w for w, _ in runs]
    cells = [[d for _, d in c] for _, c in runs]
    kernel = statistics.median(w - sum(c) for w, c in zip(walls, cells))
    return kernel, [statistics.median(col) for col in zip(*cells)], statistics.median(walls)


def _stored(config) -> bool:
    from lenet_core.store import load, run_key

    return load(run_key(config)) is not None


if __name__ == "__main__":
    sys.exit(main())
