"""Measurements on a LeNet-5, at initialization or after training, for the notebooks.

Every function here is a measurement, not a training step: it leaves the
model as it found it (training/eval mode, batch-norm running statistics, no
`.grad` left on parameters) and returns plain Python numbers in dicts keyed
by the paper's layer names, so a result goes straight into
`pandas.DataFrame(result).T` or a JSON record.

Layer names follow LeCun et al. (1998): C1, S2, C3, S4, C5, F6 and "output".
Weight layers are C1, C3, C5, F6, output. Activation layers are named after
the layer whose output they squash (C1, C3, C5, F6); with the 1998
subsampling pool (`pool="subsample"`) the pooling step has its own
activation, named S2 and S4.

Mode: `activations` and `dead_fraction` measure the network as it predicts
(eval mode: dropout off, batch norm on its running statistics);
`gradient_norms` and `init_statistics` measure what a training step sees
(train mode: batch norm on batch statistics, dropout on and drawing from
torch's global generator). Each takes `training=` to choose otherwise.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import splits
from .model import ACTIVATIONS, RBF, LeNet5, TableConv2d

# The module types `LeNet5` builds from its activation table: found by
# construction, so a new entry in ACTIVATIONS is recognized without a change here.
_ACTIVATION_TYPES = tuple({type(make()) for make in ACTIVATIONS.values()})
_WEIGHT_TYPES = (nn.Conv2d, nn.Linear, TableConv2d)

# The paper's names: (layer, pooling after it) for the two conv blocks, then the dense blocks.
_CONV_NAMES = (("C1", "S2"), ("C3", "S4"))
_DENSE_NAMES = ("C5", "F6")
OUTPUT = "output"

# log10|w| histogram of `weight_summary`: fixed edges, so records from different runs add up.
LOG10_EDGES = np.linspace(-8.0, 1.0, 37)


@dataclass(frozen=True)
class Layers:
    """Named modules of one LeNet5, in forward order."""

    weights: dict[str, nn.Module]  # C1, C3, C5, F6, output: the conv / linear layers (no output for fixed RBF units)
    activations: dict[str, nn.Module]  # C1, [S2], C3, [S4], C5, F6: the activation modules


def layer_names(model: LeNet5) -> Layers:
    """The conv/linear layers and activation modules of `model`, under the paper's names.

    Found by walking `model.features` (conv blocks) and `model.classifier`
    (dense blocks, then the output layer): in each block the first module is
    the weight layer and the first activation module is its squashing
    function; a pooling block holding an activation is the 1998 subsampling layer.
    """
    conv_blocks = [m for m in model.features if isinstance(m, nn.Sequential)]
    *dense_blocks, output = model.classifier
    if len(conv_blocks) != len(_CONV_NAMES) or len(dense_blocks) != len(_DENSE_NAMES) \
            or not isinstance(output, nn.Linear | RBF):
        raise ValueError(f"not a LeNet5 layout: {len(conv_blocks)} conv blocks, "
                         f"{len(dense_blocks)} dense blocks, output {type(output).__name__}")
    weights: dict[str, nn.Module] = {}
    acts: dict[str, nn.Module] = {}
    named_blocks = [(name, pool, b) for (name, pool), b in zip(_CONV_NAMES, conv_blocks)]
    named_blocks += [(name, None, b) for name, b in zip(_DENSE_NAMES, dense_blocks)]
    for name, pool_name, block in named_blocks:
        if not isinstance(block[0], _WEIGHT_TYPES):
            raise ValueError(f"block {name} starts with {type(block[0]).__name__}, not a conv/linear layer")
        weights[name] = block[0]
        acts[name] = _first_activation(block.children())
        for child in block.children():
            if pool_name and isinstance(child, nn.Sequential):  # Subsample + its own activation
                acts[pool_name] = _first_activation(child.children())
    if isinstance(output, nn.Linear):  # the paper's RBF units are fixed, not weights
        weights[OUTPUT] = output
    return Layers(weights=weights, activations=acts)


def _first_activation(modules) -> nn.Module:
    found = next((m for m in modules if isinstance(m, _ACTIVATION_TYPES)), None)
    if found is None:
        raise ValueError("a LeNet5 block without an activation module")
    return found


@contextlib.contextmanager
def _measuring(model: nn.Module, training: bool):
    """Run in train or eval mode, then put the mode and any batch-norm statistics back."""
    was_training = model.training
    buffers = {k: v.clone() for k, v in model.named_buffers()} if training else {}
    model.train(training)
    try:
        yield
    finally:
        model.train(was_training)
        if buffers:
            with torch.no_grad():
                for k, v in model.named_buffers():
                    v.copy_(buffers[k])


@contextlib.contextmanager
def _recording(model: LeNet5):
    """Forward hooks on every activation module; yields the dict they fill (detached, on the CPU)."""
    recorded: dict[str, torch.Tensor] = {}

    def hook(name):
        return lambda module, inputs, output: recorded.__setitem__(name, output.detach().cpu())

    handles = [m.register_forward_hook(hook(name)) for name, m in layer_names(model).activations.items()]
    try:
        yield recorded
    finally:
        for h in handles:
            h.remove()


def activations(model: LeNet5, x: torch.Tensor, *, training: bool = False) -> dict[str, torch.Tensor]:
    """{activation layer name: its output on batch x}, detached and on the CPU, in forward order."""
    with _measuring(model, training), _recording(model) as recorded, torch.no_grad():
        model(x)
    return {name: recorded[name] for name in layer_names(model).activations}


def dead_fraction(model: LeNet5, x: torch.Tensor, *, training: bool = False) -> dict[str, float]:
    """Per activation layer, the fraction of units that never output a positive value on x.

    A unit is a channel of a conv layer (dead when it is <= 0 at every
    position of every example: nothing it computes reaches the next layer
    through a ReLU) or a neuron of a linear layer. The count is meaningful for
    ReLU, where such a unit also gets no gradient; for the other activations
    it is still defined (a tanh unit is "dead" when always negative).
    """
    result = {}
    for name, a in activations(model, x, training=training).items():
        unit_dims = (0, 2, 3) if a.dim() == 4 else (0,)
        alive = (a > 0).any(dim=unit_dims)
        result[name] = 1.0 - alive.float().mean().item()
    return result


def _weight_gradients(model: LeNet5, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """d(mean cross-entropy)/d(weight) of each conv/linear layer, by autograd.grad so no `.grad` is left."""
    weights = {name: m.weight for name, m in layer_names(model).weights.items()}
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(weights.values()))
    return {name: g.detach() for name, g in zip(weights, grads)}


def gradient_norms(model: LeNet5, x: torch.Tensor, y: torch.Tensor, *,
                   training: bool = True) -> dict[str, dict[str, float]]:
    """Per conv/linear layer, the L2 norm and the mean |.| of the weight gradient of one batch.

    One forward and backward pass of the mean cross-entropy at the model's
    current weights; shows where the error signal vanishes or explodes on its
    way down. With the 1998 C3 table only the connected kernels count.
    """
    with _measuring(model, training):
        grads = _weight_gradients(model, x, y)
    return {name: dict(grad_norm=g.norm().item(), grad_mean_abs=g.abs().mean().item())
            for name, g in grads.items()}


def init_statistics(config, n: int = 512, seed: int = 0, *,
                    training: bool = True) -> dict[str, dict[str, float | None]]:
    """Variance of each layer's activations (forward) and weight gradients (backward) at initialization.

    Builds `LeNet5(**config.model_kwargs())` under `torch.manual_seed(seed)`
    and feeds it the first n training images of `config.dataset`. Shows how an
    initialization scheme keeps the signal's scale through the depth, or lets
    it explode or vanish. Rows in forward order: C1, [S2], C3, [S4], C5, F6,
    output (whose "activation" is the logits). S2/S4 have no weights and get
    grad_var None.
    """
    torch.manual_seed(seed)
    model = LeNet5(**config.model_kwargs())
    data = splits(config.dataset, "cpu", config.normalize, config.data_copy)
    x, y = data.train_x[:n], data.train_y[:n]
    with _measuring(model, training), _recording(model) as recorded:
        logits_hook = model.classifier[-1].register_forward_hook(
            lambda module, inputs, output: recorded.__setitem__(OUTPUT, output.detach().cpu()))
        try:
            grads = _weight_gradients(model, x, y)
        finally:
            logits_hook.remove()
    names = list(layer_names(model).activations) + [OUTPUT]
    return {name: dict(activation_var=recorded[name].var().item(),
                       grad_var=grads[name].var().item() if name in grads else None)
            for name in names}


def weight_summary(model: nn.Module, threshold: float = 1e-3) -> dict:
    """How small the conv/linear weights are: sparsity and a histogram of log10|w|, JSON-ready.

    `sparsity` is the fraction of all weights with |w| < threshold (what L1
    regularization drives up), also per layer where the model is a LeNet5.
    The histogram has fixed edges (LOG10_EDGES: -8 to 1 in steps of 0.25, 37
    edges, 36 bins) so histograms of different runs can be compared or summed;
    values outside are counted in the end bins, exact zeros in the first, so
    the counts add up to the number of weights. Biases are left out: they are
    neither regularized nor initialized like the weights.
    """
    if isinstance(model, LeNet5):
        named = {name: m.weight for name, m in layer_names(model).weights.items()}
    else:
        named = {name: m.weight for name, m in model.named_modules() if isinstance(m, _WEIGHT_TYPES)}
    flat = {name: w.detach().abs().flatten().cpu().double() for name, w in named.items()}
    magnitudes = torch.cat(list(flat.values())).numpy()
    with np.errstate(divide="ignore"):  # log10(0) = -inf, clipped into the first bin
        logs = np.clip(np.log10(magnitudes), LOG10_EDGES[0], LOG10_EDGES[-1])
    counts, _ = np.histogram(logs, bins=LOG10_EDGES)
    return dict(
        n=int(magnitudes.size),
        threshold=threshold,
        sparsity=float((magnitudes < threshold).mean()),
        zeros=int((magnitudes == 0).sum()),
        layer_sparsity={name: (w < threshold).double().mean().item() for name, w in flat.items()},
        edges=[float(e) for e in LOG10_EDGES],
        counts=[int(c) for c in counts],
    )


def activation_histograms(model: LeNet5, x: torch.Tensor, bins: int = 40) -> dict[str, dict]:
    """Per activation layer, a histogram of its outputs on x (edges and counts, JSON-ready)."""
    result = {}
    for name, a in activations(model, x).items():
        values = a.flatten().double().numpy()
        values = values[np.isfinite(values)]
        counts, edges = np.histogram(values, bins=bins)
        result[name] = dict(edges=[round(float(e), 6) for e in edges], counts=[int(c) for c in counts])
    return result


# The radius of the perturbations `sharpness` measures at: SAM's default rho.
SHARPNESS_RHO = 0.05
# The layers whose update spectrum a record keeps: the hidden weight matrices Muon orthogonalizes
# the updates of (C1, the smallest, has at most 6 singular values and is left out).
SPECTRUM_LAYERS = ("C3", "C5", "F6")


def _loss_at(model: nn.Module, params: list[torch.Tensor], shift: list[torch.Tensor], x, y) -> float:
    """Mean cross-entropy on (x, y) with `shift` added to `params`, which are then put back exactly."""
    with torch.no_grad():
        kept = [p.clone() for p in params]
        for p, d in zip(params, shift):
            p.add_(d)
        loss = F.cross_entropy(model(x).float(), y).item()
        for p, k in zip(params, kept):
            p.copy_(k)
    return loss


def sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float = SHARPNESS_RHO,
              directions: int = 8, seed: int = 0) -> dict[str, float]:
    """How much the loss on (x, y) rises when all weights move by a step of length `rho` (the L2
    norm over every parameter together, as in SAM): along the gradient (SAM's first-order worst
    case, "adversarial") and along random directions (the mean over `directions`, "random").

    The network is measured as it predicts (eval mode); `loss` is the loss at the weights themselves.
    SAM minimizes the adversarial rise; a flat minimum has small rises of both kinds.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    with _measuring(model, False):
        loss = F.cross_entropy(model(x).float(), y)
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
        adversarial = [g * (rho / max(norm, 1e-12)) for g in grads]
        g = torch.Generator(device=x.device).manual_seed(seed)
        rises = []
        for _ in range(directions):
            noise = [torch.randn(p.shape, device=p.device, generator=g) for p in params]
            scale = rho / torch.sqrt(sum((n.double() ** 2).sum() for n in noise)).item()
            rises.append(_loss_at(model, params, [n * scale for n in noise], x, y) - loss.item())
        return dict(rho=rho, loss=loss.item(), adversarial=_loss_at(model, params, adversarial, x, y) - loss.item(),
                    random=float(np.mean(rises)))


