"""The book's generated pages: tables and figures read from the run store (nothing is trained).

`render(profile)` writes Markdown fragments and PNG figures into `book/_generated/`.
The authored pages in `book/` hold the prose and pull a fragment in with
MyST's `{include}`, so the text is reviewed in git and the numbers come from
whatever the store holds when the book is built. An empty store renders too:
every table then says what is missing and which command fills it.

    python -m lenet_core.book render --profile quick

Per technique chapter the fragment has: test accuracy per setting and dataset
(mean ± 95% CI over seeds, best per column in bold, Welch's p against the
chapter's baseline), a figure per dataset (bars with error bars, validation
curves), epochs to a target validation accuracy, the train-validation gap at
the last epoch, and links to the executed notebooks in `book/runs/` (with a
hidden toctree, so each one is a page of the book).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import plots  # first: chooses a headless matplotlib backend when there is no display
from .config import SHIFT_PIXELS
from .data import DATASETS, DataError
from .experiments import (PROFILES, active_profile, experiment, ladder, load_spec, notebook_experiments,
                          param_sets, profile_settings)
from .stats import Summary, reproduced, summarize, welch_difference, welch_p
from .train import view_count

GENERATED = "_generated"  # under the book folder; build output, not committed
IMAGES = "img"

# Validation accuracy a run must reach for "epochs to target": a level a LeNet-5
# reaches on each dataset, so the column says how fast, not whether.
TARGETS = {"mnist": 0.98, "fashion_mnist": 0.88, "cifar10": 0.55}


@dataclass(frozen=True)
class Chapter:
    notebook: str
    title: str
    # The parameter set every other row is tested against: the modern default
    # network (ReLU, max pooling, PyTorch's init, Adam 1e-3 constant, no
    # regularization, no early stopping, no augmentation).
    baseline: dict


CHAPTERS = (
    Chapter("activation", "Activation functions", {"act": "relu"}),
    Chapter("pooling", "Pooling", {"pool": "max"}),
    Chapter("initialization", "Initialization", {"init": "default"}),
    Chapter("optimization", "Optimizers and learning-rate schedules",
            {"optimizer": "adam", "lr": 0.001, "schedule": "constant"}),
    Chapter("regularization", "Regularization", {"weight_decay": 0.0, "l1": 0.0, "dropout": 0.0}),
    Chapter("early_stopping", "Early stopping", {"patience": 0}),
    # batch norm is studied under SGD with momentum; its baseline is the plain network at lr 0.01
    Chapter("normalization", "Batch normalization", {"batch_norm": False, "lr": 0.01}),
    Chapter("augmentation", "Data augmentation", {"augment": "none"}),
)


# ---------------------------------------------------------------- the goals of the study

@dataclass(frozen=True)
class Goal:
    """What the study set out to reach on one dataset, and the published number it must beat."""

    dataset: str
    modern: float  # mean test accuracy (%) of the modernized network, same layer widths
    best_published: str  # the strongest LeNet-sized published number for the dataset
    best_published_value: float


GOALS = (
    Goal("mnist", 99.4, "99.3% (boosted LeNet-4, LeCun et al. 1998)", 99.3),
    Goal("fashion_mnist", 92.0, "91% (the top of the 89-91% a LeNet-5-sized network reaches, "
                                "Fashion-MNIST benchmark)", 91.0),
    Goal("cifar10", 78.0, "76.23% (ReLU LeNet + augmentation + weight decay, BIGBALLON)", 76.23),
)
CLASSIC_GOAL = (0.95, 0.2)  # the 1998 network on MNIST: the paper's test error (%), and the allowed distance


def goals_fragment(profile: str, ladders: dict, cells: dict, classic: dict) -> str:
    """Whether the numbers the study aimed for were reached, said plainly, from the store."""
    out = ["## The goals\n\nWhat this study set out to show, with the number reached (mean test accuracy over "
           f"seeds at the best-validation epoch, {profile} profile). The modernized network keeps LeNet-5's "
           "widths (6 and 16 filters, 120 and 84 units); its best rung is the one with the highest mean.\n"]
    rows = []
    error, slack = CLASSIC_GOAL
    if "mnist" in classic:
        c = classic["mnist"]
        if c.values():
            ours = 100 - 100 * c.summary().mean
            verdict = "**reached**" if abs(ours - error) <= slack else "**not reached**"
            reached = f"{ours:.2f}% test error ({c.text()} accuracy)"
        else:
            verdict, reached = "not measured yet", c.text()
        rows.append(["MNIST", f"1998 network: test error within {slack} points of the paper's {error}%",
                     reached, verdict])
    for goal in GOALS:
        if goal.dataset not in ladders:
            continue
        measured = [(r, c) for r, c in zip(ladders[goal.dataset], cells[goal.dataset]) if c.values()]
        if not measured:
            rows.append([_title(goal.dataset), f"modernized: at least {goal.modern}%, above {goal.best_published}",
                         "–", "not measured yet"])
            continue
        # The best rung, and apart from it the best that predicts from the image alone (one view):
        # published numbers are one-view numbers, so the book shows both when they differ.
        best = [max(measured, key=lambda rc: rc[1].summary().mean)]
        one_view = [(r, c) for r, c in measured if r.config.test_augment == "none"]
        if best[0][0].config.test_augment != "none" and one_view:
            best.append(max(one_view, key=lambda rc: rc[1].summary().mean))
        reached, verdicts = [], []
        for rung, cell in best:
            mean = 100 * cell.summary().mean
            if mean >= goal.modern and mean > goal.best_published_value:
                verdict = "**reached**"
            elif mean > goal.best_published_value:
                verdict = f"**not reached**: {goal.modern - mean:.2f} points short, above the published number"
            else:
                verdict = f"**not reached**: {goal.modern - mean:.2f} points short"
            if len(cell.records) < cell.expected:
                verdict += " (not every seed stored yet)"
            views = "" if rung.config.test_augment == "none" else \
                f", {view_count(rung.config.test_augment)} test-time views"
            reached.append(f"{cell.text()} ({rung.label}{views})")
            qualifier = ("with test-time augmentation: " if views else "with one view: ") if len(best) > 1 else ""
            verdicts.append(qualifier + verdict)
        rows.append([_title(goal.dataset), f"modernized: at least {goal.modern}%, above {goal.best_published}",
                     "; ".join(reached), "; ".join(verdicts)])
    rows += _published_goal_rows(profile)
    out.append(md_table(["dataset", "goal", "reached (%)", "verdict"], rows, "llrl"))
    return "\n".join(out)


def _published_goal_rows(profile: str) -> list[list[str]]:
    """Published setups with a `goal_within`: is our mean within that many points of theirs?"""
    from .experiments import published_setup, setups

    rows = []
    for name, entry in setups().items():
        within = entry.get("goal_within")
        if within is None or entry["dataset"] not in profile_settings("published", profile)["datasets"]:
            continue
        cell = _cell(published_setup(name, profile=profile))
        metric, published = entry["published_metric"], entry["published_value"]
        goal = (f"{entry['title']}: within {within:g} point{'' if within == 1 else 's'} of the published "
                f"{100 * published:.2f}%")
        if not cell.values(metric):
            rows.append([_title(entry["dataset"]), goal, cell.text(metric), "not measured yet"])
            continue
        gap = 100 * (cell.summary(metric).mean - published)
        verdict = ("**reached**" if abs(gap) <= within
                   else f"**not reached**: {abs(gap):.2f} points {'below' if gap < 0 else 'above'} "
                        f"(the Published page lists the differences between the protocols)")
        if len(cell.records) < cell.expected:
            verdict += " (not every seed stored yet)"
        rows.append([_title(entry["dataset"]), goal, cell.text(metric), verdict])
    return rows


# ---------------------------------------------------------------- published numbers

@dataclass(frozen=True)
class Published:
    """One published number and the run of ours closest to it (if any)."""

    dataset: str
    setting: str
    result: str  # as published; "read off the plot" where it was
    ours: tuple[str, dict] | None = None  # (notebook, parameters) of our closest setting
    ours_setting: str = ""
    metric: str = "test_acc_best"  # ours in the same metric: test, or validation where they report that


@dataclass(frozen=True)
class Source:
    name: str
    where: str  # which part of the source the numbers are from
    protocol: str  # how they were obtained, as far as the source says
    results: tuple[Published, ...]


# From ../shared/REFERENCES.md (the project's reference notes), which gives the protocol behind each.
PUBLISHED: tuple[Source, ...] = (
    Source("LeCun, Bottou, Bengio and Haffner (1998)",
           "Gradient-based learning applied to document recognition, Proc. IEEE; the MNIST results",
           "test accuracy; 20 passes over the 60,000 training images, learning rate 5e-4 falling to 1e-5 "
           "in steps, stochastic diagonal Levenberg-Marquardt, Euclidean RBF output units, weights "
           "uniform in ±2.4/F_in",
           (Published("mnist", "LeNet-5", "99.05% (0.95% error)", ("classic", {}),
                      "the 1998 network (SGD with momentum, softmax output)"),
            Published("mnist", "LeNet-5, 540,000 affinely distorted training images added", "99.2% (0.8% error)",
                      ("augmentation", {"augment": "shift"}), "modern network, random shifts"),
            Published("mnist", "boosted LeNet-4", "99.3% (0.7% error)"))),
    Source("Dive into Deep Learning (d2l.ai)", "the LeNet and batch-normalization chapters",
           ("validation accuracy at epoch 10, read off the training plots; SGD lr 0.1 "
           "(the LeNet chapter: batch 128, Xavier init)"),
           (Published("fashion_mnist", "sigmoid, average pooling", "about 73%",
                      ("published", {"setup": "d2l_lenet"}), "their setup re-run", "val_acc_best"),
            Published("fashion_mnist", "the same network with batch norm", "about 87-88%",
                      ("published", {"setup": "d2l_batch_norm"}), "their setup re-run", "val_acc_best"))),
    Source("UvA deep learning tutorials (phlippe/uvadlc_notebooks), tutorial 3", "activation functions",
           "test accuracy of an MLP 512-256-256-128 (not a convolutional network), SGD lr 1e-2 momentum 0.9, "
           "batch 256, early stopping patience 7, one seed",
           tuple(Published("fashion_mnist", name, result, ("activation", {"act": act}), f"LeNet-5, {act}")
                 for name, result, act in (("sigmoid", "10.00%", "sigmoid"), ("tanh", "87.59%", "tanh"),
                                           ("ReLU", "88.62%", "relu"), ("LeakyReLU", "88.92%", "leaky_relu"),
                                           ("ELU", "87.27%", "elu"), ("Swish", "88.73%", "silu")))),
    Source("UvA deep learning tutorials (phlippe/uvadlc_notebooks), tutorial 4", "optimizers",
           "test accuracy of a ReLU MLP with Kaiming init, 40 epochs, one seed",
           (Published("fashion_mnist", "SGD, lr 0.1", "89.09%",
                      ("optimization", {"optimizer": "sgd", "lr": 0.05, "schedule": "constant"}), "LeNet-5, SGD lr 0.05"),
            Published("fashion_mnist", "SGD + momentum 0.9", "88.83%",
                      ("optimization", {"optimizer": "momentum", "lr": 0.01, "schedule": "constant"}),
                      "LeNet-5, momentum lr 0.01"),
            Published("fashion_mnist", "Adam, lr 1e-3", "89.46%",
                      ("optimization", {"optimizer": "adam", "lr": 0.001, "schedule": "constant"}),
                      "LeNet-5, Adam lr 1e-3"))),
    Source("Fashion-MNIST benchmark (zalandoresearch/fashion-mnist)", "the README's benchmark",
           "test accuracy as submitted by contributors; a LeNet-5-sized network typically lands at 89-91%",
           (Published("fashion_mnist", "2 conv layers + max pooling", "87.6%", ("pooling", {"pool": "max"}),
                      "LeNet-5, ReLU, max pooling"),
            Published("fashion_mnist", "human", "83.5%"))),
    Source("BIGBALLON/cifar-10-cnn", "README, a ReLU LeNet one trick at a time",
           "test accuracy on official CIFAR-10, validated on the test set, one run",
           (Published("cifar10", "baseline (raw pixels)", "58.48%"),
            Published("cifar10", "+ preprocessing (per-channel normalization)", "60.41%",
                      ("published", {"setup": "bigballon_baseline"}), "their setup re-run"),
            Published("cifar10", "+ data augmentation", "75.06%",
                      ("published", {"setup": "bigballon_augmentation"}), "their setup re-run"),
            Published("cifar10", "+ weight decay", "76.23%",
                      ("published", {"setup": "bigballon_weight_decay"}), "their setup re-run"))),
    Source("rasbt/deeplearning-models", "the LeNet-5 notebooks",
           "test accuracy, one run (CIFAR-10: official, 10 epochs, 88.5% training accuracy)",
           (Published("cifar10", "tanh LeNet-5", "67.30%", ("activation", {"act": "tanh"}), "LeNet-5, tanh"),
            Published("mnist", "LeNet-5", "98.93%", ("activation", {"act": "tanh"}), "LeNet-5, tanh"))),
    Source("The pytorch-template project this one grew from", "its README",
           "validation accuracy, also used for early stopping (patience 10); Adam, Xavier init, validation "
           "split 0.1, one run",
           (Published("mnist", "sigmoid", "98.7%", ("activation", {"act": "sigmoid"}), "LeNet-5, sigmoid",
                      "val_acc_best"),
            Published("mnist", "ReLU", "98.9%", ("activation", {"act": "relu"}), "LeNet-5, ReLU", "val_acc_best"))),
)


# ---------------------------------------------------------------- one cell of a table: a setting on a dataset

@dataclass
class Cell:
    """The stored runs of one experiment (one setting on one dataset, all seeds)."""

    expected: int = 0  # seeds the profile asks for
    records: list[dict] = field(default_factory=list)  # the stored ones
    applicable: bool = True

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "ok"]

    def values(self, metric: str = "test_acc_best") -> list[float]:
        return [r["metrics"][metric] for r in self.ok if r["metrics"].get(metric) is not None]

    def summary(self, metric: str = "test_acc_best") -> Summary:
        return summarize(self.values(metric))

    def text(self, metric: str = "test_acc_best") -> str:
        """'98.91 ± 0.12 (n=3)', or what is missing: '– (0/3 seeds stored)', 'diverged (3/3)'."""
        if not self.applicable:
            return "n/a"
        if not self.records:
            return f"– (0/{self.expected} seeds stored)"
        diverged = len(self.records) - len(self.ok)
        if not self.ok:
            return f"diverged ({diverged}/{len(self.records)})"
        text = self.summary(metric).format()
        notes = []
        if len(self.records) < self.expected:
            notes.append(f"{len(self.records)}/{self.expected} seeds stored")
        if diverged:
            notes.append(f"{diverged} diverged")
        return text + (f", {', '.join(notes)}" if notes else "")


def _stored(config) -> dict | None:
    from .store import load, run_key

    try:
        return load(run_key(config))
    except DataError:  # the dataset is not prepared here, so no key can be computed
        return None


def _cell(exp) -> Cell:
    return Cell(len(exp.configs), [r for r in map(_stored, exp.configs) if r is not None])


def experiment_cell(notebook: str, dataset: str, profile: str, params: dict) -> Cell:
    try:
        exp = notebook_experiments(notebook, dataset, profile, **params)[0]
    except ValueError:  # a combination this dataset does not allow
        return Cell(applicable=False)
    return _cell(exp)


# ---------------------------------------------------------------- Markdown helpers

def md_table(headers: list[str], rows: list[list[str]], align: str = "") -> str:
    """A pipe table; `align` has one letter per column, l or r (default: first left, others right)."""
    def clean(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    align = align or "l" + "r" * (len(headers) - 1)
    lines = ["| " + " | ".join(clean(h) for h in headers) + " |",
             "|" + "|".join(":--" if a == "l" else "--:" for a in align) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def setting_label(params: dict) -> str:
    """`act=relu`; several parameters: those that are not zero (all zero: 'none')."""
    if not params:
        return "default"
    shown = {k: v for k, v in params.items() if len(params) == 1 or not (isinstance(v, (int, float))
                                                                         and not isinstance(v, bool) and v == 0)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) if shown else "none"


def _welch(a: list[float], b: list[float]) -> float:
    import warnings

    with warnings.catch_warnings():  # nearly equal seeds: scipy warns about precision, the p is still fine
        warnings.simplefilter("ignore", RuntimeWarning)
        return welch_p(a, b)


def format_p(p: float) -> str:
    if math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _figure(path: str, alt: str, caption: str) -> str:
    return f"```{{figure}} {path}\n:alt: {alt}\n:width: 100%\n\n{caption}\n```\n"


def _profile_text(settings: dict) -> str:
    size = "the whole training part" if not settings["train_size"] else f"the first {settings['train_size']:,} training examples"
    seeds = ", ".join(str(s) for s in settings["seeds"])
    epochs = f"{settings['epochs']} epoch" + ("s" if settings["epochs"] != 1 else "")
    return f"{epochs} on {size}, seeds {seeds}"


def _title(dataset: str) -> str:
    return DATASETS[dataset].title


# ---------------------------------------------------------------- executed notebooks

def _executed(out_dir: Path, notebook: str) -> dict[tuple[str, str], Path]:
    """(dataset, file stem) -> executed notebook under `<out_dir>/runs/<notebook>/`, finished ones only."""
    found = {}
    for path in sorted((out_dir / "runs" / notebook).glob("*/*.ipynb")):
        if path.name.startswith(".") or path.name.endswith(".failed.ipynb"):
            continue  # in flight, or kept for debugging
        found[(path.parent.name, path.stem)] = path
    return found


def _executed_profile(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["metadata"]["papermill"]["parameters"].get("profile")
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def notebooks_section(notebook: str, out_dir: Path, profile: str, heading: str = "##", prefix: str = "") -> str:
    """A table linking the executed notebooks behind a chapter, plus a hidden toctree for them
    (entries titled "<prefix><dataset>: <setting>", the titles the sidebar shows)."""
    from .sweep import slug

    found = _executed(out_dir, notebook)
    text = f"{heading} The executed notebooks\n\n"
    if not found:
        return text + (f"No executed notebooks of `{notebook}` yet: `make sweep PROFILE={profile}` "
                       f"writes them into `book/runs/{notebook}/`.\n")
    datasets = list(profile_settings(notebook, profile)["datasets"])
    datasets += sorted({d for d, _ in found if d not in datasets and d in DATASETS})
    sets = param_sets(notebook)
    known = {slug(p): p for p in sets}
    rows, entries = [], []
    for params in sets:
        row = [f"`{setting_label(params)}`"]
        for d in datasets:
            path = found.get((d, slug(params)))
            if path is None:
                row.append("–")
                continue
            docname = f"runs/{notebook}/{d}/{path.stem}"
            other = _executed_profile(path)
            note = f" ({other} profile)" if other and other != profile else ""
            row.append(f"{{doc}}`notebook{note} <{docname}>`")
            entries.append(f"{prefix}{_title(d)}: {setting_label(params)} <{docname}>"
                           if len(sets) > 1 else f"{prefix}{_title(d)} <{docname}>")
        rows.append(row)
    text += ("Each notebook below ran with one setting on one dataset; it trains or loads all seeds, "
             "shows their learning curves and the diagnostics of the technique.\n\n")
    text += md_table(["setting"] + [_title(d) for d in datasets], rows, "l" * (1 + len(datasets)))
    extra = [(d, s) for (d, s) in found if s not in known or d not in datasets]
    if extra:
        text += "\nOther executed notebooks (settings no longer in `notebooks/sweep.yml`):\n\n"
        for d, s in extra:
            docname = f"runs/{notebook}/{d}/{s}"
            text += f"- {{doc}}`{d}: {s} <{docname}>`\n"
            entries.append(f"{prefix}{d}: {s} <{docname}>")
    text += "\n```{toctree}\n:hidden:\n:titlesonly:\n\n" + "\n".join(entries) + "\n```\n"
    return text


# ---------------------------------------------------------------- figures

def _bars(ax, labels: list[str], cells: list[Cell], highlight: int | None, metric: str = "test_acc_best"):
    """Horizontal bars of mean accuracy (percent) with 95% CI whiskers and each seed as a dot."""
    import numpy as np

    summaries = [c.summary(metric) for c in cells]
    lows = [100 * (s.mean - (0 if math.isnan(s.half_width) else s.half_width)) for s in summaries if s.n]
    highs = [100 * (s.mean + (0 if math.isnan(s.half_width) else s.half_width)) for s in summaries if s.n]
    seeds = [100 * v for c in cells for v in c.values(metric)]
    lo = min(lows + seeds, default=0.0)
    hi = max(highs + seeds, default=100.0)
    pad = max(0.5, 0.08 * (hi - lo))
    left, right = max(0.0, lo - pad), min(100.0, hi + pad)
    if right - left < 1:
        left, right = max(0.0, left - 0.5), min(100.0, right + 0.5)
    y = np.arange(len(cells))[::-1]
    for i, (yi, cell, s) in enumerate(zip(y, cells, summaries)):
        color = "tab:orange" if i == highlight else "tab:blue"
        if not s.n:
            reason = ("n/a" if not cell.applicable else "no runs stored" if not cell.records else "diverged")
            ax.text(left, yi, f"  {reason}", va="center", fontsize=8, color="0.4")
            continue
        err = None if math.isnan(s.half_width) else [[100 * s.half_width], [100 * s.half_width]]
        ax.barh(yi, 100 * s.mean - left, left=left, color=color, alpha=0.75, height=0.6)
        ax.errorbar(100 * s.mean, yi, xerr=err, fmt="none", color="black", capsize=3, linewidth=1)
        vals = [100 * v for v in cell.values(metric)]
        ax.scatter(vals, [yi] * len(vals), s=10, color="black", zorder=3)
    ax.set_yticks(y, labels)
    ax.set_xlim(left, right)
    ax.set_xlabel(plots.LABELS[metric] + " (%)")
    plots._style(ax)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chapter_figure(labels: list[str], cells: list[Cell], baseline: int | None, title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    # one above the other: the book's text column is narrow, side by side would be unreadable
    bars_height = max(2.4, 0.32 * len(cells) + 1.0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, bars_height + 4.0), layout="constrained",
                                      gridspec_kw={"height_ratios": [bars_height, 4.0]})
    _bars(top, labels, cells, baseline)
    top.set_title("test accuracy: mean, 95% CI, seeds")
    groups = {label: cell.records for label, cell in zip(labels, cells) if cell.records}
    plots.learning_curves(groups, metric="val_acc", ax=bottom)
    if groups:
        bottom.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    bottom.set_title("validation accuracy per epoch (mean, min-max band)")
    fig.suptitle(title)
    _save(fig, path)


# ---------------------------------------------------------------- chapter summaries

def epochs_to_target(cell: Cell, target: float) -> str:
    if not cell.applicable:
        return "n/a"
    if not cell.records:
        return "–"
    reached = []
    for r in cell.records:
        hit = next((h["epoch"] for h in r["history"] if h["val_acc"] is not None and h["val_acc"] >= target), None)
        if hit is not None:
            reached.append(hit)
    if not reached:
        return "not reached"
    mean = sum(reached) / len(reached)
    return f"{mean:.1f} ({len(reached)}/{len(cell.records)} seeds)"


def last_epoch_gap(cell: Cell) -> str:
    if not cell.applicable:
        return "n/a"
    last = [r["history"][-1] for r in cell.ok if r["history"] and r["history"][-1]["train_acc"] is not None]
    if not last:
        return "–" if not cell.records else "diverged"
    train = sum(h["train_acc"] for h in last) / len(last)
    val = sum(h["val_acc"] for h in last) / len(last)
    return f"{100 * (train - val):+.2f} ({_pct(train)} − {_pct(val)}, n={len(last)})"


def chapter_fragment(chapter: Chapter, profile: str, out_dir: Path) -> str:
    nb = chapter.notebook
    settings = profile_settings(nb, profile)
    datasets = list(settings["datasets"])
    sets = param_sets(nb)
    labels = [setting_label(p) for p in sets]
    base = sets.index(chapter.baseline) if chapter.baseline in sets else None
    grid = {d: [experiment_cell(nb, d, profile, p) for p in sets] for d in datasets}
    stored = sum(len(c.records) for cells in grid.values() for c in cells)
    expected = sum(c.expected for cells in grid.values() for c in cells)

    out = [f"## Summary\n\nProfile **{profile}**: {_profile_text(settings)}; "
           f"{stored} of {expected} runs stored. Baseline row: `{setting_label(chapter.baseline)}` "
           f"(the modern default network).\n"]
    if "cifar10" in datasets:
        out.append(_cifar_note())
    # accuracy table
    headers = ["setting"]
    for d in datasets:
        headers += [_title(d), f"p ({_title(d)})"]
    best = {}
    for d in datasets:
        means = [c.summary().mean if c.summary().n else -1 for c in grid[d]]
        best[d] = max(range(len(means)), key=means.__getitem__) if max(means, default=-1) >= 0 else None
    rows = []
    for i, label in enumerate(labels):
        row = [f"`{label}`" + (" (baseline)" if i == base else "")]
        for d in datasets:
            cell = grid[d][i]
            text = cell.text()
            row.append(f"**{text}**" if i == best[d] else text)
            if i == base:
                row.append("baseline")
            elif base is None or not cell.applicable:
                row.append("–")
            else:
                row.append(format_p(_welch(cell.values(), grid[d][base].values())))
        rows.append(row)
    out.append("### Test accuracy\n\n"
               "Test accuracy (%) at each run's best-validation epoch: mean ± 95% confidence interval "
               "(Student's t) over the seeds that did not diverge, n = their number. **Bold**: the highest "
               "mean in the column. p: two-sided Welch's t-test of the row against the baseline row "
               "(with two or three seeds, only large differences can reach a small p). – : no run stored "
               "yet; n/a: a combination the dataset does not allow.\n")
    out.append(md_table(headers, rows))
    # figures
    out.append("### Per dataset\n")
    any_figure = False
    for d in datasets:
        if not any(c.records for c in grid[d]):
            continue
        any_figure = True
        name = f"{nb}_{d}.png"
        chapter_figure(labels, grid[d], base, f"{chapter.title} on {_title(d)} ({profile} profile)",
                       out_dir / GENERATED / IMAGES / name)
        out.append(_figure(f"{GENERATED}/{IMAGES}/{name}", f"{chapter.title} on {_title(d)}",
                           f"{_title(d)}. Top: test accuracy per setting, bar = mean, whisker = 95% CI, dots = "
                           f"seeds; the baseline is orange; the axis is zoomed to the data. Bottom: validation "
                           f"accuracy per epoch, mean over seeds with the min-max band."))
    if not any_figure:
        out.append(f"No runs stored yet for this profile; `make book PROFILE={profile}` (or `make sweep`) "
                   f"trains them.\n")
    # epochs to target
    out.append("### Epochs to the target validation accuracy\n\n"
               "The first epoch at which validation accuracy reached the target, averaged over the seeds "
               "that reached it (how many did, in brackets); \"not reached\" when none did within the "
               "profile's epochs.\n")
    out.append(md_table(["setting"] + [f"{_title(d)} (≥ {100 * TARGETS[d]:.0f}%)" for d in datasets],
                        [[f"`{label}`"] + [epochs_to_target(grid[d][i], TARGETS[d]) for d in datasets]
                         for i, label in enumerate(labels)]))
    # gap
    out.append("### Train-validation gap at the last epoch\n\n"
               "Training accuracy minus validation accuracy at the last epoch, in points (train − val, mean "
               "over seeds). Training accuracy is measured on the batches as they were trained, so with "
               "dropout or augmentation it is measured on the harder, perturbed inputs.\n")
    out.append(md_table(["setting"] + [_title(d) for d in datasets],
                        [[f"`{label}`"] + [last_epoch_gap(grid[d][i]) for d in datasets]
                         for i, label in enumerate(labels)]))
    out.append(notebooks_section(nb, out_dir, profile, heading="##"))
    return "\n".join(out)


def _cifar_note() -> str:
    """The caveat on pages with CIFAR-10 numbers, while the book publishes a lossy copy of it."""
    from . import data
    from .experiments import published_copy

    copy = published_copy("cifar10")
    if copy == data.OFFICIAL:
        return ""
    return (f"\n```{{note}}\nCIFAR-10 numbers on this page come from a lossy {copy.upper()} copy of CIFAR-10 "
            f"(see the Method page), not the official files. They are close to, but not the same as, "
            f"accuracies on official CIFAR-10.\n```\n")


# ---------------------------------------------------------------- results: the ladder and the references

def _ladder_datasets(profile: str) -> list[str]:
    return list(profile_settings("modern", profile)["datasets"])


def ladder_figure(rungs, cells: list[Cell], title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, max(3.2, 0.38 * len(rungs) + 1.4)), layout="constrained")
    _bars(ax, [r.label for r in rungs], cells, highlight=len(rungs) - 1)
    ax.set_title(title)
    _save(fig, path)


def results_fragment(profile: str, out_dir: Path) -> str:
    from .report import ladder_table

    out = []
    datasets = _ladder_datasets(profile)
    ladders = {d: ladder(dataset=d, profile=profile) for d in datasets}
    cells = {d: [_cell(r) for r in ladders[d]] for d in datasets}
    classic = {d: experiment_cell("classic", d, profile, {}) for d in datasets}
    top = ladders[datasets[0]][-1].label if datasets else "top rung"
    classic_epochs = profile_settings("classic", profile)["epochs"]
    modern_settings = profile_settings("modern", profile)

    top_epochs = {}  # the top rung may train longer than the ladder's budget, more on some datasets
    for d in datasets:
        top_epochs.setdefault(ladders[d][-1].config.epochs, []).append(_title(d))
    top_text = "; ".join(f"{e} epochs on {', '.join(names)}" for e, names in top_epochs.items())
    out.append(f"## Headline\n\nProfile **{profile}**. The 1998 network as the classic notebook trains it "
               f"({classic_epochs} epoch{'s' if classic_epochs != 1 else ''}), the same network at the start of "
               f"the ladder with the ladder's budget ({_profile_text(modern_settings)}), and the top of the "
               f"ladder (\"{top}\", every change applied{f': {top_text}' if top_text else ''}). "
               f"Test accuracy (%) at the best-validation epoch, "
               f"mean ± 95% CI; gain and Welch's p compare the top rung with the ladder's start.\n")
    if "cifar10" in datasets:
        out.append(_cifar_note())
    rows = []
    for d in datasets:
        start, end = cells[d][0], cells[d][-1]
        if start.summary().n and end.summary().n:
            gain = f"{100 * (end.summary().mean - start.summary().mean):+.2f}"
            p = format_p(_welch(end.values(), start.values()))
        else:
            gain = p = "–"
        published = "99.05 (LeCun et al. 1998)" if d == "mnist" else "–"
        rows.append([_title(d), classic[d].text(), start.text(), f"**{end.text()}**", gain, p, published])
    out.append(md_table(["dataset", f"LeNet-5 (1998), classic notebook", "1998 network, ladder start",
                         f"fully modernized ({top})", "gain (points)", "p", "published, 1998 network"], rows))

    out.append(goals_fragment(profile, ladders, cells, classic))
    out.append("## The modernization ladder\n\nEach rung adds one change to the rung above it, so the "
               "difference between neighbouring rungs is what that change adds on top of everything "
               "before it. Δ and p compare each rung with the previous one.\n")
    for d in datasets:
        rungs = ladders[d]
        out.append(f"### {_title(d)}\n")
        if any(c.records for c in cells[d]):
            name = f"ladder_{d}.png"
            ladder_figure(rungs, cells[d], f"The ladder on {_title(d)} ({profile} profile)",
                          out_dir / GENERATED / IMAGES / name)
            out.append(_figure(f"{GENERATED}/{IMAGES}/{name}", f"ladder on {_title(d)}",
                               f"{_title(d)}: test accuracy per rung, bar = mean, whisker = 95% CI, dots = seeds; "
                               f"the top rung is orange; the axis is zoomed to the data."))
        changes = ladder_table(rungs, {r.label: c.records for r, c in zip(rungs, cells[d])})["change"].tolist()
        rows = []
        for i, (rung, cell) in enumerate(zip(rungs, cells[d])):
            prev = cells[d][i - 1] if i else None
            if prev is not None and prev.summary().n and cell.summary().n:
                delta = f"{100 * (cell.summary().mean - prev.summary().mean):+.2f}"
                p = format_p(_welch(cell.values(), prev.values()))
            else:
                delta = p = "–"
            rows.append([rung.label, f"`{changes[i]}`" if i else changes[i], cell.text(), delta, p])
        out.append(md_table(["rung", "change", "test accuracy (%)", "Δ (points)", "p"], rows, "llrrr"))

    out.append("## Beside the published numbers\n\n"
               "Published results with the protocol behind each, and our closest measured setting in the "
               f"{profile} profile. Networks, budgets and protocols differ (most published numbers are one run, "
               "several select on the test set or report validation accuracy), so read the pairs as a sanity "
               "check of the order of magnitude, not as a replication. Our column uses the same metric as the "
               "published one (test, or validation where the source reports validation accuracy). The published "
               "numbers and their protocols are kept in `PUBLISHED` in `lenet_core/book.py`.\n")
    for source in PUBLISHED:
        out.append(f"### {source.name}\n\n*{source.where}*; {source.protocol}.\n")
        rows = []
        for ref in source.results:
            if ref.ours is None:
                ours, setting = "not measured here", "–"
            else:
                notebook, params = ref.ours
                if ref.dataset not in profile_settings(notebook, profile)["datasets"]:
                    ours = f"not in the {profile} profile"
                else:
                    ours = experiment_cell(notebook, ref.dataset, profile, params).text(ref.metric)
                setting = f"{ref.ours_setting} ({{doc}}`{notebook} page <{notebook}>`)" \
                    if notebook in {c.notebook for c in CHAPTERS} | {"published"} else ref.ours_setting
            metric = "validation" if ref.metric.startswith("val") else "test"
            rows.append([_title(ref.dataset), ref.setting, ref.result, ours, metric, setting])
        out.append(md_table(["dataset", "their setting", "their result", "ours (%)", "our metric", "our setting"],
                            rows, "llrrll"))
    out.append(notebooks_section("classic", out_dir, profile, heading="##", prefix="1998 network, ").replace(
        "## The executed notebooks", "## The executed notebooks: the 1998 network"))
    out.append(notebooks_section("modern", out_dir, profile, heading="##", prefix="ladder, ").replace(
        "## The executed notebooks", "## The executed notebooks: the ladder"))
    return "\n".join(out)


# ---------------------------------------------------------------- published setups, re-run

def _protocol(config) -> str:
    parts = [f"{config.act}, {config.pool} pooling, {config.init} init", f"{config.optimizer} lr {config.lr:g}",
             f"{config.schedule} schedule", f"batch {config.batch_size}", f"{config.epochs} epochs"]
    if config.batch_norm:
        parts.insert(1, "batch norm")
    if config.augment != "none":
        shift = config.shift_pixels or SHIFT_PIXELS[config.dataset]
        parts.append(f"augment {config.augment}" + (f" (shifts up to {shift} px)" if "shift" in config.augment else ""))
    if config.weight_decay:
        parts.append(f"weight decay {config.weight_decay:g}")
    if config.test_augment != "none":
        parts.append(f"test-time views: {config.test_augment}")
    if not config.normalize:
        parts.append("pixel values in [0, 1] as inputs")
    return ", ".join(parts)


def published_fragment(profile: str, out_dir: Path) -> str:
    """The published setups re-run with their own protocol, beside the published numbers."""
    from .experiments import published_setup, setups

    out = [f"## Ours beside theirs\n\nProfile **{profile}**. Each setup is trained as published (the full "
           "profile uses the published number of epochs; the shorter profiles shorten every setup alike). "
           "Ours: mean ± 95% CI over seeds, in the metric the source reports. A source reports one run, so "
           "it counts as reproduced when it lies inside the 95% prediction interval of our seeds (where one "
           "more run of ours would fall: mean ± t·s·√(1 + 1/n)). With three seeds t is 4.30, so the interval "
           "is wide: \"yes\" says that our runs do not contradict the published one, not that the means "
           "agree; the difference column says how far apart they are. The differences that remain between "
           "the protocols are listed above the table.\n"]
    rows = []
    for name, entry in setups().items():
        exp = published_setup(name, profile=profile)
        metric = entry["published_metric"]
        difference = verdict = "–"
        if entry["dataset"] in profile_settings("published", profile)["datasets"]:
            cell = _cell(exp)
            ours = cell.text(metric)
            if cell.values(metric):
                difference = f"{100 * (cell.summary(metric).mean - entry['published_value']):+.2f}"
                verdict = reproduced(cell.values(metric), entry["published_value"])
        else:
            ours = f"not in the {profile} profile"
        rows.append([entry["title"], _title(entry["dataset"]), _protocol(exp.config), entry["published"],
                     ours, difference, verdict, "validation" if metric.startswith("val") else "test"])
    out.append(md_table(["setup", "dataset", "protocol (ours)", "published", "ours (%)",
                         "ours − published (points)", "reproduced", "our metric"], rows, "lllrrrll"))
    if "cifar10" in profile_settings("published", profile)["datasets"]:
        out.append(_cifar_note())
    out.append(notebooks_section("published", out_dir, profile))
    return "\n".join(out)


# ---------------------------------------------------------------- method, reproduce, introduction

def _plan_records(profile: str) -> tuple[dict[str, object], dict[str, dict]]:
    """Unique configurations the profile's sweep runs (by key) and the stored records among them."""
    from .store import load, run_key
    from .sweep import plan

    jobs, _ = plan(profile)
    configs, records = {}, {}
    for job in jobs:
        for config in job.configs:
            try:
                key = run_key(config)
            except DataError:
                key = f"unprepared:{config.canonical_json()}"
            configs.setdefault(key, (job.notebook, config))
            if key not in records and not key.startswith("unprepared:"):
                record = load(key)
                if record is not None:
                    records[key] = record
    return configs, records


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def method_fragment(profile: str) -> str:
    from . import data

    spec = load_spec()
    out = ["## The profiles\n\nFrom `notebooks/sweep.yml`. A notebook may override its profile (last column).\n"]
    rows = []
    for name in PROFILES:
        p = spec["profiles"][name]
        overrides = [f"{nb}: " + ", ".join(f"{k} {v}" for k, v in entry[name].items())
                     for nb, entry in spec["notebooks"].items() if name in entry]
        rows.append([f"**{name}**" if name == profile else name, str(p["epochs"]),
                     "all" if not p["train_size"] else f"{p['train_size']:,}",
                     ", ".join(map(str, p["seeds"])), ", ".join(_title(d) for d in p["datasets"]),
                     "; ".join(overrides) or "–"])
    out.append(md_table(["profile", "epochs", "training examples", "seeds", "datasets", "notebook overrides"], rows, "lrrlll"))
    out.append(f"This build shows the **{profile}** profile.\n")

    configs, records = _plan_records(profile)
    out.append(f"## Hardware and software\n\nFrom the provenance of the {len(records)} stored runs of the "
               f"{profile} profile ({len(configs)} planned).\n")
    if records:
        groups = Counter((p["device"], p["device_name"], p["host"], p["torch"], p["python"], p["threads"])
                         for p in (r["provenance"] for r in records.values()))
        rows = [[dev, name, host, torch, py, str(threads), str(n)]
                for (dev, name, host, torch, py, threads), n in groups.most_common()]
        out.append(md_table(["device", "device name", "host", "torch", "python", "threads", "runs"], rows, "lllllrr"))
        dates = sorted(r["provenance"]["date"] for r in records.values())
        speeds = sorted(r["provenance"]["train_images_per_second"] for r in records.values())
        out.append(f"Trained between {dates[0][:16].replace('T', ' ')} and {dates[-1][:16].replace('T', ' ')} "
                   f"(UTC); median throughput {speeds[len(speeds) // 2]:,.0f} training images per second "
                   f"per run.\n")
    else:
        out.append("No runs of this profile are stored yet.\n")

    out.append(data_fragment())
    out.append(copy_comparison_fragment(profile))
    return "\n".join(out)


