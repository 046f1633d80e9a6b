"""The published numbers the study cites and the goals it sets itself: `reference.yml` in this
package, loaded and checked once (its header describes the layout).

    from lenet_core import reference
    reference.result("bigballon_weight_decay").value     # the published test accuracy, a fraction
    reference.load().classic.error                        # the 1998 paper's MNIST test error, in %
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .data import DATASETS
from .schema import Layout, load_yaml

PATH = Path(__file__).with_name("reference.yml")
METRICS = ("test_acc_best", "val_acc_best", "test_acc_last")
RESULT_KEYS = ("dataset", "setting", "result", "value", "metric", "detail", "citation", "ours")


@dataclass(frozen=True)
class Published:
    """One published number and the run of ours closest to it (if any)."""

    dataset: str
    setting: str
    result: str  # as published; "read off the plot" where it was
    ours: tuple[str, dict] | None = None  # (notebook, parameters) of our closest setting
    ours_setting: str = ""
    metric: str = "test_acc_best"  # ours in the same metric: test, or validation where they report that
    id: str = ""
    value: float | None = None  # the result as a fraction, where it is compared in numbers
    detail: str = ""  # what `result` leaves out where it stands alone
    citation: str = ""  # the part of the source it is from

    @property
    def text(self) -> str:
        """The result where it stands alone: its text and its detail."""
        return f"{self.result} {self.detail}" if self.detail else self.result


@dataclass(frozen=True)
class Source:
    name: str
    where: str  # which part of the source the numbers are from
    protocol: str  # how they were obtained, as far as the source says
    results: tuple[Published, ...]


@dataclass(frozen=True)
class Goal:
    """What the study set out to reach on one dataset, and the published number it must beat."""

    dataset: str
    modern: float  # mean test accuracy (%) of the modernized network, same layer widths
    best_published: str  # the strongest LeNet-sized published number for the dataset
    best_published_value: float  # the same in %


@dataclass(frozen=True)
class ClassicGoal:
    """The 1998 network as the classic notebook trains it: its test error near the paper's."""

    dataset: str
    reference: Published
    cited_as: str
    error_within: float  # points

    @property
    def error(self) -> float:
        """The paper's test error, in %."""
        return _percent(1 - self.reference.value)


@dataclass(frozen=True)
class Technique:
    """What the paper behind one technique of a chapter reports, for its introduction."""

    name: str
    paper: str
    reports: str


@dataclass(frozen=True)
class Reference:
    sources: tuple[Source, ...]
    goals: tuple[Goal, ...]
    classic: ClassicGoal
    reproduce_within: dict[str, float]  # result id -> points
    epochs_to: dict[str, float]  # dataset -> validation accuracy (fraction)
    path: Path
    techniques: dict[str, tuple[Technique, ...]] = field(default_factory=dict)  # chapter -> its techniques

    def results(self) -> dict[str, Published]:
        return {r.id: r for source in self.sources for r in source.results}

    def source_of(self, id: str) -> Source:
        """The source that published the result `id`."""
        return next(s for s in self.sources if any(r.id == id for r in s.results))

    def result(self, id: str) -> Published:
        known = self.results()
        if id not in known:
            raise ValueError(f"{Layout(self.path).file}: unknown result {id!r}; valid: {', '.join(known)}")
        return known[id]


def _percent(fraction: float) -> float:
    return round(100 * fraction, 6)


@lru_cache(maxsize=4)
def load(path: Path = PATH) -> Reference:
    """The reference file, checked: an unknown key, a missing field or a dangling id is refused
    with the file, the entry and the valid keys."""
    check = Layout(path)
    top = check.mapping(load_yaml(path), "", ("sources", "techniques", "goals"), ("sources", "goals"))
    sources = _sources(check, top["sources"])
    results = {r.id: r for source in sources for r in source.results}
    return Reference(sources, *_goals(check, top["goals"], results), Path(path), _techniques(check, top.get("techniques")))


def _techniques(check: Layout, tree) -> dict[str, tuple[Technique, ...]]:
    keys = ("name", "paper", "reports")
    found = {}
    for chapter, entries in check.mapping(tree, "techniques").items():
        if not isinstance(entries, list) or not entries:
            check.fail(f"techniques.{chapter}", "expected a list of techniques")
        items = []
        for i, entry in enumerate(entries):
            where = f"techniques.{chapter}[{i}]"
            entry = check.mapping(entry, where, keys, keys)
            items.append(Technique(*(check.text(entry[k], f"{where}.{k}") for k in keys)))
        found[chapter] = tuple(items)
    return found


