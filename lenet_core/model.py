"""LeNet-5 with every 1998-versus-modern choice selectable by name.

Layer widths are the paper's throughout (6 and 16 feature maps, 120 and 84
units); only the choices the book studies change:

    input 32x32 (28x28 digits padded with black, as in 1998)
    C1 conv 5x5 -> 6  [norm] act  pool        -> 6@14x14
    C3 conv 5x5 -> 16 [norm] act  pool        -> 16@5x5   (optionally the 1998 partial table)
    C5 linear 400 -> 120 [norm] act [dropout]  (the paper's C5 is a 5x5 conv on a 5x5 map: the same)
    F6 linear 120 -> 84  [norm] act [dropout]

    output linear 84 -> 10 (softmax cross-entropy), or the paper's 10 Euclidean RBF units

[norm] is batch, group or layer normalization (`NORMS`), or nothing.

The 1998 subsampling layer is pooling plus its own trainable coefficient,
bias and squashing function, so with `pool="subsample"` each pooling step is
followed by the activation again, as in the paper.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ScaledTanh(nn.Module):
    """LeCun's squashing function 1.7159 * tanh(2x/3): f(+-1) = +-1, steepest at 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "scaled_tanh": ScaledTanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


class Subsample(nn.Module):
    """The 1998 subsampling layer: 2x2 average, times a trainable coefficient, plus a bias, per map."""

    def __init__(self, channels: int):
        super().__init__()
        self.coefficient = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


POOLS: dict[str, Callable[[int], nn.Module]] = {
    "max": lambda channels: nn.MaxPool2d(2),
    "avg": lambda channels: nn.AvgPool2d(2),
    "subsample": Subsample,
}

# Which S2 maps feed each C3 map (LeCun et al. 1998, Table I): six maps see
# contiguous triples, six contiguous quadruples, three non-contiguous
# quadruples and the last one all six. 60 connections of 5x5 weights + 16 biases = 1,516.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class TableConv2d(nn.Module):
    """A 5x5 convolution where output map i sees only the input maps in table[i].

    Only the connected kernels are parameters (so counts match the paper); the
    dense kernel is assembled from them at each forward pass.
    """

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...], kernel_size: int = 5):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        rows = [out * in_channels + i for out, inputs in enumerate(table) for i in inputs]
        self.register_buffer("rows", torch.tensor(rows), persistent=False)
        self.fan_in = [len(inputs) * kernel_size**2 for inputs in table]
        self.weight = nn.Parameter(torch.empty(len(rows), kernel_size**2))
        self.bias = nn.Parameter(torch.zeros(len(table)))

    def kernels_per_map(self):
        """(view of map i's kernels, map i's fan-in) for each output map, in order."""
        start = 0
        for fan_in in self.fan_in:
            n = fan_in // self.kernel_size**2
            yield self.weight[start:start + n], fan_in
            start += n

    def dense_weight(self) -> torch.Tensor:
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels * self.in_channels, k * k)
        return dense.index_copy(0, self.rows, self.weight).view(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)


# ---------------------------------------------------------------- normalization

# Group norm's groups: 4 channels (units) each, C1's 6 maps in 2 groups of 3. Wu and He (2018) use
# 32 groups of wide layers; LeNet-5's layers are too narrow for that, so groups keep a few channels.
GROUP_SIZE, C1_GROUPS = 4, 2


def _groups(channels: int) -> int:
    return C1_GROUPS if channels == 6 else channels // GROUP_SIZE


# Each makes the layer for `channels` channels (conv) or units (linear), given `conv`.
# Layer norm normalizes each example over all of a layer's channels and positions (group norm with
# one group, as Wu and He define it for convolutions; on a linear layer that is nn.LayerNorm's
# computation, with one scale and shift per unit). Neither keeps running statistics: a network
# computes the same function in training and evaluation.
NORMS: dict[str, Callable[[int, bool], nn.Module]] = {
    "batch": lambda channels, conv: (nn.BatchNorm2d if conv else nn.BatchNorm1d)(channels),
    "group": lambda channels, conv: nn.GroupNorm(_groups(channels), channels),
    "layer": lambda channels, conv: nn.GroupNorm(1, channels),
}


# ---------------------------------------------------------------- the output layer

def rbf_codes() -> torch.Tensor:
    """The 1998 paper's fixed RBF parameter vectors for the ten digits (its Fig. 3): a 10 x 84
    tensor of +-1, row i the 7x12 bitmap of digit i, row-major ('#' = +1, '.' = -1). Read from
    lenet_core/rbf_bitmaps.txt, whose header says where the pixels come from."""
    return _codes().clone()


@cache
def _codes() -> torch.Tensor:
    text = resources.files("lenet_core").joinpath("rbf_bitmaps.txt").read_text()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("digit "))
    codes = []
    for digit in range(10):
        at = first + 13 * digit
        if lines[at] != f"digit {digit}":
            raise ValueError(f"rbf_bitmaps.txt: expected 'digit {digit}' at line {at + 1}, found {lines[at]!r}")
        rows = lines[at + 1:at + 13]
        if len(rows) != 12 or any(len(r) != 7 or set(r) - {"#", "."} for r in rows):
            raise ValueError(f"rbf_bitmaps.txt: digit {digit} needs 12 rows of 7 '#' or '.' characters")
        codes.append([1.0 if c == "#" else -1.0 for r in rows for c in r])
    return torch.tensor(codes)