def data_fragment() -> str:
    """Each copy of each dataset: what it is, where it came from, and what the book uses it for."""
    from . import data
    from .experiments import copies_in_progress, published_copy

    out = ["## The data\n\nEach copy of each dataset, from its provenance record (`data/<name>.json`, written "
           "when the copy was imported and verified).\n"]
    rows = []
    for name, copies in data.COPIES.items():
        for copy in copies:
            use = ("published in this book" if copy == published_copy(name)
                   else "being trained, not yet published" if copy in copies_in_progress()
                   else "only to measure what it costs (below)")
            try:
                prov = data.provenance(name, copy)
            except DataError:
                rows.append([_title(name), copy, "not prepared here", "–", "–", "–", use])
                continue
            rows.append([_title(name), prov["copy"], prov["source"], "**yes**" if prov["lossy"] else "no",
                         f"{prov['n_train']:,} / {prov['n_test']:,}", f"`{prov['content_sha256'][:16]}`", use])
    out.append(md_table(["dataset", "copy", "source", "lossy", "train / test images", "content SHA-256 (prefix)",
                         "used"], rows, "llllrll"))
    return "\n".join(out)


def copy_comparison_fragment(profile: str) -> str:
    """What the lossy copy cost: the same runs, same seeds, on the official files and on the copy."""
    from .experiments import copies_in_progress, copy_comparison

    pairs = copy_comparison(profile)
    entry = load_spec().get("copy_comparison")
    if not entry:
        return ""
    copy = entry["copy"].upper()
    out = [f"## What the {copy} copy cost\n"]
    if not pairs:
        return "\n".join(out + [f"Measured in the full profile only; this build shows the **{profile}** profile.\n"])
    official = [_cell(p.official) for p in pairs]
    other = [_cell(p.other) for p in pairs]
    stored, expected = sum(len(c.records) for c in official), sum(c.expected for c in official)
    if "official" in copies_in_progress() or stored < expected:
        return "\n".join(out + [f"Pending: {stored} of {expected} runs of this comparison on the official files "
                                 f"are stored. The comparison appears here when all of them are.\n"])
    out.append(f"The same configurations with the same seeds, trained and tested once on the official "
               f"{_title(entry['dataset'])} files and once on the {copy} copy: test accuracy (%) at the "
               f"best-validation epoch, mean ± 95% CI over seeds; the difference is official − {copy} with "
               f"its 95% interval from Welch's t, and p is Welch's two-sided test. Each side is tested on its "
               f"own copy of the test set, as a reader of either copy would test.\n")
    rows, diffs = [], []
    for pair, a, b in zip(pairs, official, other):
        d = welch_difference(a.values(), b.values())
        diffs.append(d)
        interval = (f"{100 * d.mean:+.2f} ({100 * d.low:+.2f} to {100 * d.high:+.2f})"
                    if d.n >= 2 else "–")
        p = welch_p(a.values(), b.values())
        rows.append([pair.label, ", ".join(map(str, pair.official.seeds)), a.text(), b.text(), interval,
                     "–" if math.isnan(p) else f"{p:.3f}"])
    out.append(md_table(["run", "seeds", "official (%)", f"{copy} (%)", f"official − {copy} (points, 95% CI)",
                         "Welch's p"], rows, "llrrrr"))
    better = [pair.label for pair, d in zip(pairs, diffs) if d.n >= 2 and d.low > 0]
    worse = [pair.label for pair, d in zip(pairs, diffs) if d.n >= 2 and d.high < 0]
    mean = sum(d.mean for d in diffs) / len(diffs)
    sentences = [f"Averaged over the {len(pairs)} settings, the official files score {100 * mean:+.2f} points "
                 f"against the {copy} copy."]
    if better:
        sentences.append(f"The official files score higher, with a 95% interval above zero, for: {', '.join(better)}.")
    if worse:
        sentences.append(f"They score lower, with a 95% interval below zero, for: {', '.join(worse)}.")
    undecided = len(pairs) - len(better) - len(worse)
    if undecided:
        sentences.append(f"For the other {undecided} the interval includes zero: at these seeds the copies "
                         f"cannot be told apart there.")
    out.append(" ".join(sentences) + "\n")
    return "\n".join(out)


