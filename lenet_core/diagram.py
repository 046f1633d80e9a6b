"""The network as a figure, read off the model itself so it cannot drift from the code.

`network_layers(model)` runs one forward pass with forward hooks and returns each layer's
output shape and trainable parameters; `connection_table(model)` says which S2 maps feed
each C3 map; `network_figure(config)` draws both: the chain of layers, and the C3 table
laid out as Table I of LeCun et al. (1998).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle
from torch import nn

from .config import RunConfig
from .model import RBF, LeNet5, Subsample, TableConv2d, count_parameters
from .plots import plt  # pyplot, once plots has chosen the headless backend

INPUT_SIZE = 32  # every dataset reaches the network as 32x32 (`data.splits` pads 28x28 digits)
# The paper's layer names, in forward order: a conv block gives a C and an S layer, then three dense ones.
NAMES = ("C1", "S2", "C3", "S4", "C5", "F6", "output")
POOL_NAMES = {Subsample: "subsample", nn.MaxPool2d: "max pool", nn.AvgPool2d: "avg pool"}
COLORS = {"input": "0.85", "conv": "tab:blue", "pool": "tab:orange", "full": "tab:green"}


@dataclass(frozen=True)
class Layer:
    """One layer as drawn: its paper name, what it does, its output shape (no batch) and parameters."""

    name: str
    kind: str  # "input", "conv", "pool" or "full"
    operation: str  # "conv 5x5", "subsample 2x2", "full", ... ("" for the input)
    shape: tuple[int, ...]
    params: int

    @property
    def size(self) -> str:
        """6@28x28 for feature maps (the paper's notation), 120 for units."""
        if len(self.shape) == 3:
            return f"{self.shape[0]}@{self.shape[1]}x{self.shape[2]}"
        return str(math.prod(self.shape))

    @property
    def label(self) -> str:
        if self.kind == "input":
            return f"{self.name}\n{self.size}"
        return f"{self.name}\n{self.operation}\n{self.size}\n{self.params:,} params"


def _groups(model: LeNet5) -> list[tuple[str, list[nn.Module]]]:
    """The model's modules grouped as the paper's layers: (name, modules in forward order)."""
    groups: list[list[nn.Module]] = []
    for block in model.features:
        if isinstance(block, nn.Sequential):  # conv, [batch norm], activation, pooling
            *conv, pool = block
            groups += [conv, [pool]]
    for block in model.classifier:
        groups.append(list(block) if isinstance(block, nn.Sequential) else [block])
    if len(groups) != len(NAMES):
        raise ValueError(f"expected the {len(NAMES)} layers of LeNet-5, found {len(groups)}")
    return list(zip(NAMES, groups))


def _norm_name(m: nn.Module) -> str:
    """BN, GN or LN (group norm with one group) for a normalization module."""
    if isinstance(m, nn.GroupNorm):
        return "LN" if m.num_groups == 1 else "GN"
    return "BN"


def _describe(modules: list[nn.Module], in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[str, str]:
    """(kind, operation text) of one layer, from its first module and the shapes around it."""
    first = modules[0]
    norm = next((f" + {_norm_name(m)}" for m in modules if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.GroupNorm)), "")
    if isinstance(first, (nn.Conv2d, TableConv2d)):
        k = first.kernel_size if isinstance(first.kernel_size, tuple) else (first.kernel_size,) * 2
        return "conv", f"conv {k[0]}x{k[1]}{norm}"
    if isinstance(first, nn.Linear):
        return "full", f"full{norm}"
    if isinstance(first, RBF):  # the paper's output: distances to fixed codes, nothing trained
        return "full", "RBF, fixed codes"
    pool = first[0] if isinstance(first, nn.Sequential) else first  # subsampling squashes its output
    window = in_shape[-1] // out_shape[-1]
    return "pool", f"{POOL_NAMES[type(pool)]} {window}x{window}"


def network_layers(model: LeNet5) -> list[Layer]:
    """The input and every layer of `model`, with shapes from one forward pass of a 32x32 input."""
    groups = _groups(model)
    shapes: dict[str, list] = {name: [None, None] for name, _ in groups}
    hooks = []
    for name, modules in groups:
        def first(_, inputs, __, name=name):
            shapes[name][0] = tuple(inputs[0].shape[1:])

        def last(_, __, output, name=name):
            shapes[name][1] = tuple(output.shape[1:])
        hooks += [modules[0].register_forward_hook(first), modules[-1].register_forward_hook(last)]
    channels = groups[0][1][0].in_channels
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, channels, INPUT_SIZE, INPUT_SIZE))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    layers = [Layer("input", "input", "", (channels, INPUT_SIZE, INPUT_SIZE), 0)]
    for name, modules in groups:
        kind, operation = _describe(modules, *shapes[name])
        params = sum(count_parameters(m) for m in modules)
        layers.append(Layer(name, kind, operation, shapes[name][1], params))
    return layers


