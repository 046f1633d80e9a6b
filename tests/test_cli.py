"""The command line end to end: each command as a user types it, run in this process through
`cli.main` (what `python -m lenet_core` calls), and the entry points themselves as real
subprocesses."""

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import pytest

from lenet_core import cli as entry

pytestmark = pytest.mark.usefixtures("mnist_ready")


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def cli(*args) -> Done:
    """`python -m lenet_core ARGS`: its exit status and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = entry.main(list(args))
        except SystemExit as exc:  # argparse's --help and usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return Done(code, out.getvalue(), err.getvalue())


def test_the_entry_point_runs_as_a_user_types_it():
    done = subprocess.run([sys.executable, "-m", "lenet_core", "data", "prepare", "svhn"], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=300)
    assert done.returncode == 2 and "unknown dataset 'svhn'" in done.stderr and "Traceback" not in done.stderr


def test_train_then_load_then_test(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"act": "tanh", "epochs": 1, "train_size": 512}))
    first = cli("train", "-c", str(config), "--set", "seed=7", "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "trained and stored run mnist-" in first.stdout
    result = first.stdout.strip().splitlines()[-1]
    record = json.loads(open(result).read())
    assert record["config"]["act"] == "tanh" and record["config"]["seed"] == 7

    again = cli("train", "-c", str(config), "--set", "seed=7")
    assert again.returncode == 0 and "loaded stored run" in again.stdout

    tested = cli("test", "--key", record["key"])
    assert tested.returncode == 0, tested.stderr
    stored = record["metrics"]["test_acc_best"]
    assert f"[best]: test accuracy {stored:.4f}" in tested.stdout  # the checkpoint re-evaluates to the record

    by_config = cli("test", "-c", str(config), "--set", "seed=7")
    assert by_config.returncode == 0 and record["key"] in by_config.stdout


def test_classic_preset_from_a_config_file(tmp_path):
    config = tmp_path / "classic.json"
    config.write_text(json.dumps({"preset": "classic", "epochs": 1, "train_size": 256}))
    done = cli("train", "-c", str(config), "--no-progress")
    assert done.returncode == 0, done.stderr
    record = json.loads(open(done.stdout.strip().splitlines()[-1]).read())
    assert record["config"]["c3_table"] is True and record["config"]["optimizer"] == "sdlm"
    assert record["metrics"]["parameters"] == 60_000  # up to F6, as in the paper: the RBF codes are fixed


@pytest.mark.parametrize("args, message", [
    (["train", "--set", "act=swish"], "unknown act 'swish'; valid: sigmoid, tanh, scaled_tanh, relu"),
    (["train", "--set", "lr=-1"], "lr=-1.0 is out of range: must be > 0"),
    (["train", "--set", "epochs=0"], "epochs=0 is out of range"),
    (["train", "--set", "dropout=1.5"], "dropout=1.5 is out of range: must be in [0, 1)"),
    (["train", "--set", "colour=red"], "unknown configuration key(s) colour; valid: dataset, act"),
    (["train", "--set", "lr"], "--set 'lr' is not key=value"),
    (["train", "-c", "missing.json"], "config file missing.json does not exist"),
    (["train", "--set", "preset=vintage"], "unknown preset 'vintage'; valid: modern, classic"),
    (["train", "--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu, cuda"),
    (["test", "--key", "mnist-0000"], "no stored run mnist-0000"),
    (["test"], "give --key KEY or a configuration"),
    (["data", "prepare", "svhn"], "unknown dataset 'svhn'; valid: mnist, fashion_mnist, cifar10"),
    (["sweep", "--profile", "smoke", "--scheduler", "host:8786"],
     "scheduler address 'host:8786' is not valid; expected tcp://HOST:PORT"),
    (["sweep", "--profile", "smoke", "--scheduler", "tcp://127.0.0.1:9", "--jobs", "2"],
     "--jobs sets how many notebooks run at once on this machine"),
    (["sweep", "--profile", "smoke", "--data-mirror", "/data"], "--data-mirror is the mirror folder on the cluster"),
])
def test_user_errors_exit_2_with_one_line(args, message):
    done = cli(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_commands_and_names():
    done = cli("--help")
    assert done.returncode == 0
    assert all(word in done.stdout for word in ("train", "test", "data", "scaled_tanh", "lecun1998"))
    for sub in (["train", "--help"], ["test", "--help"], ["data", "prepare", "--help"]):
        assert cli(*sub).returncode == 0


def test_book_render_writes_the_pages_and_the_old_entry_point_still_works(tmp_path, capsys):
    out = tmp_path / "book"
    assert entry.main(["book", "render", "--profile", "smoke", "--out", str(out)]) == 0
    assert "rendered" in capsys.readouterr().out
    pages = {p.stem for p in (out / "_generated").glob("*.md")}
    assert {"intro", "method", "results", "reproduce", "published", "pooling"} <= pages
    assert "python -m lenet_core book render --profile smoke" in (out / "_generated" / "method.md").read_text()
    old = subprocess.run([sys.executable, "-m", "lenet_core.book", "render", "--profile", "nope"],
                         capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert old.returncode == 2 and "unknown profile 'nope'; valid: smoke, quick, full" in old.stderr
