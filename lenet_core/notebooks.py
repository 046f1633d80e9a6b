"""Keeping the committed notebooks clean: no outputs, except the reference outputs of the
cells nbval checks (marked `# NBVAL_CHECK_OUTPUT`: deterministic text such as the network
description and parameter count).

`python -m lenet_core notebooks check` lists problems; `... notebooks refresh` re-executes
the notebooks in the smoke profile (into a throwaway run store) and keeps only the checked
cells' outputs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nbformat

from .paths import atomic_write, project_root

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    folder = project_root() / "notebooks"
    paths = sorted(folder.glob("*.ipynb")) if not names else [folder / f"{n}.ipynb" for n in names]
    missing = [p.stem for p in paths if not p.exists()]
    if missing:
        valid = ", ".join(p.stem for p in sorted(folder.glob("*.ipynb")))
        raise ValueError(f"unknown notebook(s) {', '.join(missing)}; valid: {valid}")
    return paths


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(CHECK_MARK)


def output_problems(path: Path) -> list[str]:
    """Why `path` may not be committed as it is (empty when it is clean)."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is not None and not is_checked(cell):
            problems.append(f"{path.name} cell {i}: has an execution count")
        if not cell.outputs:
            continue
        if not is_checked(cell):
            problems.append(f"{path.name} cell {i}: has outputs but is not marked {CHECK_MARK}")
        elif any(o.output_type != "stream" or o.get("name") != "stdout" for o in cell.outputs):
            problems.append(f"{path.name} cell {i}: a checked cell may keep printed text only")
    return problems


def clean(nb, reference=None):
    """Strip every output and count; checked cells take their outputs from `reference`
    (an executed copy with the same cells) when given, and keep a count, which nbval
    needs to treat a cell as having a reference output."""
    executed = {c.source: c.outputs for c in reference.cells if c.cell_type == "code"} if reference else {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = executed.get(cell.source, cell.outputs) if is_checked(cell) else []
        cell.execution_count = 1 if cell.outputs else None
        cell.metadata.pop("execution", None)
    return nb


def refresh(path: Path) -> None:
    """Execute `path` in the smoke profile and keep only the checked cells' outputs."""
    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        env = {"LENET_PROFILE": "smoke", "LENET_RESULTS_DIR": f"{tmp}/results",
               "LENET_CHECKPOINTS_DIR": f"{tmp}/checkpoints", "LENET_PROGRESS": "0"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            papermill.execute_notebook(str(path), f"{tmp}/out.ipynb", progress_bar=False,
                                       cwd=str(path.parent), kernel_name="python3")
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        executed = nbformat.read(f"{tmp}/out.ipynb", as_version=4)
    nb = clean(nbformat.read(path, as_version=4), executed)
    atomic_write(path, lambda out: nbformat.write(nb, str(out)))
