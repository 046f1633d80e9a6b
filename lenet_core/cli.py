"""Command line: `python -m lenet_core {train,test,data} ...`.

User errors (bad names, bad numbers, missing data or runs) end with exit
status 2 and one line naming what was wrong and what is valid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import data, store
from .config import NAME_CHOICES, RunConfig
from .data import DataError


class UserError(Exception):
    pass


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word such as relu


def load_config(path: str | None, sets: list[str]) -> RunConfig:
    """A RunConfig from a JSON file (optionally {"preset": "classic", ...}) plus key=value overrides."""
    values: dict = {}
    if path:
        try:
            values = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UserError(f"config file {path} does not exist")
        except ValueError as exc:
            raise UserError(f"config file {path} is not valid JSON: {exc}")
        if not isinstance(values, dict):
            raise UserError(f"config file {path} must hold a JSON object of configuration keys")
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r} is not key=value (for example --set act=tanh)")
        values[key.strip()] = _parse_value(value.strip())
    return RunConfig.from_values(values)


def cmd_train(args) -> int:
    config = load_config(args.config, args.set)
    record = store.train_or_load(config, device=args.device, progress=not args.no_progress, force=args.force)
    print(store.result_path(record["key"]))
    return 0


def cmd_test(args) -> int:
    import torch

    from .model import LeNet5
    from .train import evaluate, pick_device

    key = args.key or store.run_key(load_config(args.config, args.set))
    record = store.load(key)
    if record is None:
        raise UserError(f"no stored run {key} in {store.results_dir()}; train it first with "
                        f"`python -m lenet_core train -c CONFIG`")
    ckpt = store.checkpoint_path(key)
    if not ckpt.exists():
        raise UserError(f"run {key} is stored but its weights {ckpt} are not (checkpoints are not "
                        f"committed); retrain with `python -m lenet_core train -c CONFIG --force`")
    config = RunConfig.from_dict(record["config"])
    device = pick_device(args.device)
    weights = torch.load(ckpt, map_location=device, weights_only=True)
    splits = data.splits(config.dataset, str(device), config.normalize, config.data_copy)
    model = LeNet5(**config.model_kwargs()).to(device)
    for which in ("last", "best"):
        if which not in weights:
            print(f"{key} [{which}]: no weights (run {record['status']})")
            continue
        model.load_state_dict(weights[which])
        result = evaluate(model, splits.test_x, splits.test_y, views=config.test_augment, fill=splits.background)
        stored = record["metrics"].get(f"test_acc_{which}")
        print(f"{key} [{which}]: test accuracy {result['acc']:.4f}, loss {result['loss']:.4f} "
              f"(stored: {stored if stored is None else f'{stored:.4f}'}; data: {splits.provenance['copy']})")
    return 0


def cmd_data_prepare(args) -> int:
    names = args.datasets or ([n for n, copies in data.COPIES.items() if args.copy in copies]
                              if args.copy else list(data.DATASETS))
    for name in names:
        copy = args.copy or data.OFFICIAL
        data.check_copy(name, copy)
        prov = data.prepare(name, mirror=args.mirror, force=args.force, copy=copy)
        lossy = " LOSSY COPY" if prov["lossy"] else ""
        print(f"{name}: {prov['n_train']} train / {prov['n_test']} test, from {prov['source']} "
              f"({prov['location']}){lossy} -> {data.data_dir() / (data.cache_name(name, copy) + '.pt')}")
    return 0


def cmd_sweep(args) -> int:
    from . import sweep

    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs} is out of range: give 1 or more")
    if args.dry_run:
        jobs, skipped = sweep.plan(args.profile, args.only, args.datasets, args.data_copy)
        for job in jobs:
            state = "done" if job.done() else f"{len(job.pending())} of {len(job.configs)} runs to train"
            print(f"{job.name}: {state}")
        for s in skipped:
            print(f"{s.name}: skipped ({s.reason})")
        return 0
    if args.scheduler and args.jobs is not None:
        raise UserError("--jobs sets how many notebooks run at once on this machine; with --scheduler the "
                        "cluster's workers decide (start them with --nthreads 1)")
    if args.data_mirror and not args.scheduler:
        raise UserError("--data-mirror is the mirror folder on the cluster's workers and needs --scheduler; "
                        "locally the data comes from `data prepare` ($DATA_MIRROR)")
    failed = sweep.run(args.profile, args.only, args.datasets, args.jobs,
                       scheduler=args.scheduler, data_mirror=args.data_mirror, data_copy=args.data_copy)
    return 1 if failed else 0


def cmd_store_orphans(args) -> int:
    from . import sweep

    keys = sweep.orphans()
    for key in keys:
        print(store.result_path(key))
        if args.remove:  # the record first: without it the run counts as absent either way
            store.result_path(key).unlink()
            store.checkpoint_path(key).unlink(missing_ok=True)
    verb = "removed" if args.remove else "not planned by any profile:"
    print(f"{verb} {len(keys)} run{'s' if len(keys) != 1 else ''}"
          + ("" if args.remove or not keys else " (remove them with --remove)"))
    return 0


def cmd_store_backlog(args) -> int:
    from . import backlog
    from .experiments import PROFILES

    if args.profile not in PROFILES:
        raise UserError(f"unknown profile {args.profile!r}; valid: {', '.join(PROFILES)}")
    try:
        print(backlog.report(args.profile, args.only))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.train:
        trained = backlog.train(args.profile, device=args.device, only=args.only)
        print(f"trained {trained} run{'s' if trained != 1 else ''}; nothing is left that another worker has not claimed")
    return 0


def cmd_book_render(args) -> int:
    from . import book

    written = book.render(args.profile, args.out, log=None)
    print(f"rendered {len(written)} files into {Path(written[0]).parent}")
    return 0


def cmd_notebooks(args) -> int:
    from . import notebooks

    paths = notebooks.notebook_paths(args.names)
    if args.notebooks_command == "refresh":
        for path in paths:
            notebooks.refresh(path)
            print(f"refreshed {path}")
    problems = [p for path in paths for p in notebooks.output_problems(path)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    choices = "; ".join(f"{k}: {', '.join(v)}" for k, v in NAME_CHOICES.items())
    parser = argparse.ArgumentParser(
        prog="python -m lenet_core",
        description="LeNet-5, modernized: train, evaluate and prepare data.",
        epilog="Configuration keys and their valid names -- " + choices,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,test,sweep,store,book,notebooks,data}")

    def config_args(p):
        p.add_argument("-c", "--config", metavar="FILE",
                       help='JSON object of configuration keys, e.g. {"act": "tanh", "epochs": 5}; '
                            '"preset": "classic" starts from the 1998 network')
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one configuration key (repeatable), e.g. --set lr=0.01")
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")

    p = sub.add_parser("train", help="train a configuration (or load it from the run store)",
                       description="Train one run and store it under results/<key>.json; "
                                   "a run already stored is loaded, not retrained.")
    config_args(p)
    p.add_argument("--force", action="store_true", help="retrain even if the run is stored")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("test", help="evaluate a stored run's weights on the test set",
                       description="Re-evaluate the last and best-validation weights of a stored run.")
    config_args(p)
    p.add_argument("--key", help="run key (results/<key>.json); or give the configuration instead")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("sweep", help="execute the notebooks of a profile with papermill",
                       description="Execute every (notebook, parameter set, dataset) of the sweep "
                                   "specification (notebooks/sweep.yml) for a profile into book/runs/. "
                                   "Stored runs are loaded, not retrained; a failed notebook does not stop "
                                   "the others; an interrupted sweep resumes where it stopped.")
    p.add_argument("--profile", default="quick", help="smoke, quick or full (default: quick)")
    p.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="only these notebooks")
    p.add_argument("--datasets", nargs="+", metavar="DATASET", help="only these datasets")
    p.add_argument("--jobs", type=int, help="notebooks at once (default: one per CPU core, one thread each)")
    p.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    copies = sorted({c for cs in data.COPIES.values() for c in cs})
    p.add_argument("--data-copy", metavar="COPY",
                   help=f"train the datasets that have this copy ({', '.join(copies)}) on it instead of the "
                        f"copy the book publishes (notebooks/sweep.yml: data_copies); only those datasets run")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run each notebook as a task on the Dask cluster at ADDRESS (tcp://HOST:PORT); "
                        "results come back into this checkout (needs: pip install -e '.[dask]')")
    p.add_argument("--data-mirror", metavar="DIR",
                   help="with --scheduler: the offline dataset mirror folder on the workers "
                        "(default: they download through torchvision)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("store", help="look after the run store",
                       description="`orphans` lists the stored runs that no profile of notebooks/sweep.yml plans "
                                   "(for example after the published copy of a dataset changed); --remove "
                                   "deletes them and their weights. `backlog` counts, costs and trains the runs "
                                   "planned but not yet published.")
    ssub = p.add_subparsers(dest="store_command", required=True, metavar="{orphans,backlog}")
    p = ssub.add_parser("orphans", help="list (or remove) stored runs no profile plans")
    p.add_argument("--remove", action="store_true", help="delete them and their weights")
    p.set_defaults(func=cmd_store_orphans)
    p = ssub.add_parser("backlog", help="count, cost and train the runs planned but not yet published",
                        description="The runs a profile plans that the book does not publish yet (pending "
                                    "parts of notebooks/sweep.yml, learning-rate searches as far as they are "
                                    "known, copies being trained, the copy comparison): per part, how many are "
                                    "not stored, their epochs and estimated CPU-hours. --train trains them, the "
                                    "costliest first, round by round until none is left; start one per core "
                                    "(LENET_THREADS=1): each claims a run before training it.")
    p.add_argument("--profile", default="full", help="smoke, quick or full (default: full)")
    p.add_argument("--train", action="store_true", help="train them (interrupted runs carry on)")
    p.add_argument("--only", nargs="+", metavar="PART", help="only these parts (a notebook's name takes all of its parts)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.set_defaults(func=cmd_store_backlog)

    p = sub.add_parser("book", help="render the book's generated pages from the run store")
    bsub = p.add_subparsers(dest="book_command", required=True, metavar="{render}")
    p = bsub.add_parser("render", help="write book/_generated/ (Markdown fragments and figures)",
                        description="Render the book's summary pages from the run store (nothing is trained); "
                                    "then `jupyter-book build .` builds the site.")
    p.add_argument("--profile", default="quick", help="smoke, quick or full (default: quick)")
    p.add_argument("--out", default="book", help="the book folder (default: book/ of the checkout)")
    p.set_defaults(func=cmd_book_render)

    p = sub.add_parser("notebooks", help="check or refresh the committed notebooks",
                       description="Committed notebooks carry no outputs except the reference output of "
                                   "cells marked # NBVAL_CHECK_OUTPUT. `check` lists violations (exit 1); "
                                   "`refresh` re-executes in the smoke profile and keeps only those outputs.")
    p.add_argument("notebooks_command", choices=["check", "refresh"])
    p.add_argument("names", nargs="*", metavar="NOTEBOOK", help="notebook names (default: all)")
    p.set_defaults(func=cmd_notebooks)

    p = sub.add_parser("data", help="prepare the datasets")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="{prepare}")
    p = dsub.add_parser("prepare", help="import, verify and cache datasets as tensors",
                        description="Import datasets from an offline mirror (--mirror or $DATA_MIRROR) "
                                    "or through torchvision's download, verify them and cache them.")
    p.add_argument("datasets", nargs="*", metavar="DATASET",
                   help=f"any of {', '.join(data.DATASETS)} (default: all)")
    p.add_argument("--mirror", metavar="DIR", help="offline mirror folder (default: $DATA_MIRROR, else download)")
    p.add_argument("--force", action="store_true", help="re-import even if cached")
    p.add_argument("--copy", metavar="COPY",
                   help="a copy other than the official files, by name: jpeg (CIFAR-10's lossy JPEG "
                        "re-encoding, kept to measure what it costs); default: the official files")
    p.set_defaults(func=cmd_data_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "test" and not (args.key or args.config or args.set):
        parser.exit(2, "python -m lenet_core test: error: give --key KEY or a configuration (-c FILE / --set)\n")
    if args.command == "data":
        for name in args.datasets:
            if name not in data.DATASETS:
                parser.exit(2, f"python -m lenet_core data prepare: error: unknown dataset {name!r}; "
                               f"valid: {', '.join(data.DATASETS)}\n")
    try:
        return args.func(args)
    except (UserError, ValueError, DataError) as exc:
        print(f"python -m lenet_core {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