def connection_table(model: LeNet5) -> np.ndarray:
    """Which S2 maps (rows) each C3 map (columns) sees, as a boolean array; all True when full."""
    c3 = _groups(model)[NAMES.index("C3")][1][0]
    if isinstance(c3, TableConv2d):
        mask = np.zeros(c3.out_channels * c3.in_channels, dtype=bool)
        mask[c3.rows.numpy()] = True
        return mask.reshape(c3.out_channels, c3.in_channels).T
    return np.ones((c3.in_channels, c3.out_channels), dtype=bool)


def _draw_chain(ax: Axes, layers: list[Layer]) -> None:
    """One box per layer, left to right; box height on a log scale of the layer's activations."""
    largest = max(math.log10(math.prod(layer.shape)) for layer in layers)
    width, step = 0.6, 1.0
    for i, layer in enumerate(layers):
        height = 0.3 + 1.7 * math.log10(math.prod(layer.shape)) / largest
        ax.add_patch(Rectangle((i * step - width / 2, -height / 2), width, height, facecolor=COLORS[layer.kind],
                               alpha=0.75, edgecolor="0.2", linewidth=0.8))
        ax.text(i * step, -1.15, layer.label, ha="center", va="top", fontsize=8.5, gid=f"layer:{layer.name}")
        if i:
            ax.add_patch(FancyArrowPatch(((i - 1) * step + width / 2, 0), (i * step - width / 2, 0),
                                         arrowstyle="-|>", mutation_scale=9, color="0.3", linewidth=0.8))
    ax.set_xlim(-step / 2, (len(layers) - 0.5) * step)
    ax.set_ylim(-2.35, 1.1)
    ax.set_axis_off()


def _draw_table(ax: Axes, mask: np.ndarray) -> None:
    """The connection table as a grid: a filled square where an S2 map (row) feeds a C3 map (column)."""
    rows, cols = mask.shape
    for (r, c), connected in np.ndenumerate(mask):
        ax.add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, edgecolor="0.4", linewidth=0.6,
                               facecolor="tab:blue" if connected else "white", alpha=0.85 if connected else 1.0,
                               gid="c3:connected" if connected else "c3:unconnected"))
    ax.set_xlim(-0.6, cols - 0.4)
    ax.set_ylim(rows - 0.4, -0.6)  # row 0 on top, as in the paper
    ax.set_aspect("equal")
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.tick_params(length=0, labelsize=8)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("C3 feature map", fontsize=9)
    ax.set_ylabel("S2 feature map", fontsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)


def network_figure(config: RunConfig | None = None) -> Figure:
    """LeNet-5 as `config` builds it (default: the 1998 network on MNIST): its layers with output
    sizes and trainable parameters above, the S2-to-C3 connection table below."""
    config = config or RunConfig.classic("mnist")
    model = LeNet5(**config.model_kwargs())
    layers, mask = network_layers(model), connection_table(model)
    fig, (chain, table) = plt.subplots(2, 1, figsize=(10, 6.4), layout="constrained",
                                       gridspec_kw={"height_ratios": [3.2, 2.4]})
    _draw_chain(chain, layers)
    chain.set_title(f"the layers: output size and trainable parameters ({count_parameters(model):,} in all)")
    _draw_table(table, mask)
    kind = "partial" if mask.sum() < mask.size else "full"
    table.set_title(f"C3's {kind} connection table: {int(mask.sum())} of the {mask.size} S2-to-C3 map pairs "
                    f"connected", pad=22)
    return fig


__all__ = ["Layer", "connection_table", "network_figure", "network_layers"]
