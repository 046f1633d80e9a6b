"""From a notebook's parameters to the runs behind it, using the sweep specification.

A notebook says which technique it studies and with which parameter values;
the profile (smoke / quick / full) says how much compute to spend. This module
turns that into one validated RunConfig per seed, and runs or loads them.

    exp = experiment("activation", dataset="mnist", profile="quick", act="tanh")
    records = exp.run()
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .config import RunConfig
from .paths import project_root
from .records import Runs
from .schema import load_yaml
from .spec import PROFILES, expand_params, kind, pending_sets, validate

PROFILE_ENV = "LENET_PROFILE"  # overrides every notebook's profile (CI runs notebooks in smoke)


def spec_path() -> Path:
    return Path(os.environ.get("LENET_SWEEP_SPEC", project_root() / "notebooks" / "sweep.yml"))


@lru_cache(maxsize=4)
def _load(path: Path) -> dict:
    return validate(load_yaml(path), path)


def load_spec() -> dict:
    """The sweep specification, checked once per file (`spec.validate` says what is refused)."""
    return _load(spec_path())


def active_profile(profile: str) -> str:
    """The profile to use: $LENET_PROFILE when set, else the one given; checked."""
    chosen = os.environ.get(PROFILE_ENV) or profile
    if chosen not in PROFILES:
        source = f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else "profile"
        raise ValueError(f"unknown {source} {chosen!r}; valid: {', '.join(PROFILES)}")
    return chosen


def check_notebook(notebook: str) -> dict:
    notebooks = load_spec()["notebooks"]
    if notebook not in notebooks:
        raise ValueError(f"unknown notebook {notebook!r}; valid: {', '.join(notebooks)}")
    return notebooks[notebook]


def notebook_of_kind(of_kind: str) -> str:
    """The notebook whose entry is of this kind (ladder, setups); there must be exactly one."""
    names = [n for n, e in load_spec()["notebooks"].items() if kind(e) == of_kind]
    if len(names) != 1:
        raise ValueError(f"{spec_path()}: expected one notebook of kind {of_kind}, found "
                         f"{len(names)}{': ' + ', '.join(names) if names else ''}")
    return names[0]


def profile_settings(notebook: str, profile: str) -> dict:
    """epochs, train_size, seeds and datasets of `profile`, with the notebook's overrides."""
    entry = check_notebook(notebook)
    profile = active_profile(profile)
    return {**load_spec()["profiles"][profile], **(entry.get("profiles") or {}).get(profile, {})}


def per_dataset(value, dataset: str):
    """Resolve a {dataset: value, default: value} mapping; other values pass through."""
    if isinstance(value, dict) and value and set(value) <= {"mnist", "fashion_mnist", "cifar10", "default"}:
        return value.get(dataset, value.get("default"))
    return value


def param_sets(notebook: str, profile: str | None = None) -> list[dict]:
    """Every parameter set the sweep executes `notebook` with; given a profile, those it publishes
    in that profile (the sets whose runs are still `pending` there left out)."""
    entry = check_notebook(notebook)
    sets = expand_params(entry.get("params", [{}]))
    if profile is None:
        return sets
    pending = pending_sets(entry, active_profile(profile))
    return [p for p in sets if p not in pending]


def seeds_of(notebook: str, profile: str, dataset: str, params: dict) -> list[int]:
    """The seeds one parameter set trains: the profile's, or the entry's `more_seeds` for it
    (unless those are still `pending`: being trained, not yet published)."""
    more = (check_notebook(notebook).get("more_seeds") or {}).get(active_profile(profile), {})
    if params in more.get(dataset, []) and not more.get("pending"):
        return list(more["seeds"])
    return list(profile_settings(notebook, profile)["seeds"])


def pending_seed_configs(profile: str) -> list[RunConfig]:
    """The runs of every `more_seeds` entry of `profile` marked pending: planned (their stored runs
    belong in the store) but not yet published, and not yet required to be complete."""
    configs = []
    for notebook, entry in load_spec()["notebooks"].items():
        more = (entry.get("more_seeds") or {}).get(profile, {})
        if more.get("pending"):
            for dataset, sets in more.items():
                if dataset not in ("seeds", "pending"):
                    configs += [c for params in sets for c in experiment(
                        notebook, dataset=dataset, profile=profile, seeds=more["seeds"], **params).configs]
    return configs


def published_copy(dataset: str) -> str:
    """The copy of `dataset` the book publishes: the spec's `data_copies`, else its official files."""
    from .data import OFFICIAL, check_name

    check_name(dataset)
    return load_spec().get("data_copies", {}).get(dataset, OFFICIAL)


def copies_in_progress() -> list[str]:
    """The copies the spec's `data_copies_in_progress` names: trained and stored, not yet published."""
    return sorted(set(load_spec().get("data_copies_in_progress", {}).values()))


