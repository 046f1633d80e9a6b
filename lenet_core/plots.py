"""The book's figures, drawn from stored runs (`Runs`, or the records `train` returns and the store keeps).

Every function draws into an Axes it is given, or into a new figure, and
returns the Figure, so a notebook can either compose panels or show one plot.
A diverged run (status "diverged", None values in its last epoch, no test
metrics) is drawn as far as it got and named as diverged; it never raises.

Styling is set in one place (`style`, `_new_axes`) and kept plain, so every
chapter's figures look alike without seaborn.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Sequence

import matplotlib

# Headless builds (tests, CI, `jupyter-book build` outside a kernel) must never
# try a GUI backend; inside a Jupyter kernel or with a display, keep the default.
if "ipykernel" not in sys.modules and not os.environ.get("MPLBACKEND") \
        and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .records import Run, Runs  # noqa: E402
from .stats import summarize  # noqa: E402

# Readable axis labels for record fields; anything else is shown as its key.
LABELS = {
    "epoch": "epoch",
    "seconds": "wall-clock time (s)",
    "train_loss": "training loss",
    "train_acc": "training accuracy",
    "val_loss": "validation loss",
    "val_acc": "validation accuracy",
    "val_acc_raw": "validation accuracy, the network as trained",
    "val_loss_raw": "validation loss, the network as trained",
    "lr": "learning rate",
    "test_acc_best": "test accuracy (best-validation epoch)",
    "test_acc_last": "test accuracy (last epoch)",
    "test_loss_best": "test loss (best-validation epoch)",
    "test_loss_last": "test loss (last epoch)",
    "best_epoch": "best epoch",
    "epochs_run": "epochs run",
}


def _label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def style(ax: Axes) -> Axes:
    """The house style: light grid behind the data, no top/right frame."""
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax


def _new_axes(ax: Axes | None, figsize=(6.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _to_numpy(values) -> np.ndarray:
    """A tensor (any device, with or without grad), array or list as a float numpy array."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=float)


# ---------------------------------------------------------------- training curves

def _curve(run: Run, metric: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, metric) per epoch of one run; None (a diverged epoch) becomes nan."""
    history = run.history
    y = np.array([np.nan if h.get(metric) is None else h[metric] for h in history], dtype=float)
    if x == "epoch":
        xs = np.array([h["epoch"] for h in history], dtype=float)
    elif x == "seconds":
        xs = np.cumsum([h["seconds"] or 0.0 for h in history], dtype=float)
    else:
        raise ValueError(f"unknown x {x!r}; valid: epoch, seconds")
    return xs, y


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    """Runs of different lengths (early stopping, divergence) as one nan-padded seeds x epochs array."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _nan_reduce(a: np.ndarray, reduce) -> np.ndarray:
    """Column-wise reduce over the finite values; nan where a column has none (no warning)."""
    finite = np.isfinite(a)
    return np.array([reduce(col[ok]) if ok.any() else np.nan for col, ok in zip(a.T, finite.T)])


def learning_curves(groups: Mapping[str, Runs | Sequence[dict]], metric: str = "val_acc", x: str = "epoch",
                    ax: Axes | None = None) -> Figure:
    """One line per group: the mean over its seeds of `metric` per epoch, with a min..max band.

    x is "epoch" or "seconds" (cumulative wall-clock training time, averaged
    over the seeds at each epoch). At each epoch the mean and band are over
    the seeds that have a finite value there, so a diverged seed stops
    contributing where it diverged, and a group whose seeds all diverged ends
    there. Groups with diverged seeds say so in the legend. The band is drawn
    only for groups of more than one seed.
    """
    ax = _new_axes(ax)
    for label, records in groups.items():
        runs = Runs(records)
        curves = [_curve(r, metric, x) for r in runs]
        xs, ys = _stack([c[0] for c in curves]), _stack([c[1] for c in curves])
        x_mean = _nan_reduce(np.where(np.isfinite(ys), xs, np.nan), np.mean)
        mean = _nan_reduce(ys, np.mean)
        name = f"{label} (diverged {runs.diverged}/{len(runs)})" if runs.diverged else label
        (line,) = ax.plot(x_mean, mean, marker="o", markersize=3, label=name)
        if len(runs) > 1:
            ax.fill_between(x_mean, _nan_reduce(ys, np.min), _nan_reduce(ys, np.max),
                            color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(metric))
    ax.set_title(f"{_label(metric)} by {_label(x)}")
    if x == "epoch":
        ax.xaxis.get_major_locator().set_params(integer=True)
    if groups:
        ax.legend(frameon=False)
    style(ax)
    return ax.figure


