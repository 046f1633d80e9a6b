import copy
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure

from lenet_core import plots
from lenet_core.config import RunConfig
from lenet_core.data import DATASETS
from lenet_core.stats import summarize
from lenet_core.train import train

TINY = dict(train_size=256, epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def runs(mnist_ready):
    """Real records: two tiny seeds, one run that diverges at once (SGD at lr 1e4), and one that
    diverges in its second epoch (a seed's record cut the way `train` writes a divergence)."""
    ok = [train(RunConfig(seed=s, **TINY), progress=False).record for s in (0, 1)]
    diverged = train(RunConfig(optimizer="sgd", lr=1e4, **TINY), progress=False).record
    assert diverged["status"] == "diverged" and diverged["history"][0]["val_acc"] is None
    late = copy.deepcopy(ok[1])
    late["status"] = "diverged"
    late["history"][-1].update(train_loss=None, train_acc=None, val_loss=None, val_acc=None)
    late["metrics"].update(test_acc_best=None, test_acc_last=None, test_confusion_best=None)
    return dict(ok=ok, diverged=diverged, late=late)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _drawn(fig) -> Figure:
    """The figure, after really rendering it (errors at draw time surface here)."""
    assert isinstance(fig, Figure)
    fig.savefig(io.BytesIO(), format="png")
    return fig


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# ---------------------------------------------------------------- learning curves

def test_learning_curves_mean_and_band(runs):
    ok = runs["ok"]
    ax = _drawn(plots.learning_curves({"two seeds": ok, "one seed": ok[:1]})).axes[0]
    assert len(ax.lines) == 2
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 1  # no band for one seed
    mean = [np.mean([r["history"][e]["val_acc"] for r in ok]) for e in range(2)]
    assert ax.lines[0].get_ydata() == pytest.approx(mean)
    assert list(ax.lines[0].get_xdata()) == [1, 2]
    assert _legend(ax) == ["two seeds", "one seed"]
    assert ax.get_ylabel() == "validation accuracy"


def test_learning_curves_against_wall_clock_time(runs):
    record = runs["ok"][0]
    ax = _drawn(plots.learning_curves({"a": [record]}, metric="train_loss", x="seconds")).axes[0]
    assert ax.lines[0].get_xdata() == pytest.approx(np.cumsum([h["seconds"] for h in record["history"]]))
    assert ax.get_xlabel() == "wall-clock time (s)"
    with pytest.raises(ValueError, match="valid: epoch, seconds"):
        plots.learning_curves({"a": [record]}, x="steps")


def test_learning_curves_draw_diverged_runs_up_to_their_divergence(runs):
    ok, late = runs["ok"], runs["late"]
    groups = {"ok": ok, "one late": [ok[0], late], "at once": [runs["diverged"]]}
    ax = _drawn(plots.learning_curves(groups)).axes[0]
    assert _legend(ax) == ["ok", "one late (diverged 1/2)", "at once (diverged 1/1)"]
    # epoch 1 averages both seeds, epoch 2 only the one still running
    expected = [np.mean([ok[0]["history"][0]["val_acc"], late["history"][0]["val_acc"]]),
                ok[0]["history"][1]["val_acc"]]
    assert ax.lines[1].get_ydata() == pytest.approx(expected)
    assert np.isnan(ax.lines[2].get_ydata()).all()  # nothing finite to draw, and no crash


def test_mark_epochs_adds_vertical_lines(runs):
    fig = plots.learning_curves({"a": runs["ok"]}, metric="val_loss")
    ax = fig.axes[0]
    assert plots.mark_epochs(ax, best_epoch=1, stopped_epoch=2) is fig
    assert len(ax.lines) == 3 and list(ax.lines[1].get_xdata()) == [1, 1]
    assert _legend(ax)[1:] == ["best epoch (1)", "stopped (2)"]
    plots.mark_epochs(ax, best_epoch=None, stopped_epoch=None)  # a run that diverged at once
    assert len(_drawn(fig).axes[0].lines) == 3


# ---------------------------------------------------------------- across seeds

def test_seed_scatter_dots_and_t_interval(runs):
    ok = runs["ok"]
    groups = {"two": ok, "one": ok[:1], "with a diverged seed": [ok[0], runs["diverged"]]}
    fig, ax = plt.subplots()
    assert _drawn(plots.seed_scatter(groups, ax=ax)) is fig
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in dots] == [2, 1, 1]  # the diverged seed has no value
    bars = [c for c in ax.containers if c.has_yerr]
    assert len(bars) == 1  # only the group of two gets an interval
    s = summarize(r["metrics"]["test_acc_best"] for r in ok)
    (segment,) = bars[0].lines[2][0].get_segments()
    assert segment[:, 1] == pytest.approx([s.low, s.high])
    assert "1 diverged" in ax.get_xticklabels()[2].get_text()


# ---------------------------------------------------------------- confusion matrix

