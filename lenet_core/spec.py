"""The layout of the sweep specification (`notebooks/sweep.yml`), checked as it is loaded.

An unknown key at any level is refused with the file, where it is, the key and the
valid keys; so is a missing one, a name that is not a dataset, profile, data copy
or setup, and a published setup that refers to a result the reference file
(`lenet_core/reference.yml`) does not have.
"""

from __future__ import annotations

import itertools
from dataclasses import fields
from pathlib import Path

from .config import RunConfig
from .data import COPIES, DATASETS
from .schema import Layout

PROFILES = ("smoke", "quick", "full")
TOP_KEYS = ("profiles", "notebooks", "data_copies", "data_copies_in_progress", "copy_comparison", "lr_search")
LR_SEARCH_KEYS = ("seed", "short_fraction", "keep", "pending")
PROFILE_KEYS = ("epochs", "train_size", "seeds", "datasets")
# What a notebook's entry is: a grid of parameter sets (the default), the cumulative ladder,
# published setups re-run with their own protocol, or each change of a ladder on its own (undone at
# its top, applied to its start). Each kind has its own keys beside the common ones.
KINDS = ("grid", "ladder", "setups", "one_change")
ENTRY_KEYS = ("kind", "base", "params", "profiles", "pending")
KIND_KEYS = {"grid": (), "ladder": ("ladder",), "setups": ("setups",), "one_change": ("of", "top")}  # required
OPTIONAL_KIND_KEYS = {"grid": ("more_seeds", "lr_factors", "map_j_grid"), "ladder": ("lr_factors",), "setups": (),
                      "one_change": ("start", "candidates")}
# A one_change entry's runs are its ladder's: its profiles choose only seeds and datasets.
ONE_CHANGE_PROFILE_KEYS = ("seeds", "datasets")
SETUP_KEYS = ("title", "dataset", "reference", "config")
RUNG_KEYS = ("rung", "epochs_factor", "pending")
PER_DATASET = (*DATASETS, "default")  # the keys of a value chosen per dataset


def kind(entry: dict) -> str:
    """The kind of a notebook's entry: grid unless it says otherwise."""
    return entry.get("kind", "grid")


def expand_params(params) -> list[dict]:
    """An entry's `params` as a list of parameter sets: a mapping of lists is every combination."""
    if isinstance(params, dict):
        keys = list(params)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(params[k] for k in keys))]
    return [dict(p) for p in params]


def config_fields() -> list[str]:
    return [f.name for f in fields(RunConfig)]


def validate(spec, path: Path) -> dict:
    """`spec` (the parsed file at `path`), checked; returns it unchanged."""
    check = Layout(path)
    spec = check.mapping(spec, "", TOP_KEYS, ("profiles", "notebooks"))
    for name, settings in check.mapping(spec["profiles"], "profiles", PROFILES).items():
        _profile(check, settings, f"profiles.{name}", PROFILE_KEYS)
    for key in ("data_copies", "data_copies_in_progress"):
        for dataset, copy in check.mapping(spec.get(key), key, list(DATASETS)).items():
            check.choice(copy, f"{key}.{dataset}", COPIES[dataset])
    notebooks = check.mapping(spec["notebooks"], "notebooks")
    for name, entry in notebooks.items():
        _notebook(check, entry, f"notebooks.{name}")
    for name, entry in notebooks.items():  # after every ladder is checked: these refer to one
        if kind(entry) == "one_change":
            _one_change(check, entry, f"notebooks.{name}", notebooks)
    if "copy_comparison" in spec:
        _copy_comparison(check, spec["copy_comparison"], notebooks)
    searching = [name for name, entry in notebooks.items() if "lr_factors" in entry]
    if searching and "lr_search" not in spec:
        check.fail(f"notebooks.{searching[0]}.lr_factors", "needs the top-level lr_search (how a rate is chosen)")
    if "lr_search" in spec:
        _lr_search(check, spec["lr_search"])
    return spec