def averaged_curves(records: Runs | Sequence[dict], metric: str = "val_acc", ax: Axes | None = None) -> Figure:
    """A weight-averaged run's validation `metric` (val_acc or val_loss) per epoch for the averaged
    network, beside the network as trained that the average is taken of (mean over seeds, min-max band)."""
    runs = Runs(records)
    if not any(f"{metric}_raw" in e for r in runs for e in r.history):
        raise ValueError(f"these runs record no {metric}_raw: only a run with an average (ema, swa) has a raw "
                         f"network beside the averaged one")
    ax = _new_axes(ax)
    learning_curves({"as trained": runs}, metric=f"{metric}_raw", ax=ax)
    learning_curves({"averaged": runs}, metric=metric, ax=ax)
    ax.set_ylabel(_label(metric))
    ax.set_title(f"{_label(metric)}: averaged and as trained")
    return ax.figure


def update_spectra(groups: Mapping[str, Runs | Sequence[dict]], layer: str = "C5", ax: Axes | None = None) -> Figure:
    """Per group, the singular values of what training changed in `layer`'s weight matrix
    (W_trained - W_initial, each divided by its largest; mean over seeds), largest first: a flat
    curve is a change spread over many directions, a steep one a change along a few."""
    ax = _new_axes(ax)
    for label, records in groups.items():
        spectra = [r.diagnostics["update_spectrum"][layer]["singular_values"] for r in Runs(records).ok
                   if "update_spectrum" in (r.diagnostics or {})]
        if spectra:
            mean = np.mean(np.array(spectra), axis=0)
            ax.plot(np.arange(1, len(mean) + 1), mean, marker="o", markersize=2, label=f"{label} (n={len(spectra)})")
    ax.set_yscale("log")
    ax.set_xlabel("singular value, largest first")
    ax.set_ylabel("singular value / largest")
    ax.set_title(f"What training changed in {layer}")
    if ax.lines:
        ax.legend(frameon=False)
    style(ax)
    return ax.figure


def mark_epochs(ax: Axes, best_epoch: int | None, stopped_epoch: int | None) -> Figure:
    """Vertical lines at the best-validation epoch and the epoch early stopping ended the run.

    Either may be None (no best epoch in a run diverged at once; no stop
    without early stopping) and is then left out.
    """
    if best_epoch is not None:
        ax.axvline(best_epoch, color="tab:green", linestyle="--", linewidth=1,
                   label=f"best epoch ({best_epoch})")
    if stopped_epoch is not None:
        ax.axvline(stopped_epoch, color="tab:red", linestyle=":", linewidth=1,
                   label=f"stopped ({stopped_epoch})")
    ax.legend(frameon=False)
    return ax.figure


def reference_line(ax: Axes, value: float, label: str) -> Figure:
    """A published or target number as a dashed horizontal line, named in the legend."""
    ax.axhline(value, color="0.3", linestyle="--", linewidth=1, label=label)
    ax.legend(frameon=False)
    return ax.figure


# ---------------------------------------------------------------- results across seeds

def seed_scatter(groups: Mapping[str, Runs | Sequence[dict]], metric: str = "test_acc_best",
                 ax: Axes | None = None) -> Figure:
    """Per group, each seed's `metric` as a dot and the mean with its 95% t-interval.

    Few seeds make the spread itself the point: the dots show it, the bar
    says how well the mean is pinned down (`stats.summarize`, Student's t).
    One seed gets a mean marker and no bar; diverged seeds (metric None) are
    left out and counted in the tick label.
    """
    ax = _new_axes(ax, figsize=(max(4.0, 1.2 * len(groups) + 2), 4.0))
    ticks = []
    for i, (label, records) in enumerate(groups.items()):
        values = [r.metric(metric) for r in Runs(records)]
        finite = np.array([v for v in values if v is not None], dtype=float)
        jitter = np.linspace(-0.12, 0.12, len(finite)) if len(finite) > 1 else np.zeros(len(finite))
        ax.scatter(i + jitter, finite, s=18, color="0.45", zorder=2)
        s = summarize(finite)
        if s.n:
            bar = None if np.isnan(s.half_width) else s.half_width
            ax.errorbar(i + 0.3, s.mean, yerr=bar, fmt="D", color="tab:blue", markersize=5,
                        capsize=4, zorder=3)
        missing = len(values) - len(finite)
        ticks.append(f"{label}\n(n={len(finite)}" + (f", {missing} diverged)" if missing else ")"))
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set_xlim(-0.6, len(ticks) - 0.3)
    ax.set_ylabel(_label(metric))
    ax.set_title("seeds (dots) and their mean with 95% interval")
    style(ax)
    return ax.figure