def reproduce_fragment(profile: str) -> str:
    out = ["## Measured time\n\nSums over the stored runs of each profile, from their provenance: wall time "
           "includes loading data and evaluating, training time only the epochs. The sweep runs one "
           "notebook per CPU core, so the elapsed time of a sweep is about the wall time divided by the "
           "number of cores, plus a few seconds per notebook for loading and figures (each core's "
           "kernel stays running between notebooks, so torch is imported once).\n"]
    rows = []
    env = os.environ.get("LENET_PROFILE")
    per_notebook = {}
    for name in ([active_profile(profile)] if env else PROFILES):
        configs, records = _plan_records(name)
        wall = sum(r["provenance"]["wall_seconds"] for r in records.values())
        train = sum(r["provenance"]["train_seconds"] for r in records.values())
        devices = Counter(r["provenance"]["device"] for r in records.values())
        rows.append([f"**{name}**" if name == profile else name, str(len(configs)), str(len(records)),
                     _duration(wall) if records else "–", _duration(train) if records else "–",
                     ", ".join(f"{d} ({n})" for d, n in devices.most_common()) or "–"])
        if name == profile:
            for key, (nb, _) in configs.items():
                entry = per_notebook.setdefault(nb, [0, 0, 0.0])
                entry[0] += 1
                if key in records:
                    entry[1] += 1
                    entry[2] += records[key]["provenance"]["wall_seconds"]
    out.append(md_table(["profile", "runs planned", "runs stored", "wall time (h:mm:ss)", "training time",
                         "devices (runs)"], rows, "lrrrrl"))
    out.append(f"\nPer notebook in the {profile} profile (a run shared by two notebooks, such as the "
               f"default network, is counted under the first):\n")
    out.append(md_table(["notebook", "runs planned", "runs stored", "wall time"],
                        [[f"`{nb}`", str(a), str(b), _duration(c) if b else "–"]
                         for nb, (a, b, c) in per_notebook.items()]))
    return "\n".join(out)