def _lr_search(check: Layout, entry) -> None:
    where = "lr_search"
    entry = check.mapping(entry, where, LR_SEARCH_KEYS, ("seed", "short_fraction", "keep"))
    if not isinstance(entry["seed"], int) or isinstance(entry["seed"], bool) or entry["seed"] < 0:
        check.fail(f"{where}.seed", f"expected a seed (an integer >= 0); got {entry['seed']!r}")
    check.number(entry["short_fraction"], f"{where}.short_fraction", 0, 1)
    if not isinstance(entry["keep"], int) or isinstance(entry["keep"], bool) or entry["keep"] < 1:
        check.fail(f"{where}.keep", f"expected how many rates train the full length (an integer >= 1); "
                                    f"got {entry['keep']!r}")
    check.names(entry.get("pending", []), f"{where}.pending", list(PROFILES))


def _lr_factors(check: Layout, factors, where: str) -> None:
    if not isinstance(factors, list) or len(factors) < 2 or \
            not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in factors) or \
            sorted(factors) != factors or len(set(factors)) != len(factors):
        check.fail(where, f"expected at least two increasing positive factors of the set's own lr, such as "
                          f"[0.1, 0.3, 1, 3, 10]; got {factors!r}")


def _map_j_grid(check: Layout, entry: dict, where: str) -> None:
    """Values of the MAP criterion's constant j, searched at the chosen rate: increasing, positive,
    with RunConfig's default among them; the entry must search its rate (lr_factors)."""
    from .config import RunConfig

    grid = entry["map_j_grid"]
    if not isinstance(grid, list) or len(grid) < 2 or RunConfig.map_j not in grid or \
            not all(isinstance(j, (int, float)) and not isinstance(j, bool) and j > 0 for j in grid) or \
            sorted(set(grid)) != grid:
        check.fail(where, f"expected increasing positive values of j with the default {RunConfig.map_j:g} among "
                          f"them, such as [1, 10, 100]; got {grid!r}")
    if "lr_factors" not in entry:
        check.fail(where, "j is searched at the rate the learning-rate search chooses: the entry needs lr_factors")


def _profile(check: Layout, settings, where: str, required) -> None:
    settings = check.mapping(settings, where, PROFILE_KEYS, required)
    if "datasets" in settings:
        check.names(settings["datasets"], f"{where}.datasets", list(DATASETS))


def _config(check: Layout, values, where: str, valid) -> dict:
    """RunConfig fields (and whatever else `valid` allows); a mapping value is chosen per dataset."""
    values = check.mapping(values, where, valid)
    for key, value in values.items():
        if isinstance(value, dict):
            check.mapping(value, f"{where}.{key}", PER_DATASET, what="a value chosen per dataset")
    return values


def _notebook(check: Layout, entry, where: str) -> None:
    entry = check.mapping(entry, where)
    what = check.choice(kind(entry), f"{where}.kind", KINDS)
    check.mapping(entry, where, ENTRY_KEYS + KIND_KEYS[what] + OPTIONAL_KIND_KEYS[what], KIND_KEYS[what],
                  what=f"an entry of kind {what}")
    _config(check, entry.get("base"), f"{where}.base", ["preset", *config_fields()])
    for profile, overrides in check.mapping(entry.get("profiles"), f"{where}.profiles", PROFILES).items():
        _profile(check, overrides, f"{where}.profiles.{profile}", ())
    setups = _setups(check, entry["setups"], f"{where}.setups") if what == "setups" else {}
    _params(check, entry.get("params", [{}]), f"{where}.params", what, setups)
    if "more_seeds" in entry:
        _more_seeds(check, entry, f"{where}.more_seeds")
    if "pending" in entry:
        _pending(check, entry, f"{where}.pending")
    if "lr_factors" in entry:
        _lr_factors(check, entry["lr_factors"], f"{where}.lr_factors")
    if "map_j_grid" in entry:
        _map_j_grid(check, entry, f"{where}.map_j_grid")
    if what == "ladder":
        if not isinstance(entry["ladder"], list) or not entry["ladder"]:
            check.fail(f"{where}.ladder", "expected a list of rungs")
        for i, rung in enumerate(entry["ladder"]):
            rung = _config(check, rung, f"{where}.ladder[{i}]", [*RUNG_KEYS, *config_fields()])
            if "rung" not in rung:
                check.fail(f"{where}.ladder[{i}]", "missing 'rung' (the rung's name)")
            pending = rung.get("pending", [])
            if not isinstance(pending, list) or not all(p in PROFILES for p in pending):
                check.fail(f"{where}.ladder[{i}].pending", f"expected a list of profiles; got {pending!r}; "
                                                           f"valid: {', '.join(PROFILES)}")
        if entry["ladder"][-1].get("pending"):
            check.fail(f"{where}.ladder[{len(entry['ladder']) - 1}].pending",
                       "the top rung cannot be pending: a pending rung's changes join the rung above it")