def build_config(base: dict, dataset: str, **values) -> RunConfig:
    """A RunConfig from a base (possibly "preset: classic") and overrides, resolved for `dataset`."""
    merged = {k: per_dataset(v, dataset) for k, v in {**base, **values}.items()}
    merged["dataset"] = dataset
    return RunConfig.from_values(merged)


@dataclass
class Experiment:
    """One configuration of one notebook, over several seeds."""

    notebook: str
    dataset: str
    profile: str
    configs: list[RunConfig] = field(default_factory=list)  # one per seed
    label: str = ""

    @property
    def seeds(self) -> list[int]:
        return [c.seed for c in self.configs]

    @property
    def config(self) -> RunConfig:
        """The configuration shared by all seeds (shown with seed 0's value)."""
        return self.configs[0]

    def run(self, device: str | None = None, progress: bool | None = None, log=print) -> Runs:
        """Every seed's run: loaded from the store, or trained and stored."""
        from .store import train_or_load

        return Runs([train_or_load(c, device=device, progress=progress, log=log) for c in self.configs])

    def stored_runs(self) -> Runs:
        """The seeds' runs already in the store (nothing is trained); none where the dataset is not
        prepared on this machine, since no run key can be computed without its data."""
        from .data import DataError
        from .store import load, run_key

        try:
            records = [load(run_key(c)) for c in self.configs]
        except DataError:
            records = []
        return Runs([r for r in records if r is not None], expected=len(self.configs))

    def model_at_init(self, seed: int | None = None):
        """The network of this experiment as training starts (seed: the first seed's)."""
        import torch

        from .model import LeNet5

        torch.manual_seed(self.configs[0].seed if seed is None else seed)
        return LeNet5(**self.config.model_kwargs())

    def batch(self, n: int = 512):
        """The first n training images and labels (CPU): a fixed batch for diagnostics."""
        from .data import splits

        data = splits(self.dataset, "cpu", self.config.normalize, self.config.data_copy)
        return data.train_x[:n], data.train_y[:n]


def experiment(notebook: str, *, dataset: str = "mnist", profile: str = "quick",
               seeds: list[int] | None = None, base: dict | None = None, label: str = "",
               data_copy: str | None = None, **params) -> Experiment:
    """The runs of `notebook` with `params` on `dataset`, sized by `profile`.

    Training length and seeds come from the profile (the sweep specification),
    unless `seeds` is given; the data copy is the one the book publishes unless
    `data_copy` names another. Every name and number is validated here, before
    anything is trained or written.
    """
    entry = check_notebook(notebook)
    profile = active_profile(profile)
    settings = profile_settings(notebook, profile)
    seeds = seeds_of(notebook, profile, dataset, params) if seeds is None else seeds
    if isinstance(seeds, int):
        seeds = list(range(seeds))
    if not seeds:
        raise ValueError("seeds is empty; give a list such as [0, 1, 2] or a count such as 3")
    base = {**entry.get("base", {}), **(base or {}),
            "epochs": settings["epochs"], "train_size": settings["train_size"],
            "data_copy": data_copy or published_copy(dataset)}
    configs = [build_config(base, dataset, **params, seed=int(s)) for s in seeds]
    return Experiment(notebook, dataset, profile, configs, label)


def rung_changes(dataset: str = "mnist", profile: str = "quick", notebook: str | None = None,
                 include_pending: bool = False) -> list[tuple[str, dict]]:
    """The rungs of `notebook`'s ladder (default: the notebook of kind ladder) as (name, the fields
    the rung sets), resolved for `dataset`; a rung's `epochs_factor` becomes its epochs, the
    factor times the profile's epochs (per dataset, like any value), so the rung stays in
    proportion in every profile. A rung `pending` in `profile` (being trained, not yet published)
    is left out unless `include_pending`, its fields joining the rung above it, so every rung above
    keeps its configuration."""
    notebook = notebook or notebook_of_kind("ladder")
    epochs = profile_settings(notebook, profile)["epochs"]
    out, carried = [], {}
    for rung in check_notebook(notebook)["ladder"]:
        rung = {k: per_dataset(v, dataset) for k, v in rung.items()}
        name = rung.pop("rung")
        pending = profile in rung.pop("pending", [])
        factor = rung.pop("epochs_factor", None)
        if factor is not None:
            if not isinstance(factor, (int, float)) or factor <= 0:
                raise ValueError(f"rung {name!r}: epochs_factor must be a positive number, got {factor!r}")
            rung["epochs"] = max(1, round(epochs * factor))
        if pending and not include_pending:
            carried.update(rung)
            continue
        out.append((name, {**carried, **rung}))
        carried = {}
    return out


def pending_rungs(profile: str, notebook: str | None = None) -> list[str]:
    """The names of the ladder's rungs still being trained in `profile` (left out of its pages)."""
    notebook = notebook or notebook_of_kind("ladder")
    return [r["rung"] for r in check_notebook(notebook)["ladder"] if profile in r.get("pending", [])]


