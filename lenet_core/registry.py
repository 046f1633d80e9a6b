"""The named choices of a run that the training loop looks up: optimizers, learning-rate
schedules, losses and augmentations, each a table from the name a RunConfig stores to what it does.

These tables are the only lists of valid names: RunConfig validates its fields against their
keys, and the training loop indexes them. Adding an optimizer or a schedule is one decorated
function here (its name is accepted from then on); the names are part of stored run records
and never change.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import optimizers

# (model, config) -> optimizer over the model's parameters, with the RunConfig's lr, weight_decay
# (and, for SAM, sam_rho). The loop sets each group's "lr" every step: the group's lr at creation
# times the schedule's factor.
OptimizerFactory = Callable[[torch.nn.Module, Any], torch.optim.Optimizer]  # (model, RunConfig)
# (t, epochs) -> multiple of the base learning rate at fractional epoch t in [0, epochs) of a run
# of `epochs` epochs.
ScheduleFactor = Callable[[float, int], float]

OPTIMIZERS: dict[str, OptimizerFactory] = {}
SCHEDULES: dict[str, ScheduleFactor] = {}


def _register(table: dict, kind: str, name: str):
    def add(entry):
        if name in table:
            raise ValueError(f"{kind} {name!r} is already registered")
        table[name] = entry
        return entry
    return add


def register_optimizer(name: str) -> Callable[[OptimizerFactory], OptimizerFactory]:
    """Decorator: make `name` a valid RunConfig.optimizer, built by the decorated factory."""
    return _register(OPTIMIZERS, "optimizer", name)


def register_schedule(name: str) -> Callable[[ScheduleFactor], ScheduleFactor]:
    """Decorator: make `name` a valid RunConfig.schedule, whose factor the decorated function gives."""
    return _register(SCHEDULES, "schedule", name)


# ---------------------------------------------------------------- optimizers

def _torch_optimizer(cls: type[torch.optim.Optimizer], **fixed) -> OptimizerFactory:
    """A factory of `cls` with the run's lr and weight decay and these fixed hyperparameters."""
    def make(model: torch.nn.Module, config) -> torch.optim.Optimizer:
        return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, **fixed)
    make.__doc__ = f"{cls.__name__}({', '.join(f'{k}={v}' for k, v in fixed.items())})"
    return make


register_optimizer("sgd")(_torch_optimizer(torch.optim.SGD))
register_optimizer("momentum")(_torch_optimizer(torch.optim.SGD, momentum=0.9))
register_optimizer("nesterov")(_torch_optimizer(torch.optim.SGD, momentum=0.9, nesterov=True))
register_optimizer("rmsprop")(_torch_optimizer(torch.optim.RMSprop))
register_optimizer("adagrad")(_torch_optimizer(torch.optim.Adagrad))
register_optimizer("adam")(_torch_optimizer(torch.optim.Adam))
register_optimizer("adamw")(_torch_optimizer(torch.optim.AdamW))  # Adam with decoupled weight decay
# After 2015 (lenet_core.optimizers): Lion; Muon with AdamW beside it; AdamW without a schedule.
register_optimizer("lion")(_torch_optimizer(optimizers.Lion))
register_optimizer("schedule_free_adamw")(_torch_optimizer(optimizers.schedule_free_adamw))