def _one_change(check: Layout, entry: dict, where: str, notebooks: dict) -> None:
    """`of`: a notebook of kind ladder; `top` and `start` (default: the
    first rung): two of its rungs, the start below the top. No base or params: the runs are the
    ladder's own, with the seeds (and datasets) of this entry's profiles. `candidates`: changes
    the ladder does not have, each named like a rung (a name no rung has) with the fields it sets."""
    for key in ("base", "params"):
        if key in entry:
            check.fail(f"{where}.{key}", "an entry of kind one_change trains its ladder's runs (`of`): it has "
                                         "no base or params of its own")
    for profile, overrides in (entry.get("profiles") or {}).items():
        check.mapping(overrides, f"{where}.profiles.{profile}", ONE_CHANGE_PROFILE_KEYS,
                      what="a profile of an entry of kind one_change (its epochs are its ladder's)")
    ladders = {name: e for name, e in notebooks.items() if kind(e) == "ladder"}
    ladder = check.choice(entry["of"], f"{where}.of", list(ladders), "ladder notebook")
    names = [r.get("rung") for r in ladders[ladder]["ladder"]]
    top = check.choice(entry["top"], f"{where}.top", names[1:], "rung above the first")
    check.choice(entry.get("start", names[0]), f"{where}.start", names[:names.index(top)], "rung below the top")
    candidates = entry.get("candidates", [])
    if not isinstance(candidates, list):
        check.fail(f"{where}.candidates", "expected a list of changes, each {rung: its name, fields...}")
    seen = set(names)
    for i, candidate in enumerate(candidates):
        candidate = _config(check, candidate, f"{where}.candidates[{i}]", ["rung", *config_fields()])
        if not isinstance(candidate.get("rung"), str) or len(candidate) < 2:
            check.fail(f"{where}.candidates[{i}]", "expected {rung: its name, and the fields it sets}")
        if candidate["rung"] in seen:
            check.fail(f"{where}.candidates[{i}].rung", f"{candidate['rung']!r} names a rung or candidate already")
        seen.add(candidate["rung"])


def pending_sets(entry: dict, profile: str) -> list[dict]:
    """The parameter sets of an entry whose runs in `profile` are being trained: all of them where
    its `pending` says true for the profile, else those it lists."""
    pending = (entry.get("pending") or {}).get(profile, [])
    return expand_params(entry.get("params", [{}])) if pending is True else list(pending)


def _pending(check: Layout, entry: dict, where: str) -> None:
    """Per profile, true (every parameter set) or a list of the entry's parameter sets."""
    sets = expand_params(entry.get("params", [{}]))
    for profile, pending in check.mapping(entry["pending"], where, PROFILES).items():
        if pending is True:
            continue
        if not isinstance(pending, list):
            check.fail(f"{where}.{profile}", f"expected true or a list of parameter sets; got {pending!r}")
        _known_sets(check, pending, f"{where}.{profile}", sets)