class RBF(nn.Module):
    """The paper's output layer: one Euclidean RBF unit per class, y_i = sum_j (x_j - w_ij)^2, with
    the fixed codes of `rbf_codes` (not trained). It returns the scores -y_i, so that the predicted
    class (the nearest code, the smallest y_i) is the largest score, as with a linear output."""

    def __init__(self, codes: torch.Tensor):
        super().__init__()
        self.register_buffer("codes", codes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x.unsqueeze(1) - self.codes).pow(2).sum(-1)


# Each makes the last layer from F6's 84 units to `classes` outputs.
OUTPUTS: dict[str, Callable[[int], nn.Module]] = {
    "linear": lambda classes: nn.Linear(84, classes),
    "rbf": lambda classes: RBF(rbf_codes()[:classes]),
}


# ---------------------------------------------------------------- initialization
# Each initializer fills a weight given its fan-in and fan-out (computed by the
# caller, so the partial C3 table gets the fan-in each of its maps really has).

def _uniform(w, bound):
    nn.init.uniform_(w, -bound, bound)


def _normal(w, std):
    nn.init.normal_(w, 0.0, std)


def _orthogonal(w, fan_in, fan_out):
    nn.init.orthogonal_(w.view(w.shape[0], -1))


INITIALIZERS: dict[str, Callable[[torch.Tensor, int, int], None] | None] = {
    "default": None,  # PyTorch's own: U(+-1/sqrt(fan_in)) for weights and biases
    "zeros": lambda w, fi, fo: nn.init.zeros_(w),
    "lecun_uniform": lambda w, fi, fo: _uniform(w, 2.4 / fi),  # the 1998 paper's rule
    "lecun_normal": lambda w, fi, fo: _normal(w, math.sqrt(1.0 / fi)),
    "xavier_uniform": lambda w, fi, fo: _uniform(w, math.sqrt(6.0 / (fi + fo))),
    "xavier_normal": lambda w, fi, fo: _normal(w, math.sqrt(2.0 / (fi + fo))),
    "kaiming_uniform": lambda w, fi, fo: _uniform(w, math.sqrt(6.0 / fi)),  # ReLU gain sqrt(2)
    "kaiming_normal": lambda w, fi, fo: _normal(w, math.sqrt(2.0 / fi)),
    "orthogonal": _orthogonal,
}


def initialize(model: nn.Module, scheme: str) -> None:
    """Apply `scheme` to every conv and linear weight; biases start at zero.

    "default" keeps PyTorch's initialization (biases included) untouched.
    Batch-norm and subsampling parameters keep their own start (scale 1, shift 0).
    """
    fill = INITIALIZERS[scheme]
    if fill is None:
        return
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TableConv2d):
                for rows, fan_in in m.kernels_per_map():
                    fill(rows, fan_in, m.kernel_size**2)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
                fill(m.weight, fan_in, fan_out)
            else:
                continue
            if m.bias is not None:
                m.bias.zero_()


def _default_table_init(m: TableConv2d) -> None:
    """PyTorch's default rule, applied per map with that map's real fan-in."""
    with torch.no_grad():
        for out, (rows, fan_in) in enumerate(m.kernels_per_map()):
            _uniform(rows, 1 / math.sqrt(fan_in))
            _uniform(m.bias[out:out + 1], 1 / math.sqrt(fan_in))


# ---------------------------------------------------------------- the network

class LeNet5(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, act: str = "relu",
                 pool: str = "max", init: str = "default", dropout: float = 0.0,
                 batch_norm: bool = False, c3_table: bool = False, norm_layer: str = "batch",
                 output: str = "linear"):
        """`batch_norm` switches normalization after each hidden layer on; `norm_layer` says which
        (a name in NORMS: batch, group or layer). `output`: a name in OUTPUTS (linear, or the
        paper's fixed RBF units)."""
        super().__init__()
        for kind, name, valid in (("activation", act, ACTIVATIONS), ("pooling", pool, POOLS),
                                  ("initialization", init, INITIALIZERS), ("normalization", norm_layer, NORMS),
                                  ("output", output, OUTPUTS)):
            if name not in valid:
                raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")

        def pooling(channels):
            if pool == "subsample":  # the 1998 layer squashes its own output
                return nn.Sequential(Subsample(channels), ACTIVATIONS[act]())
            return POOLS[pool](channels)

        def norm(channels, conv):
            return [NORMS[norm_layer](channels, conv)] if batch_norm else []

        def conv_block(c_in, c_out, conv):
            return nn.Sequential(conv, *norm(c_out, True), ACTIVATIONS[act](), pooling(c_out))

        def dense_block(n_in, n_out):
            bn = norm(n_out, False)
            drop = [nn.Dropout(dropout)] if dropout > 0 else []
            return nn.Sequential(nn.Linear(n_in, n_out, bias=not batch_norm), *bn, ACTIVATIONS[act](), *drop)

        c3 = (TableConv2d(6, C3_TABLE) if c3_table
              else nn.Conv2d(6, 16, 5, bias=not batch_norm))
        self.features = nn.Sequential(
            conv_block(in_channels, 6, nn.Conv2d(in_channels, 6, 5, bias=not batch_norm)),  # C1, S2
            conv_block(6, 16, c3),  # C3, S4
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            dense_block(16 * 5 * 5, 120),  # C5
            dense_block(120, 84),  # F6
            OUTPUTS[output](num_classes),
        )
        if c3_table:
            _default_table_init(c3)
        initialize(self, init)

    def forward(self, x: torch.Tensor, head: bool = True) -> torch.Tensor:
        """The outputs; with head=False, the input of the output layer (F6's 84 units)."""
        features = self.features(x)
        return self.classifier(features) if head else self.classifier[:-1](features)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