@register_optimizer("muon")
def _muon(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    return optimizers.muon_with_adamw(model, config.lr, config.weight_decay)


# The paper's optimizer: one example a step, each weight's step scaled by its curvature.
register_optimizer("sdlm")(lambda model, config: optimizers.SDLM(model, LOSSES[config.loss](config), lr=config.lr,
                                                                 weight_decay=config.weight_decay,
                                                                 examples=optimizers.SDLM_EXAMPLES))


# Sharpness-aware minimization around a base optimizer; its radius is the RunConfig's sam_rho.
SAM_OPTIMIZERS = {"sam_momentum": "momentum", "sam_adamw": "adamw"}
for _name, _base in SAM_OPTIMIZERS.items():
    register_optimizer(_name)(lambda model, config, base=_base: optimizers.SAM(OPTIMIZERS[base](model, config),
                                                                               rho=config.sam_rho))


# ---------------------------------------------------------------- learning-rate schedules
# Every factor starts at 1.0 (one_cycle: at 1/25, warming up to 1.0) and stays in (0, 1] for
# t in [0, epochs): the configured lr is the largest rate of a run.

@register_schedule("constant")
def _constant(t: float, epochs: int) -> float:
    return 1.0


def _at_half_and_three_quarters(factors: tuple[float, float, float]) -> ScheduleFactor:
    """factors[0] until half the run, factors[1] from half, factors[2] from three quarters
    (counted in whole epochs)."""
    def factor(t: float, epochs: int) -> float:
        passed = sum(math.floor(t) >= m * epochs for m in (0.5, 0.75))
        return factors[passed]
    return factor


# `step` divides the rate by 10 twice; `bigballon` is BIGBALLON/cifar-10-cnn's LeNet schedule
# (0.01, 0.005, 0.001 over 200 epochs).
register_schedule("step")(_at_half_and_three_quarters((1.0, 0.1, 0.1**2)))
register_schedule("bigballon")(_at_half_and_three_quarters((1.0, 0.5, 0.1)))


@register_schedule("cosine")
def _cosine(t: float, epochs: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * t / epochs))


@register_schedule("one_cycle")
def _one_cycle(t: float, epochs: int) -> float:
    """torch's OneCycleLR defaults: 30% warm-up from 1/25, cosine both ways, down to 1/25/1e4."""
    warm = 0.3 * epochs
    if t < warm:
        return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * t / warm))
    low = 1 / 25 / 1e4
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (epochs - warm)))


# The 1998 paper's 20 passes: lr 5e-4 (2 passes), 2e-4 (3), 1e-4 (3), 5e-5 (4), 1e-5 after,
# as multiples of the first rate: (end of the stretch in passes, factor).
LECUN1998 = ((2, 1.0), (5, 0.4), (8, 0.2), (12, 0.1), (math.inf, 0.02))


@register_schedule("lecun1998")
def _lecun1998(t: float, epochs: int) -> float:
    """The paper's 20 passes, stretched to this run's length."""
    p = math.floor(t) * 20 / epochs
    return next(f for end, f in LECUN1998 if p < end)


# ---------------------------------------------------------------- losses
# (config) -> loss from the network's outputs (scores) and the labels: their mean, or with
# reduction="none" each example's (F.cross_entropy's argument).
LossFn = Callable[..., torch.Tensor]


def with_rubbish(scores: torch.Tensor, j: float) -> torch.Tensor:
    """The scores and one more column, the constant -j: the MAP criterion's "rubbish class"."""
    return torch.cat([scores, scores.new_full((len(scores), 1), -j)], 1)


def _map(config) -> LossFn:
    """The 1998 paper's MAP criterion (its eq. 9) for RBF outputs y_i (scores -y_i):
    E = y_correct + log(e^-j + sum_i e^-y_i), which is cross-entropy over the scores and -j."""
    return lambda scores, labels, reduction="mean": F.cross_entropy(with_rubbish(scores, config.map_j), labels,
                                                                    reduction=reduction)


LOSSES: dict[str, Callable[[Any], LossFn]] = {
    "cross_entropy": lambda config: partial(F.cross_entropy, label_smoothing=config.label_smoothing),
    "map": _map,
}


# ---------------------------------------------------------------- augmentations

@dataclass(frozen=True)
class Augment:
    """What an augmentation name does. In training (RunConfig.augment): `shift` moves each image
    by a random offset of up to shift_pixels, `flip` mirrors it left to right with probability 1/2.
    In evaluation (RunConfig.test_augment): `shift` adds the image moved by one pixel each way
    (5 views), `flip` the mirror image of each view (x2)."""

    shift: bool = False
    flip: bool = False


AUGMENTATIONS: dict[str, Augment] = {
    "none": Augment(),
    "shift": Augment(shift=True),
    "flip": Augment(flip=True),
    "shift_flip": Augment(shift=True, flip=True),
}