def intro_fragment(out_dir: Path) -> str:
    import torch

    from . import data
    from .config import RunConfig
    from .experiments import describe_network

    out = ["## The datasets, as the network sees them\n"]
    from .experiments import published_copy

    for name, spec in DATASETS.items():
        try:
            s = data.splits(name, "cpu", copy=published_copy(name))
        except DataError as exc:
            out.append(f"**{spec.title}**: not prepared here ({exc}).\n")
            continue
        idx = torch.cat([torch.nonzero(s.train_y == k).flatten()[:2] for k in range(len(spec.classes))])
        fig = plots.image_grid(s.train_x[idx], s.mean, s.std, s.train_y[idx], spec.classes, nrow=10)
        file = f"samples_{name}.png"
        _save(fig, out_dir / GENERATED / IMAGES / file)
        prov = s.provenance
        del s
        data.splits.cache_clear()  # a normalized CIFAR-10 is most of a gigabyte
        padded = " and padded to 32x32" if prov["shape"][-1] < 32 else ""
        caption = (f"{spec.title}: two training images per class, normalized{padded} as the network gets "
                   f"them, shown back in pixel units. {prov['n_train']:,} training and {prov['n_test']:,} test "
                   f"images; data: {prov['copy']}")
        out.append(_figure(f"{GENERATED}/{IMAGES}/{file}", f"{spec.title} samples", caption))
    out.append("## The two ends of the study\n")
    for title, config in (("The 1998 network", RunConfig.classic("mnist")), ("The modern default", RunConfig())):
        out.append(f"- **{title}**: {describe_network(config)}.")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- render

