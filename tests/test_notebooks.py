"""The notebooks as users run them: committed clean, parametrized, and failing early on bad input."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lenet_core import experiments, notebooks

ROOT = Path(__file__).resolve().parents[1]
NAMES = list(experiments.load_spec()["notebooks"])


def test_one_notebook_per_entry_of_the_sweep_specification():
    assert sorted(p.stem for p in notebooks.notebook_paths()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    assert notebooks.output_problems(ROOT / "notebooks" / f"{name}.ipynb") == []


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_names_what_the_sweep_varies(name):
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    source = tagged[0].source
    swept = {k for params in experiments.param_sets(name) for k in params}
    for variable in {"dataset", "profile", "seeds"} | swept:
        assert f"\n{variable} = " in f"\n{source}", f"{name}: no {variable} in the parameters cell"
    assert sum(notebooks.is_checked(c) for c in nb.cells) >= 1  # something nbval compares


def test_output_problems_are_found(tmp_path):
    nb = nbformat.read(ROOT / "notebooks" / "pooling.ipynb", as_version=4)
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text="hello")]
    nb.cells[-1].execution_count = 3
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, str(path))
    problems = notebooks.output_problems(path)
    assert any("has outputs but is not marked" in p for p in problems)
    assert any("execution count" in p for p in problems)
    nbformat.write(notebooks.clean(nb), str(path))
    assert notebooks.output_problems(path) == []


@pytest.mark.usefixtures("mnist_ready")
@pytest.mark.parametrize("notebook, params, message", [
    ("activation", ["act", "foo"], "unknown act 'foo'; valid: sigmoid, tanh, scaled_tanh, relu"),
    ("published", ["setup", "d2l_lenet", "-p", "dataset", "mnist"],
     "setup 'd2l_lenet' is published on fashion_mnist only; got dataset 'mnist'; valid: fashion_mnist"),
])
def test_papermill_with_a_bad_parameter_fails_with_the_engines_message(tmp_path, notebook, params, message):
    env = {**os.environ, "LENET_PROFILE": "smoke"}
    papermill = Path(sys.executable).with_name("papermill")
    done = subprocess.run([str(papermill), f"notebooks/{notebook}.ipynb", str(tmp_path / "out.ipynb"),
                           "-p", *params, "--no-progress-bar"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
    assert not list(Path(os.environ["LENET_RESULTS_DIR"]).glob("*.json"))  # nothing was trained


@pytest.mark.usefixtures("mnist_ready")
def test_a_real_smoke_sweep_through_papermill(tmp_path):
    env = {**os.environ, "LENET_EXECUTED_DIR": str(tmp_path / "executed")}
    cmd = [sys.executable, "-m", "lenet_core", "sweep", "--profile", "smoke", "--only", "pooling", "--jobs", "2"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 executed, 0 failed" in done.stdout
    outputs = sorted((tmp_path / "executed" / "pooling" / "mnist").glob("*.ipynb"))
    assert [p.name for p in outputs] == ["pool=avg.ipynb", "pool=max.ipynb", "pool=subsample.ipynb"]
    executed = nbformat.read(outputs[0], as_version=4)
    assert any(o.get("output_type") == "display_data" for c in executed.cells for o in c.get("outputs", []))
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert "3 already done, 0 runs to train" in again.stdout


def code_cells(name: str) -> list[list[str]]:
    """The code lines of each code cell (blank lines and comments left out), except the parameters
    cell: papermill needs each notebook's parameters written out in the notebook itself."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    return [[line.strip() for line in c.source.splitlines() if line.strip() and not line.strip().startswith("#")]
            for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]


def repeated_blocks(cells: dict[str, list[list[str]]], size: int = 6) -> list[str]:
    """Every run of `size` lines of one cell that stands in another notebook's cell (or twice in one)."""
    seen, repeated = {}, []
    for name, code_cells_ in cells.items():
        for c, code in enumerate(code_cells_):
            for i in range(len(code) - size + 1):
                block = tuple(code[i:i + size])
                if block in seen and seen[block] != (name, c, i):
                    repeated.append(f"{seen[block][0]} and {name}: {' / '.join(block)}")
                seen.setdefault(block, (name, c, i))
    return repeated


def test_no_block_of_six_code_lines_is_written_in_two_notebooks():
    """What notebooks share lives in lenet_core (the opening is `lc.start`, tables are in `report`)."""
    assert repeated_blocks({name: code_cells(name) for name in NAMES}) == []
    same = [f"x = {i}" for i in range(6)]
    assert len(repeated_blocks({"a": [["a = 1", *same]], "b": [[*same, "b = 2"]]})) == 1  # the check can fail
    assert repeated_blocks({"a": [same[:3]], "b": [same[3:]]}) == []  # a block lies within one cell