def _sources(check: Layout, tree) -> tuple[Source, ...]:
    sources, seen = [], set()
    for sid, entry in check.mapping(tree, "sources").items():
        where = f"sources.{sid}"
        entry = check.mapping(entry, where, ("name", "where", "protocol", "results"),
                              ("name", "where", "protocol", "results"))
        found = []
        for rid, values in check.mapping(entry["results"], f"{where}.results").items():
            if rid in seen:
                check.fail(f"{where}.results.{rid}", "this id is already a result of another source")
            seen.add(rid)
            found.append(_result(check, f"{where}.results.{rid}", rid, values))
        sources.append(Source(check.text(entry["name"], f"{where}.name"), check.text(entry["where"], f"{where}.where"),
                              check.text(entry["protocol"], f"{where}.protocol"), tuple(found)))
    return tuple(sources)


def _valued(check: Layout, results: dict[str, Published], rid, where: str) -> Published:
    """The result `rid`, which must have a value to compare with."""
    check.choice(rid, where, list(results))
    if results[rid].value is None:
        check.fail(where, f"the result {rid!r} has no value to compare with")
    return results[rid]


def _goals(check: Layout, tree, results: dict[str, Published]):
    """The modern goals, the classic goal, reproduce_within and epochs_to."""
    goals = check.mapping(tree, "goals", ("classic", "modern", "reproduce_within", "epochs_to"),
                          ("classic", "modern", "reproduce_within", "epochs_to"))
    classic = check.mapping(goals["classic"], "goals.classic", ("reference", "cited_as", "error_within"),
                            ("reference", "cited_as", "error_within"))
    ref = _valued(check, results, classic["reference"], "goals.classic.reference")
    classic = ClassicGoal(ref.dataset, ref, check.text(classic["cited_as"], "goals.classic.cited_as"),
                          check.number(classic["error_within"], "goals.classic.error_within", 0))
    modern = []
    for dataset, goal in check.mapping(goals["modern"], "goals.modern", list(DATASETS)).items():
        where = f"goals.modern.{dataset}"
        goal = check.mapping(goal, where, ("accuracy", "above"), ("accuracy", "above"))
        above = check.mapping(goal["above"], f"{where}.above", ("reference", "value", "label"), ("label",))
        if ("reference" in above) == ("value" in above):
            check.fail(f"{where}.above", "give one of 'reference' (a result id) and 'value'")
        value = (_valued(check, results, above["reference"], f"{where}.above.reference").value
                 if "reference" in above else check.number(above["value"], f"{where}.above.value", 0, 1))
        label = check.text(above["label"], f"{where}.above.label")
        modern.append(Goal(dataset, _percent(check.number(goal["accuracy"], f"{where}.accuracy", 0, 1)),
                           f"{_percent(value):g}% ({label})", _percent(value)))
    within = {}
    for rid, points in check.mapping(goals["reproduce_within"], "goals.reproduce_within").items():
        _valued(check, results, rid, f"goals.reproduce_within.{rid}")
        within[rid] = check.number(points, f"goals.reproduce_within.{rid}", 0)
    epochs_to = {d: check.number(v, f"goals.epochs_to.{d}", 0, 1)
                 for d, v in check.mapping(goals["epochs_to"], "goals.epochs_to", list(DATASETS)).items()}
    return tuple(modern), classic, within, epochs_to


def _result(check: Layout, where: str, rid: str, values) -> Published:
    values = check.mapping(values, where, RESULT_KEYS, ("dataset", "setting", "result"))
    ours = None
    if "ours" in values:
        entry = check.mapping(values["ours"], f"{where}.ours", ("notebook", "params", "setting"),
                              ("notebook", "setting"))
        ours = (check.text(entry["notebook"], f"{where}.ours.notebook"),
                dict(check.mapping(entry.get("params", {}), f"{where}.ours.params")))
    optional = {key: check.text(values[key], f"{where}.{key}") for key in ("detail", "citation") if key in values}
    if "value" in values:
        optional["value"] = check.number(values["value"], f"{where}.value", 0, 1)
    return Published(check.choice(values["dataset"], f"{where}.dataset", list(DATASETS)),
                     check.text(values["setting"], f"{where}.setting"), check.text(values["result"], f"{where}.result"),
                     ours, values["ours"]["setting"] if ours else "",
                     check.choice(values.get("metric", METRICS[0]), f"{where}.metric", METRICS), rid, **optional)


def result(id: str) -> Published:
    """One published result of the reference file, by its id."""
    return load().result(id)