def ladder(dataset: str = "mnist", profile: str = "quick", seeds: list[int] | None = None,
           data_copy: str | None = None, notebook: str | None = None, include_pending: bool = False) -> list[Experiment]:
    """The cumulative modernization ladder of `notebook` (default: the notebook of kind ladder):
    rung k = rung k-1 plus one change (`rung_changes`)."""
    notebook = notebook or notebook_of_kind("ladder")
    changes: dict = {}
    rungs = []
    for name, rung in rung_changes(dataset, profile, notebook, include_pending):
        changes.update(rung)
        rungs.append(experiment(notebook, dataset=dataset, profile=profile, seeds=seeds, label=name,
                                data_copy=data_copy, **changes))
    return rungs


def setups(notebook: str | None = None) -> dict[str, dict]:
    """The published setups `notebook` (default: the notebook of kind setups) re-runs, by name.

    Each is its entry in the spec (title, dataset, config, reference) with the published result
    it refers to in `lenet_core/reference.yml`: source (where it is published), published (the
    result as text), published_value (a fraction), published_metric (ours in the same metric),
    and goal_within where the study sets itself a goal for it (points).
    """
    from .reference import load

    reference = load()
    out = {}
    for name, entry in check_notebook(notebook or notebook_of_kind("setups"))["setups"].items():
        ref = reference.result(entry["reference"])
        out[name] = {**entry, "source": ref.citation or reference.source_of(ref.id).name, "published": ref.text,
                     "published_value": ref.value, "published_metric": ref.metric}
        if ref.id in reference.reproduce_within:
            out[name]["goal_within"] = reference.reproduce_within[ref.id]
    return out


def check_setup(setup: str, notebook: str | None = None) -> dict:
    known = setups(notebook)
    if setup not in known:
        raise ValueError(f"unknown setup {setup!r}; valid: {', '.join(known)}")
    return known[setup]


def published_setup(setup: str, dataset: str | None = None, profile: str = "quick",
                    seeds: list[int] | None = None, data_copy: str | None = None,
                    notebook: str | None = None) -> Experiment:
    """A published setup with its own protocol, on its own dataset (any other is refused).

    In the full profile the setup trains for its published number of epochs on
    all the training data; the shorter profiles keep their own budget.
    """
    notebook = notebook or notebook_of_kind("setups")
    entry = check_setup(setup, notebook)
    if dataset not in (None, entry["dataset"]):
        raise ValueError(f"setup {setup!r} is published on {entry['dataset']} only; got dataset {dataset!r}; "
                         f"valid: {entry['dataset']}")
    config = dict(entry["config"])
    if active_profile(profile) != "full":
        config.pop("epochs", None)
    return experiment(notebook, dataset=entry["dataset"], profile=profile, seeds=seeds,
                      label=entry["title"], data_copy=data_copy, **config)


@dataclass
class CopyComparison:
    """One setting trained on two copies of a dataset with the same seeds."""

    label: str
    official: Experiment
    other: Experiment  # the same configurations on the other (lossy) copy


def copy_comparison(profile: str = "full") -> list[CopyComparison]:
    """The spec's `copy_comparison`: the named ladder rungs and published setups, each on the
    official files and on the other copy, same seeds. Empty when the profile lacks the dataset."""
    from .data import OFFICIAL, check_copy

    entry = load_spec().get("copy_comparison")
    if not entry or entry["dataset"] not in profile_settings(notebook_of_kind("ladder"), profile)["datasets"]:
        return []
    dataset, copy = entry["dataset"], check_copy(entry["dataset"], entry["copy"])
    pairs = []
    rungs = {c: {r.label: r for r in ladder(dataset, profile, data_copy=c)} for c in (OFFICIAL, copy)}
    for label in entry.get("rungs", []):
        if label not in rungs[OFFICIAL]:
            raise ValueError(f"copy_comparison: unknown rung {label!r}; valid: {', '.join(rungs[OFFICIAL])}")
        pairs.append(CopyComparison(label, rungs[OFFICIAL][label], rungs[copy][label]))
    for name in entry.get("setups", []):
        sides = [published_setup(name, dataset, profile, data_copy=c) for c in (OFFICIAL, copy)]
        pairs.append(CopyComparison(sides[0].label, *sides))
    return pairs


def describe_network(config: RunConfig) -> str:
    """A deterministic one-paragraph description of the network (checked by nbval)."""
    from .data import DATASETS
    from .model import LeNet5, count_parameters

    spec = DATASETS[config.dataset]
    model = LeNet5(**config.model_kwargs())
    return (f"LeNet-5 on {spec.title} ({spec.channels}x32x32 input): act={config.act}, pool={config.pool}, "
            f"init={config.init}, C3 table={'1998 partial' if config.c3_table else 'full'}, "
            f"{config.norm_layer} norm={'on' if config.batch_norm else 'off'}, dropout={config.dropout}; "
            f"{count_parameters(model):,} trainable parameters")
