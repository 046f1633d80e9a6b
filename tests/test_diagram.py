import io
import itertools

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import Rectangle

from lenet_core import diagram
from lenet_core.book import method
from lenet_core.config import RunConfig
from lenet_core.model import C3_TABLE, LeNet5

CONFIGS = {
    "1998": RunConfig.classic("mnist"),
    "1998, full C3": RunConfig.classic("mnist", c3_table=False),
    "modern, CIFAR-10, batch norm": RunConfig(dataset="cifar10", batch_norm=True),
}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _drawn(config):
    fig = diagram.network_figure(config)
    fig.savefig(io.BytesIO(), format="png")  # errors at draw time surface here
    return fig


def _axes(fig, title_starts):
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith(title_starts)]
    return ax


def _labels(fig) -> dict[str, str]:
    chain = _axes(fig, "the layers")
    return {t.get_gid().removeprefix("layer:"): t.get_text() for t in chain.texts
            if (t.get_gid() or "").startswith("layer:")}


def _expected(config) -> list[tuple[str, str, int]]:
    """(name, size, parameters) of each layer, computed here by stepping through the model."""
    model = LeNet5(**config.model_kwargs()).eval()
    x = torch.zeros(2, model.features[0][0].in_channels, 32, 32)
    out, names = [], iter(["C1", "S2", "C3", "S4", "C5", "F6", "output"])

    def step(modules, x):
        for m in modules:
            x = m(x)
        size = f"{x.shape[1]}@{x.shape[2]}x{x.shape[3]}" if x.dim() == 4 else str(x.shape[1])
        out.append((next(names), size, sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)))
        return x

    with torch.no_grad():
        for block in (model.features[0], model.features[1]):
            x = step(list(block)[:-1], x)  # convolution, [batch norm], activation
            x = step([block[-1]], x)  # pooling
        x = x.flatten(1)
        for block in model.classifier:
            x = step(list(block) if isinstance(block, torch.nn.Sequential) else [block], x)
    assert next(names, None) is None
    return out


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_the_layer_labels_are_the_models_shapes_and_parameters(config):
    labels = _labels(_drawn(config))
    expected = _expected(config)
    assert list(labels) == ["input"] + [name for name, _, _ in expected]
    channels = LeNet5(**config.model_kwargs()).features[0][0].in_channels
    assert labels["input"].splitlines() == ["input", f"{channels}@32x32"]
    for name, size, params in expected:
        lines = labels[name].splitlines()
        assert lines[0] == name and lines[2] == size and lines[3] == f"{params:,} params", labels[name]
    model = LeNet5(**config.model_kwargs())
    assert sum(params for _, _, params in expected) == sum(p.numel() for p in model.parameters())
    assert f"({sum(p.numel() for p in model.parameters()):,} in all)" in _axes(_drawn(config), "the layers").get_title()


def test_the_operations_are_named_from_the_modules():
    labels = {name: text.splitlines()[1] for name, text in _labels(_drawn(CONFIGS["1998"])).items() if name != "input"}
    assert labels == {"C1": "conv 5x5", "S2": "subsample 2x2", "C3": "conv 5x5", "S4": "subsample 2x2",
                      "C5": "full", "F6": "full", "output": "RBF, fixed codes"}
    modern = _labels(_drawn(CONFIGS["modern, CIFAR-10, batch norm"]))
    assert modern["output"].splitlines()[1:] == ["full", "10", "850 params"]
    assert modern["S2"].splitlines()[1] == "max pool 2x2" and modern["C3"].splitlines()[1] == "conv 5x5 + BN"
    for kind, short in (("group", "GN"), ("layer", "LN")):
        labels = _labels(_drawn(RunConfig(batch_norm=True, norm_layer=kind)))
        assert labels["C1"].splitlines()[1] == f"conv 5x5 + {short}" and labels["F6"].splitlines()[1] == f"full + {short}"


def _cells(fig) -> dict[str, set[tuple[int, int]]]:
    """(S2 map, C3 map) of each drawn cell, by whether it is drawn connected."""
    table = _axes(fig, "C3's")
    cells = {"c3:connected": set(), "c3:unconnected": set()}
    for patch in table.patches:
        assert isinstance(patch, Rectangle)
        x, y = patch.get_xy()
        cells[patch.get_gid()].add((round(y + patch.get_height() / 2), round(x + patch.get_width() / 2)))
    return cells


def test_the_c3_grid_is_the_1998_table():
    fig = _drawn(CONFIGS["1998"])
    cells = _cells(fig)
    connected = {(i, out) for out, inputs in enumerate(C3_TABLE) for i in inputs}
    assert cells["c3:connected"] == connected
    assert len(cells["c3:connected"]) == len(LeNet5(c3_table=True).features[1][0].rows)
    assert len(cells["c3:connected"]) + len(cells["c3:unconnected"]) == 6 * 16
    assert not cells["c3:connected"] & cells["c3:unconnected"]
    filled = {tuple(p.get_facecolor()) for p in _axes(fig, "C3's").patches if p.get_gid() == "c3:connected"}
    empty = {tuple(p.get_facecolor()) for p in _axes(fig, "C3's").patches if p.get_gid() == "c3:unconnected"}
    assert filled.isdisjoint(empty) and empty == {(1.0, 1.0, 1.0, 1.0)}
    assert f"{len(connected)} of the 96" in _axes(fig, "C3's").get_title()


def test_full_connections_fill_every_cell():
    cells = _cells(_drawn(CONFIGS["1998, full C3"]))
    assert len(cells["c3:connected"]) == 6 * 16 and not cells["c3:unconnected"]
    assert diagram.connection_table(LeNet5()).all()


def test_no_two_labels_overlap_and_all_stay_in_the_figure():
    fig = _drawn(CONFIGS["1998"])
    renderer = fig.canvas.get_renderer()
    chain = _axes(fig, "the layers")
    boxes = [t.get_window_extent(renderer) for t in chain.texts]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    frame = fig.bbox
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)


def test_the_intro_page_shows_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr(method, "DATASETS", {})  # the dataset samples are not this test's subject
    text = method.intro_fragment(tmp_path)
    section = text.split("## The network\n")[1].split("\n## ")[0]
    assert "```{figure} _generated/img/network.png" in section
    assert "`lenet_core.model.LeNet5`" in section
    mask = diagram.connection_table(LeNet5(**RunConfig.classic("mnist").model_kwargs()))
    assert f"keeps {mask.sum()} of the {mask.size} possible S2-to-C3 connections" in section
    assert text.index("## The network") < text.index("## The two ends of the study")
    png = tmp_path / "_generated" / "img" / "network.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