def _matrix(layer: nn.Module) -> torch.Tensor:
    """A conv or linear layer's weight as the matrix Muon orthogonalizes: outputs x (inputs * kernel)."""
    w = layer.dense_weight() if isinstance(layer, TableConv2d) else layer.weight
    return w.detach().reshape(w.shape[0], -1).double().cpu()


def update_spectrum(model: LeNet5, initial: LeNet5) -> dict[str, dict]:
    """Per hidden weight matrix (SPECTRUM_LAYERS), the singular values of what training changed,
    W_trained - W_initial, divided by the largest; and its stable rank ||dW||_F^2 / sigma_max^2, the
    number of directions the change spreads over (1: one direction; the matrix's smaller side: all
    equally, as an orthogonalized update such as Muon's would; 0: unchanged)."""
    now, start = layer_names(model).weights, layer_names(initial).weights
    result = {}
    for name in SPECTRUM_LAYERS:
        sigma = torch.linalg.svdvals(_matrix(now[name]) - _matrix(start[name]))
        top = sigma[0].item()
        if top == 0:  # unchanged: no direction
            result[name] = dict(singular_values=[0.0] * len(sigma), stable_rank=0.0)
            continue
        result[name] = dict(singular_values=[round(v / top, 6) for v in sigma.tolist()],
                            stable_rank=float((sigma ** 2).sum().item() / top ** 2))
    return result


def trained_summary(model: LeNet5, x: torch.Tensor, train: tuple[torch.Tensor, torch.Tensor] | None = None,
                    initial: LeNet5 | None = None) -> dict:
    """What the notebooks show of a trained network, small enough to live in its run record:
    dead units and activation histograms on the batch x, and the weight summary; given training
    images `train` (x, y), the sharpness of the loss on them; given the network as it was
    initialized, the spectrum of what training changed in each weight matrix."""
    summary = dict(batch=len(x), dead_fraction=dead_fraction(model, x),
                   activation_histograms=activation_histograms(model, x), weights=weight_summary(model))
    if train is not None:
        summary["sharpness"] = sharpness(model, *train)
    if initial is not None:
        summary["update_spectrum"] = update_spectrum(model, initial)
    return summary


__all__ = ["LOG10_EDGES", "Layers", "OUTPUT", "SHARPNESS_RHO", "SPECTRUM_LAYERS", "activation_histograms", "activations",
           "dead_fraction", "gradient_norms", "init_statistics", "layer_names", "sharpness", "trained_summary",
           "update_spectrum", "weight_summary"]
