"""The backlog: runs a profile plans but does not publish yet, counted, costed and trained.

A part of the specification still being trained (an entry's `pending` sets and learning-rate
searches, `more_seeds` marked pending, a copy in `data_copies_in_progress`, the copy comparison)
is left out of `sweep` and of the book until its runs are in. This module lists those runs by
what plans them, estimates their CPU time from the speed of the runs already stored, and trains
them outside any notebook, several workers at once:

    python -m lenet_core store backlog --profile full                  # count and cost
    python -m lenet_core store backlog --profile full --train          # train (again and again)
    python -m lenet_core store backlog --train --only weight_averaging # one chapter's part first

A learning-rate search is known one stage at a time (its long stage once its short one is
stored), so training goes round by round until nothing is left. Each worker claims a run before
training it (`checkpoints/<key>.claim`, with its process id), so workers started side by side
never train the same run; a claim whose process has ended is taken over, and the interrupted run
carries on from its last epoch (`store.train_or_load`).
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

from . import data
from .config import RunConfig
from .paths import checkpoints_dir
from .store import load, run_key, train_or_load


@dataclass
class Part:
    """What plans some runs that are not published yet, and those of them not stored."""

    name: str  # a notebook, "<notebook> (<copy> copy)", "more seeds" or "copy comparison"
    planned: int  # runs, stored or not
    todo: list[RunConfig]

    @property
    def epochs(self) -> int:
        return sum(c.epochs for c in self.todo)


def parts(profile: str, only: list[str] | None = None) -> list[Part]:
    """The unpublished runs of `profile` by what plans them, each run in the first part that
    names it; a part with nothing planned is left out. `only`: those parts (by name, or by the
    notebook they belong to), refused with the valid names where one is unknown."""
    from .executions import pending_configs
    from .experiments import copies_in_progress, copy_comparison, load_spec, pending_seed_configs
    from .sweep import plan

    groups: dict[str, list[RunConfig]] = {}
    for notebook in load_spec()["notebooks"]:
        groups[notebook] = pending_configs(profile, notebook)
    groups["more seeds"] = pending_seed_configs(profile)
    for copy in copies_in_progress():
        for job in plan(profile, data_copy=copy)[0]:
            groups.setdefault(f"{job.notebook} ({copy} copy)", []).extend(job.configs)
    groups["copy comparison"] = [c for pair in copy_comparison(profile)
                                 for c in pair.official.configs + pair.other.configs]
    seen, out = set(), []
    for name, configs in groups.items():
        unique = {}
        for c in configs:
            key = run_key(c)
            if key not in seen:
                seen.add(key)
                unique[key] = c
        if unique:
            out.append(Part(name, len(unique), [c for k, c in unique.items() if load(k) is None]))
    if only is None:
        return out

    def names(part: Part) -> set[str]:  # its own, and the notebook's of "<notebook> (<copy> copy)"
        return {part.name, part.name.split(" (")[0]}

    valid = set().union(*map(names, out))
    unknown = [n for n in only if n not in valid]
    if unknown:
        raise ValueError(f"unknown backlog part {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(valid))}")
    return [p for p in out if names(p) & set(only)]


def _speed_key(config: RunConfig, coarse: int = 0) -> tuple:
    """What sets a run's images a second, finest first: its dataset, batch size, test views and
    whether it takes two passes a step (SAM)."""
    key = (config.dataset, config.batch_size, config.test_augment, config.optimizer.startswith("sam"))
    return key[:len(key) - coarse]


RECENT = 20  # the stored runs a speed is the median of: the latest, trained by the engine as it is now


def speeds(records) -> dict[tuple, float]:
    """Median training images a second (validation included) of the latest RECENT stored runs of
    each coarseness of `_speed_key`."""
    samples: dict[tuple, list[tuple[str, float]]] = {}
    for record in records:
        speed = record["provenance"].get("train_images_per_second")
        if not speed or record["status"] != "ok":
            continue
        config = RunConfig.from_dict(record["config"])
        for coarse in range(4):
            samples.setdefault(_speed_key(config, coarse), []).append((record["provenance"]["date"], speed))
    return {k: statistics.median(speed for _, speed in sorted(v)[-RECENT:]) for k, v in samples.items()}


def seconds(config: RunConfig, speed: dict[tuple, float]) -> float | None:
    """Estimated training seconds of `config` at the speed of the most similar stored runs; None
    when no run of its dataset is stored."""
    for coarse in range(4):
        if (found := speed.get(_speed_key(config, coarse))) is not None:
            return config.epochs * _images(config) / found
    return None


def _images(config: RunConfig) -> int:
    """Training images an epoch of `config` sees: its train_size, else the training part."""
    if config.train_size:
        return config.train_size
    n = data.provenance(config.dataset, config.data_copy)["n_train"]
    return n - round(n * data.VALIDATION_FRACTION)


def stored_records():
    """Every readable record of the run store (`store.load`, as every reader of the store)."""
    from .store import results_dir

    for path in results_dir().glob("*.json"):
        if (record := load(path.stem)) is not None:
            yield record


def report(profile: str, only: list[str] | None = None) -> str:
    """The backlog of `profile` (or of its parts `only`) as lines: per part, runs to train of those
    planned, epochs and estimated CPU-hours (one thread, at the stored runs' speed), then the total."""
    speed, found = speeds(stored_records()), parts(profile, only)
    lines, total, unknown = [], 0.0, 0
    for part in found:
        estimates = [seconds(c, speed) for c in part.todo]
        hours = sum(e for e in estimates if e is not None) / 3600
        unknown += sum(e is None for e in estimates)
        total += hours
        lines.append(f"{part.name}: {len(part.todo)} of {part.planned} runs to train, {part.epochs} epochs, "
                     f"about {hours:.1f} CPU-hours")
    lines.append(f"total: {sum(len(p.todo) for p in found)} runs, about {total:.1f} CPU-hours at the "
                 f"stored runs' speed (one thread each); a learning-rate search counts only the stages known so far"
                 + (f"; {unknown} runs of a dataset with no stored run are not costed" if unknown else ""))
    return "\n".join(lines)


def claim(key: str) -> bool:
    """Claim `key` for this process: True when no live process holds it (a claim of a process
    that has ended is taken over)."""
    path = checkpoints_dir() / f"{key}.claim"
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid == os.getpid() or (pid and _alive(pid)):
                return pid == os.getpid()
            path.unlink(missing_ok=True)  # its process has ended: take it over
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def release(key: str) -> None:
    (checkpoints_dir() / f"{key}.claim").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def train(profile: str, log=print, device: str | None = None, only: list[str] | None = None) -> int:
    """Train the backlog of `profile` (or of its parts `only`), the costliest runs first, round by
    round until nothing is left that another worker has not claimed; returns how many runs this
    worker trained."""
    trained = 0
    while True:
        speed = speeds(stored_records())
        todo = [c for part in parts(profile, only) for c in part.todo]
        todo.sort(key=lambda c: -(seconds(c, speed) or 0))
        done_this_round = 0
        for config in todo:
            key = run_key(config)
            if load(key) is not None or not claim(key):
                continue
            try:
                if load(key) is None:
                    train_or_load(config, device=device, progress=False, log=log)
                    trained += 1
                    done_this_round += 1
            finally:
                release(key)
        if not done_this_round:
            return trained