def confusion(run: Run | dict, classes: Sequence[str], ax: Axes | None = None) -> Figure:
    """Row-normalized test confusion matrix (best-validation weights): row i is how class i is classified.

    Rows are normalized so each class reads as rates whatever its test count.
    A diverged record has no matrix and gets an empty panel saying so.
    """
    ax = _new_axes(ax, figsize=(6.0, 5.2))
    run = run if isinstance(run, Run) else Run(run)
    cm = run.metric("test_confusion_best")
    ax.set_title("confusion matrix (row-normalized)")
    if cm is None:
        ax.text(0.5, 0.5, f"{run.status}: no confusion matrix",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax.figure
    cm = np.asarray(cm, dtype=float)
    totals = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    for (i, j), r in np.ndenumerate(rates):
        if r >= 0.005:
            ax.text(j, i, f"{r:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if r > 0.5 else "black")
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return ax.figure


# ---------------------------------------------------------------- inside the network

def histograms(values: Mapping[str, object], bins: int = 50, ax=None, *, xlabel: str = "value") -> Figure:
    """One small histogram panel per layer (activations, gradients, weights), in the dict's order.

    A value is raw numbers (histogrammed here) or a stored histogram
    {"edges": [...], "counts": [...]} such as a run record's diagnostics hold.

    `ax` is None (a grid of up to four panels a row is made) or a sequence /
    array of Axes with at least one per layer; panels left over are hidden.
    Non-finite values are dropped so a diverged network still draws.
    """
    if ax is None:
        cols = min(4, max(1, len(values)))
        rows = max(1, -(-len(values) // cols))
        _, ax = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), layout="constrained",
                             squeeze=False)
    axes = list(np.ravel(ax))
    if len(axes) < len(values):
        raise ValueError(f"{len(values)} layers but only {len(axes)} axes")
    for panel, (name, v) in zip(axes, values.items()):
        if isinstance(v, Mapping):  # a stored histogram: {"edges": [...], "counts": [...]}
            panel.stairs(v["counts"], v["edges"], fill=True, color="tab:blue", alpha=0.8)
        else:
            data = _to_numpy(v).ravel()
            panel.hist(data[np.isfinite(data)], bins=bins, color="tab:blue", alpha=0.8)
        panel.set_title(name)
        panel.set_xlabel(xlabel)
        style(panel)
    for panel in axes[len(values):]:
        panel.set_visible(False)
    return axes[0].figure


def image_grid(images, mean, std, labels=None, classes: Sequence[str] | None = None, nrow: int = 8,
               ax: Axes | None = None) -> Figure:
    """Normalized N x C x H x W images back in pixel units, as one grid (1 or 3 channels).

    `mean` and `std` are the per-channel normalization (`Splits.mean`,
    `Splits.std`, in [0, 1] pixel units). Labels, given, are written over
    their tiles, as class names when `classes` is given.
    """
    x = _to_numpy(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be N x C x H x W with 1 or 3 channels, got shape {x.shape}")
    n, c, h, w = x.shape
    mean = _to_numpy(mean).reshape(1, -1, 1, 1)
    std = _to_numpy(std).reshape(1, -1, 1, 1)
    x = np.clip(x * std + mean, 0.0, 1.0).transpose(0, 2, 3, 1)  # N x H x W x C
    cols = min(nrow, n)
    rows = -(-n // cols)
    pad = 2
    top = pad + (h // 3 if labels is not None else 0)  # room above each tile for its label
    grid = np.ones((rows * (h + top) + pad, cols * (w + pad) + pad, c))  # white separators
    corners = [(top + r * (h + top), pad + q * (w + pad)) for r, q in (divmod(k, cols) for k in range(n))]
    for (i, j), tile in zip(corners, x):
        grid[i:i + h, j:j + w] = tile
    ax = _new_axes(ax, figsize=(1.1 * cols, 1.1 * rows * (h + top) / h))
    if c == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(grid)
    if labels is not None:
        for (i, j), label in zip(corners, _to_numpy(labels).astype(int)):
            text = classes[label] if classes is not None else str(label)
            ax.text(j + w / 2, i - 1, text, ha="center", va="bottom", fontsize=7)
    ax.set_axis_off()
    return ax.figure


__all__ = ["LABELS", "confusion", "histograms", "image_grid", "learning_curves", "mark_epochs",
           "seed_scatter", "style", "change_worth"]


# ---------------------------------------------------------------- the book's summary figures

def accuracy_bars(ax: Axes, labels: Sequence[str], values: Sequence[Sequence[float]], highlight: int | None = None,
                  metric: str = "test_acc_best", missing: Sequence[str] | None = None) -> Axes:
    """Horizontal bars of mean accuracy (percent) with 95% CI whiskers and each seed as a dot.

    values: per row, its seeds' `metric` (fractions); a row without values shows `missing[i]`
    (why: "no runs stored", "diverged", ...) instead of a bar. The axis is zoomed to the data.
    """
    summaries = [summarize(v) for v in values]
    half = [0.0 if np.isnan(s.half_width) else s.half_width for s in summaries]
    lows = [100 * (s.mean - h) for s, h in zip(summaries, half) if s.n]
    highs = [100 * (s.mean + h) for s, h in zip(summaries, half) if s.n]
    seeds = [100 * v for row in values for v in row]
    lo, hi = min(lows + seeds, default=0.0), max(highs + seeds, default=100.0)
    pad = max(0.5, 0.08 * (hi - lo))
    left, right = max(0.0, lo - pad), min(100.0, hi + pad)
    if right - left < 1:
        left, right = max(0.0, left - 0.5), min(100.0, right + 0.5)
    y = np.arange(len(values))[::-1]
    for i, (yi, row, s) in enumerate(zip(y, values, summaries)):
        if not s.n:
            ax.text(left, yi, f"  {missing[i] if missing else 'no values'}", va="center", fontsize=8, color="0.4")
            continue
        err = None if np.isnan(s.half_width) else [[100 * s.half_width], [100 * s.half_width]]
        ax.barh(yi, 100 * s.mean - left, left=left, color="tab:orange" if i == highlight else "tab:blue",
                alpha=0.75, height=0.6)
        ax.errorbar(100 * s.mean, yi, xerr=err, fmt="none", color="black", capsize=3, linewidth=1)
        ax.scatter([100 * v for v in row], [yi] * len(row), s=10, color="black", zorder=3)
    ax.set_yticks(y, labels)
    ax.set_xlim(left, right)
    ax.set_xlabel(LABELS[metric] + " (%)")
    return style(ax)


def save(fig: Figure, path) -> None:
    """Write `fig` as a PNG (its folder made if needed) and close it."""
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chapter_figure(labels: Sequence[str], values: Sequence[Sequence[float]], records: Sequence[Runs],
                   baseline: int | None, title: str, path, missing: Sequence[str] | None = None) -> None:
    """A chapter's figure for one dataset: accuracy bars per setting above the settings'
    validation curves (one above the other: the book's text column is narrow)."""
    bars_height = max(2.4, 0.32 * len(values) + 1.0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, bars_height + 4.0), layout="constrained",
                                      gridspec_kw={"height_ratios": [bars_height, 4.0]})
    accuracy_bars(top, labels, values, baseline, missing=missing)
    top.set_title("test accuracy: mean, 95% CI, seeds")
    groups = {label: runs for label, runs in zip(labels, records) if runs}
    learning_curves(groups, metric="val_acc", ax=bottom)
    if groups:
        bottom.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    bottom.set_title("validation accuracy per epoch (mean, min-max band)")
    fig.suptitle(title)
    save(fig, path)


def ladder_figure(labels: Sequence[str], values: Sequence[Sequence[float]], title: str, path,
                  missing: Sequence[str] | None = None) -> None:
    """The modernization ladder on one dataset: a bar per rung, the top rung highlighted."""
    fig, ax = plt.subplots(figsize=(8, max(3.2, 0.38 * len(labels) + 1.4)), layout="constrained")
    accuracy_bars(ax, labels, values, highlight=len(labels) - 1, missing=missing)
    ax.set_title(title)
    save(fig, path)


def change_worth(labels: Sequence[str], at_top: Sequence, alone: Sequence, ax: Axes | None = None,
                 missing: str = "not measured") -> Figure:
    """Each change's worth in two views, one row per change (points of accuracy): its gain alone
    over the start (open circle) and the drop at the top when it is undone (filled), each with its
    95% interval. at_top, alone: per row a difference as a `stats.Summary` (fractions), or None."""
    ax = _new_axes(ax, figsize=(8, max(3.0, 0.42 * len(labels) + 1.4)))
    y = np.arange(len(labels))[::-1]
    for values, offset, style_ in ((alone, 0.14, dict(mfc="white", color="tab:blue", label="alone (gain over the start)")),
                                   (at_top, -0.14, dict(color="tab:orange", label="at the top (drop when undone)"))):
        for yi, s in zip(y, values):
            if s is None or not s.n:
                ax.text(0, yi + offset, f"  {missing}", va="center", fontsize=7, color="0.4")
                continue
            err = None if np.isnan(s.half_width) else [[100 * s.half_width], [100 * s.half_width]]
            ax.errorbar(100 * s.mean, yi + offset, xerr=err, fmt="o", capsize=3, linewidth=1, markersize=5,
                        **style_)
            style_.pop("label", None)  # one legend entry per view
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_yticks(y, labels)
    ax.set_xlabel("test accuracy, points (mean difference, 95% CI)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    return style(ax).figure
