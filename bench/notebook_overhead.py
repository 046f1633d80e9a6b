"""What one notebook execution costs when every run it needs is already stored.

    .venv/bin/python bench/notebook_overhead.py                     # activation/mnist/relu, quick profile
    .venv/bin/python bench/notebook_overhead.py --notebook augmentation --param augment=shift_flip \\
        --dataset cifar10 --repeats 3

The sweep executes each notebook with papermill in a fresh Jupyter kernel.
Once the runs are in the store (`results/`) the notebook trains nothing, so
what is left is overhead: starting the kernel, importing torch, pandas,
matplotlib and lenet_core, loading the stored records, the diagnostics at
initialization and the figures. That overhead is what `make book` pays per
notebook on a fresh clone. This script executes the real notebook `--repeats`
times (after one untimed warm-up execution that fills the OS file cache) and
splits its wall time into:

* kernel start and shutdown, papermill: wall time minus the cells' time,
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
from lenet_core.experiments import notebook_experiments


def parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def execute(notebook: Path, parameters: dict, out: Path) -> tuple[float, list[tuple[str, float]]]:
    t0 = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(out), parameters=parameters, progress_bar=False,
                               cwd=str(notebook.parent), kernel_name="python3")
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

    with tempfile.TemporaryDirectory(prefix="lenet-overhead-") as tmp:
        out = Path(tmp) / "out.ipynb"
        execute(notebook, parameters, out)  # warm-up: file cache, bytecode
        runs = [execute(notebook, parameters, out) for _ in range(args.repeats)]

    walls = [w for w, _ in runs]
    cells = [[d for _, d in c] for _, c in runs]
    names = [n for n, _ in runs[0][1]]
    per_cell = [statistics.median(col) for col in zip(*cells)]
    kernel = statistics.median(w - sum(c) for w, c in zip(walls, cells))
    print(f"{args.notebook}.ipynb, {args.dataset}, {params or 'defaults'}, profile {args.profile}: "
          f"median of {args.repeats} executions, every run loaded from the store; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}\n")
    print("| part | seconds |\n| --- | ---: |")
    print(f"| kernel start and shutdown, papermill | {kernel:.2f} |")
    for name, d in zip(names, per_cell):
        print(f"| cell: `{name}` | {d:.2f} |")
    print(f"| **whole execution** | **{statistics.median(walls):.2f}** |")
    return 0


def _stored(config) -> bool:
    from lenet_core.store import load, run_key

    return load(run_key(config)) is not None


if __name__ == "__main__":
    sys.exit(main())