def test_confusion_is_row_normalized_with_class_names(runs):
    classes = DATASETS["fashion_mnist"].classes
    ax = _drawn(plots.confusion(runs["ok"][0], classes)).axes[0]
    (image,) = ax.images
    rates = np.asarray(image.get_array())
    cm = np.asarray(runs["ok"][0]["metrics"]["test_confusion_best"])
    assert rates.shape == (10, 10)
    assert rates.sum(axis=1)[cm.sum(axis=1) > 0] == pytest.approx(1.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(classes)


def test_confusion_of_a_diverged_run_says_so(runs):
    ax = _drawn(plots.confusion(runs["diverged"], DATASETS["mnist"].classes)).axes[0]
    assert not ax.images and "diverged" in ax.texts[0].get_text()


# ---------------------------------------------------------------- histograms and images

def test_histograms_one_panel_per_layer():
    values = {"C1": torch.randn(100), "C3": np.random.default_rng(0).normal(size=(4, 5)),
              "F6": [0.0, 1.0, float("nan"), float("inf")]}
    fig = _drawn(plots.histograms(values, bins=20))
    panels = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in panels] == ["C1", "C3", "F6"]
    assert [len(a.patches) for a in panels] == [20, 20, 20]
    assert sum(p.get_height() for p in panels[2].patches) == 2  # non-finite values dropped


def test_histograms_into_a_given_grid_hides_spare_panels():
    fig, axes = plt.subplots(2, 3)
    assert plots.histograms({"a": np.arange(10), "b": np.arange(5)}, ax=axes) is fig
    assert sum(a.get_visible() for a in fig.axes) == 2
    with pytest.raises(ValueError, match="only 1 axes"):
        plots.histograms({"a": [1], "b": [2]}, ax=[axes[0, 0]])


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_denormalizes_and_labels(channels):
    mean, std = torch.full((channels,), 0.25), torch.full((channels,), 0.5)
    images = torch.zeros(10, channels, 32, 32)
    images[0] = (1.0 - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)  # pixel value 1: white
    images[1] = (0.0 - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)  # pixel value 0: black
    classes = DATASETS["cifar10"].classes
    ax = _drawn(plots.image_grid(images, mean, std, labels=torch.arange(10), classes=classes, nrow=4)).axes[0]
    (image,) = ax.images
    grid = np.asarray(image.get_array())
    assert grid.ndim == (2 if channels == 1 else 3)
    tiles = grid.reshape(grid.shape[0], grid.shape[1], -1)
    top = 2 + 32 // 3
    assert tiles[top:top + 32, 2:34].min() == 1.0  # first tile white
    assert tiles[top:top + 32, 36:68].max() == 0.0  # second tile black
    assert tiles[top:top + 32, 70:102] == pytest.approx(0.25)  # normalized 0 is the mean
    assert grid.shape[:2] == (3 * (32 + top) + 2, 4 * 34 + 2)  # 10 images, 4 a row: 3 rows
    assert [t.get_text() for t in ax.texts] == list(classes)


def test_image_grid_rejects_other_shapes():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        plots.image_grid(torch.zeros(2, 2, 8, 8), 0.5, 0.5)


def test_accuracy_bars_zoom_to_the_data_and_say_why_a_row_has_no_bar():
    fig, ax = plt.subplots()
    plots.accuracy_bars(ax, ["a", "b", "c"], [[0.90, 0.91, 0.92], [], [0.95]], highlight=0,
                        missing=["", "no runs stored", ""])
    left, right = ax.get_xlim()
    assert 87 < left < 88.5 and 95 < right < 96  # zoomed to the interval 88.5..93.5 and the seeds, padded
    assert [t.get_text().strip() for t in ax.texts] == ["no runs stored"]
    bars = [p for p in ax.patches]
    assert len(bars) == 2 and bars[0].get_facecolor()[:3] != bars[1].get_facecolor()[:3]  # highlight
    assert bars[0].get_width() == pytest.approx(91 - left)  # the mean, as a bar from the axis' left edge
    plt.close(fig)


# ---------------------------------------------------------------- what the modern chapters show

def test_averaged_curves_draw_the_averaged_network_beside_the_raw_one(mnist_ready):
    record = train(RunConfig(average="ema", ema_decay=0.9, **TINY), progress=False).record
    ax = _drawn(plots.averaged_curves([record])).axes[0]
    assert _legend(ax) == ["as trained", "averaged"]
    raw, averaged = (line.get_ydata() for line in ax.get_lines()[:2])
    assert list(raw) == [e["val_acc_raw"] for e in record["history"]]
    assert list(averaged) == [e["val_acc"] for e in record["history"]]


def test_averaged_curves_refuse_a_run_without_an_average(runs):
    with pytest.raises(ValueError, match="these runs record no val_acc_raw"):
        plots.averaged_curves(runs["ok"])


def test_update_spectra_plot_the_mean_normalized_singular_values(runs):
    ax = _drawn(plots.update_spectra({"adam": runs["ok"], "none stored": []}, layer="F6")).axes[0]
    assert _legend(ax) == ["adam (n=2)"]  # a group with no runs draws nothing
    expected = np.mean([r["diagnostics"]["update_spectrum"]["F6"]["singular_values"] for r in runs["ok"]], axis=0)
    (line,) = ax.get_lines()
    assert np.allclose(line.get_ydata(), expected) and line.get_ydata()[0] == 1.0 and len(expected) == 84
    assert ax.get_yscale() == "log"
