"""The run store: `results/<key>.json` per finished run, weights in `checkpoints/<key>.pt`.

A run's key hashes what determines its numbers: the configuration, the
identity of the data it saw, and the engine version. `train_or_load` makes
every notebook and sweep resumable: a stored key is loaded, never retrained,
and a run interrupted part way carries on from its last epoch
(`checkpoints/<key>.partial.pt`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch

from . import data
from .config import RunConfig
from .paths import atomic_write, checkpoints_dir, results_dir
from .train import TrainedRun, engine_version, train


def run_key(config: RunConfig) -> str:
    """`<dataset>-<16 hex>`: same configuration, same data, same engine -> same key."""
    identity = dict(config=json.loads(config.canonical_json()),
                    data=data.identity(data.provenance(config.dataset, config.data_copy)),
                    engine=engine_version(config))
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{config.dataset}-{digest[:16]}"


def result_path(key: str) -> Path:
    return results_dir() / f"{key}.json"


def checkpoint_path(key: str) -> Path:
    return checkpoints_dir() / f"{key}.pt"


def partial_path(key: str) -> Path:
    """Where a run being trained keeps its state after each epoch, to carry on if interrupted."""
    return checkpoints_dir() / f"{key}.partial.pt"


def load(key: str) -> dict | None:
    """The stored record for `key`, or None when there is none (or it is unreadable)."""
    path = result_path(key)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # not a complete record: treated as absent and retrained over
    # Records stored before a configuration named its data copy: their data says which it was.
    record["config"].setdefault("data_copy", "jpeg" if record["data"]["lossy"] else data.OFFICIAL)
    return record


def save(run: TrainedRun, key: str | None = None) -> Path:
    """Store a trained run: weights first, then the record (its presence means 'done')."""
    config = RunConfig.from_dict(run.record["config"])
    key = key or run_key(config)
    run.record["key"] = key
    atomic_write(checkpoint_path(key),
                 lambda tmp: torch.save({"config": config.to_dict(), **run.weights}, tmp))
    return atomic_write(result_path(key),
                        lambda tmp: tmp.write_text(json.dumps(run.record, indent=1, allow_nan=False)))


def describe(record: dict) -> str:
    p = record["provenance"]
    m = record["metrics"]
    outcome = ("diverged" if record["status"] == "diverged"
               else f"test acc {m['test_acc_best']:.4f} at best-val epoch {m['best_epoch']}")
    return (f"{record['key']}: {outcome}; trained {p['date']} on {p['host']} ({p['device']}, "
            f"{p['device_name']}), {p['wall_seconds']:.1f} s, torch {p['torch']}, {p['threads']} threads")


def train_or_load(config: RunConfig, *, device: str | None = None, progress: bool | None = None,
                  force: bool = False, log: Callable[[str], None] | None = print) -> dict:
    """The stored record of `config` if there is one (and say so), else train it and store it.
    An interrupted run carries on from its last epoch (`partial_path`: its state after each epoch,
    deleted once the run is stored)."""
    key = run_key(config)
    record = None if force else load(key)
    if record is not None:
        if log:
            log(f"loaded stored run {describe(record)}")
        return record
    partial = partial_path(key)
    if force:
        partial.unlink(missing_ok=True)
    elif partial.exists() and log:
        log(f"resuming run {key} from {partial.name}")
    run = train(config, device=device, progress=progress, resume=partial)
    save(run, key)
    partial.unlink(missing_ok=True)
    if log:
        log(f"trained and stored run {describe(run.record)}")
    return run.record