def _write(path: Path, text: str) -> Path:
    from .paths import atomic_write

    return atomic_write(path, lambda tmp: tmp.write_text(text))


def render(profile: str, out_dir: str | os.PathLike = "book", log=print) -> list[Path]:
    """Write every generated fragment and figure of the book for `profile` from the run store.

    Fragments go to `<out_dir>/_generated/<page>.md` (included by the authored
    page of the same name) and figures to `<out_dir>/_generated/img/`. The
    folder is replaced as a whole, so no stale figure survives a render.
    """
    from .paths import project_root

    profile = active_profile(profile)
    out_dir = Path(out_dir)
    if not out_dir.is_absolute():
        out_dir = project_root() / out_dir
    target = out_dir / GENERATED
    shutil.rmtree(target, ignore_errors=True)
    header = (f"<!-- generated by `python -m lenet_core.book render --profile {profile}` from the run store; "
              f"do not edit -->\n\n")
    written = []
    pages = {"intro": lambda: intro_fragment(out_dir), "method": lambda: method_fragment(profile),
             "results": lambda: results_fragment(profile, out_dir),
             "reproduce": lambda: reproduce_fragment(profile),
             "published": lambda: published_fragment(profile, out_dir)}
    pages.update({c.notebook: (lambda c=c: chapter_fragment(c, profile, out_dir)) for c in CHAPTERS})
    for page, make in pages.items():
        written.append(_write(target / f"{page}.md", header + make()))
        if log:
            log(f"rendered {written[-1]}")
    written += sorted((target / IMAGES).glob("*.png"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet_core.book",
                                     description="Render the book's summary pages from the run store.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("render", help="write book/_generated/ (Markdown fragments and figures)")
    p.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)} (default quick)")
    p.add_argument("--out", default="book", help="the book folder (default: book/ of the checkout)")
    args = parser.parse_args(argv)
    try:
        written = render(args.profile, args.out, log=None)
    except (ValueError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"rendered {len(written)} files into {Path(written[0]).parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