def _known_sets(check: Layout, listed: list, where: str, sets: list[dict]) -> None:
    """Each of `listed` must be one of the entry's parameter sets."""
    for i, params in enumerate(listed):
        if params not in sets:
            check.fail(f"{where}[{i}]", f"{params!r} is not one of the entry's parameter sets; valid: {sets}")


def _more_seeds(check: Layout, entry: dict, where: str) -> None:
    """Per profile, the seeds some parameter sets train instead of the profile's, per dataset: each
    set must be one the entry's `params` has. `pending: true` while their runs are being trained."""
    sets = expand_params(entry.get("params", [{}]))
    for profile, more in check.mapping(entry["more_seeds"], where, PROFILES).items():
        more = check.mapping(more, f"{where}.{profile}", ["seeds", "pending", *DATASETS], ["seeds"])
        if not isinstance(more.get("pending", False), bool):
            check.fail(f"{where}.{profile}.pending", f"expected true or false; got {more['pending']!r}")
        if not isinstance(more["seeds"], list) or not more["seeds"] or \
                not all(isinstance(s, int) and not isinstance(s, bool) for s in more["seeds"]):
            check.fail(f"{where}.{profile}.seeds", f"expected a list of seeds such as [0, 1, 2, 3, 4]; "
                                                   f"got {more['seeds']!r}")
        for dataset in DATASETS:
            if not isinstance(more.get(dataset, []), list):
                check.fail(f"{where}.{profile}.{dataset}", "expected a list of parameter sets")
            _known_sets(check, more.get(dataset, []), f"{where}.{profile}.{dataset}", sets)


def _params(check: Layout, params, where: str, what: str, setups: dict) -> None:
    """What the sweep varies: RunConfig fields, or (kind setups) names of the entry's `setups`."""
    valid = ["setup"] if what == "setups" else ["preset", *config_fields()]
    if isinstance(params, dict):  # a mapping of lists: every combination
        for key, values in _config(check, params, where, valid).items():
            if not isinstance(values, list):
                check.fail(f"{where}.{key}", f"expected a list of values; got {values!r}")
        chosen = params.get("setup", [])
    elif isinstance(params, list):
        for i, values in enumerate(params):
            _config(check, values, f"{where}[{i}]", valid)
        chosen = [p["setup"] for p in params if "setup" in p]
    else:
        check.fail(where, "expected a mapping of lists or a list of mappings")
    if what == "setups":
        for name in chosen:
            check.choice(name, f"{where}.setup", list(setups), "setup")


def _setups(check: Layout, setups, where: str) -> dict:
    from .reference import load

    results = load().results()
    for name, setup in check.mapping(setups, where).items():
        setup = check.mapping(setup, f"{where}.{name}", SETUP_KEYS, SETUP_KEYS)
        check.text(setup["title"], f"{where}.{name}.title")
        check.choice(setup["dataset"], f"{where}.{name}.dataset", list(DATASETS))
        ref = setup["reference"]
        if ref not in results:
            check.fail(f"{where}.{name}.reference", f"unknown result id {ref!r} (the results of "
                                                    f"{Layout(load().path).file}); valid: {', '.join(results)}")
        if results[ref].value is None:
            check.fail(f"{where}.{name}.reference", f"the result {ref!r} has no value to compare with")
        _config(check, setup["config"], f"{where}.{name}.config", config_fields())
    return setups


def _copy_comparison(check: Layout, entry, notebooks: dict) -> None:
    where = "copy_comparison"
    entry = check.mapping(entry, where, ("dataset", "copy", "rungs", "setups"), ("dataset", "copy"))
    dataset = check.choice(entry["dataset"], f"{where}.dataset", list(DATASETS))
    check.choice(entry["copy"], f"{where}.copy", COPIES[dataset])
    rungs = [r["rung"] for e in notebooks.values() if kind(e) == "ladder" for r in e["ladder"]]
    setups = [s for e in notebooks.values() if kind(e) == "setups" for s in e["setups"]]
    check.names(entry.get("rungs", []), f"{where}.rungs", rungs)
    check.names(entry.get("setups", []), f"{where}.setups", setups)
