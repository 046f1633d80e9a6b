"""The run configuration: every choice of one training run, validated where it is built."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Collection
from dataclasses import dataclass, fields
from typing import Any

from .data import COPIES, DATASETS, OFFICIAL
from .mixing import MIXES
from .model import ACTIVATIONS, INITIALIZERS, NORMS, OUTPUTS, POOLS
from .registry import AUGMENTATIONS, LOSSES, OPTIMIZERS, SAM_OPTIMIZERS, SCHEDULES

PRESETS = ("modern", "classic")
# The two substitutes of the paper's parts in later reproductions, as RunConfig fields: a linear output
# layer with softmax cross-entropy for the RBF units and their criterion, SGD with momentum on batches of
# 32 (at the 1998 schedule's rate) for stochastic diagonal Levenberg-Marquardt.
SOFTMAX = dict(output="linear", loss="cross_entropy")
SUBSTITUTES = dict(SOFTMAX, optimizer="momentum", lr=0.05, batch_size=32)
MAX_SHIFT_PIXELS = 8  # a quarter of the 32x32 input
# The largest shift of a shifting augmentation when a run sets none (shift_pixels=0).
SHIFT_PIXELS = {"mnist": 2, "fashion_mnist": 2, "cifar10": 4}

# Fields added after runs were first stored enter the run key only when set away from their
# default: every run stored before a field existed keeps its key, and so stays loadable.
KEYED_WHEN_SET = ("shift_pixels", "test_augment", "normalize", "sam_rho", "average", "ema_decay", "swa_start",
                  "mix", "mix_alpha", "cutout_pixels", "norm_layer", "output", "loss", "map_j")
AVERAGES = ("none", "ema", "swa")
# Fields that never enter the configuration part of the key: the data copy is keyed through the
# data's own identity (its content hash and lossy flag), which tells the copies apart.
KEYED_THROUGH_DATA = ("data_copy",)

# The tables the training loop looks names up in; their keys are the valid names, read when a
# RunConfig is built (a name registered later is valid from then on).
NAME_CHOICES: dict[str, Collection[str]] = {
    "dataset": DATASETS,
    "act": ACTIVATIONS,
    "pool": POOLS,
    "init": INITIALIZERS,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "augment": AUGMENTATIONS,
    "test_augment": AUGMENTATIONS,
    "norm_layer": NORMS,
    "output": OUTPUTS,
    "loss": LOSSES,
}


@dataclass(frozen=True)
class RunConfig:
    """One training run. Defaults: the modern ReLU / max-pool LeNet-5 with Adam."""

    dataset: str = "mnist"
    # network
    act: str = "relu"
    pool: str = "max"
    init: str = "default"
    c3_table: bool = False  # the 1998 partial connection table between S2 and C3
    batch_norm: bool = False  # normalization after each hidden layer, of the kind norm_layer names
    norm_layer: str = "batch"  # batch, group (groups of 4 channels) or layer (lenet_core.model.NORMS)
    dropout: float = 0.0
    # The output layer: "linear" (84 -> 10), or "rbf", the paper's ten Euclidean RBF units with its
    # fixed +-1 codes (lenet_core.model.RBF), whose scores are minus the squared distances.
    output: str = "linear"
    # The training criterion on the outputs: softmax cross-entropy, or the paper's MAP criterion
    # (its eq. 9, for rbf outputs): cross-entropy over the scores and one more constant score -map_j,
    # the "rubbish class" (lenet_core.registry.LOSSES).
    loss: str = "cross_entropy"
    map_j: float = 10.0  # the paper gives none: chosen on MNIST validation (sweep.yml's map_j_grid)
    # optimization
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    sam_rho: float = 0.05  # radius of a SAM optimizer's perturbation (sam_momentum, sam_adamw)
    # Weight averaging: validation and test see an exponential moving average of the weights
    # ("ema", decay ema_decay per step) or their mean over the epochs after the first swa_start
    # fraction of the run ("swa"); training is unchanged.
    average: str = "none"
    ema_decay: float = 0.999
    swa_start: float = 0.75
    batch_size: int = 128
    epochs: int = 10
    # regularization
    weight_decay: float = 0.0  # L2, through the optimizer (decoupled for adamw)
    l1: float = 0.0  # penalty on the sum of |weights| of conv and linear layers
    label_smoothing: float = 0.0
    augment: str = "none"
    shift_pixels: int = 0  # largest shift of a shifting augment; 0 = the dataset's default (SHIFT_PIXELS)
    # A mixing augmentation of each batch after the shifts and flips (lenet_core.mixing): cutout's
    # square side (0 = the dataset's default, mixing.CUTOUT_PIXELS), mixup's and cutmix's Beta alpha.
    mix: str = "none"
    mix_alpha: float = 1.0
    cutout_pixels: int = 0
    # Evaluation (validation and test) averages the predicted probabilities over views of each image:
    # "shift" adds the image moved by one pixel each way (5 views), "flip" its mirror image (x2).
    test_augment: str = "none"
    patience: int = 0  # early stopping on validation loss; 0 = off
    # data and randomness
    # Inputs standardized per channel with the training part's mean and standard deviation;
    # False feeds pixel values in [0, 1] (padding and shifts still fill with black).
    normalize: bool = True
    train_size: int = 0  # first N examples of the fixed training part; 0 = all of it
    # Which copy of the dataset: its official files, or for CIFAR-10 the lossy JPEG copy ("jpeg")
    # that the book keeps only to measure what it costs.
    data_copy: str = OFFICIAL
    seed: int = 0

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, f.type, getattr(self, f.name)))
        for name, choices in NAME_CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")
        if self.data_copy not in COPIES[self.dataset]:
            raise ValueError(f"unknown data_copy {self.data_copy!r} for {self.dataset}; valid: "
                             f"{', '.join(COPIES[self.dataset])}")
        if self.norm_layer != RunConfig.norm_layer and not self.batch_norm:
            raise ValueError(f"norm_layer={self.norm_layer!r} applies only with batch_norm=True (which switches "
                             f"normalization on); got batch_norm=False")
        if self.loss == "map" and self.output != "rbf":
            raise ValueError(f"loss 'map' (the paper's criterion on RBF distances) needs output 'rbf'; got output "
                             f"{self.output!r}")
        _check(self.map_j > 0, "map_j", self.map_j, "must be > 0 (the paper: 'the constant j is positive')")
        if self.map_j != RunConfig.map_j and self.loss != "map":
            raise ValueError(f"map_j={self.map_j} applies only to loss 'map'; got loss {self.loss!r}")
        if self.label_smoothing and self.loss == "map":
            raise ValueError(f"label_smoothing={self.label_smoothing} applies only to loss 'cross_entropy'; got loss 'map'")
        if self.optimizer == "sdlm" and self.batch_norm:
            raise ValueError("optimizer 'sdlm' estimates each weight's curvature from single examples, which batch "
                             "norm's batch statistics couple; got batch_norm=True")
        _check(self.lr > 0, "lr", self.lr, "must be > 0")
        _check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _check(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        _check(self.l1 >= 0, "l1", self.l1, "must be >= 0")
        _check(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing, "must be in [0, 1)")
        _check(self.patience >= 0, "patience", self.patience, "must be >= 0 (0 turns early stopping off)")
        _check(self.train_size >= 0, "train_size", self.train_size, "must be >= 0 (0 uses the whole training part)")
        _check(self.seed >= 0, "seed", self.seed, "must be >= 0")
        _check(self.sam_rho > 0, "sam_rho", self.sam_rho, "must be > 0")
        if self.mix not in MIXES:
            raise ValueError(f"unknown mix {self.mix!r}; valid: {', '.join(MIXES)}")
        _check(self.mix_alpha > 0, "mix_alpha", self.mix_alpha, "must be > 0")
        _check(0 <= self.cutout_pixels <= 32, "cutout_pixels", self.cutout_pixels,
               "must be in [0, 32] (0 uses the dataset's default)")
        for name, needs in (("mix_alpha", ("mixup", "cutmix")), ("cutout_pixels", ("cutout",))):
            if getattr(self, name) != getattr(RunConfig, name) and self.mix not in needs:
                raise ValueError(f"{name}={getattr(self, name)} applies only to mix {' or '.join(needs)}; "
                                 f"got mix {self.mix!r}")
        if self.average not in AVERAGES:
            raise ValueError(f"unknown average {self.average!r}; valid: {', '.join(AVERAGES)}")
        _check(0 < self.ema_decay < 1, "ema_decay", self.ema_decay, "must be in (0, 1)")
        _check(0 <= self.swa_start < 1, "swa_start", self.swa_start, "must be in [0, 1)")
        for name, needs in (("ema_decay", "ema"), ("swa_start", "swa")):
            if getattr(self, name) != getattr(RunConfig, name) and self.average != needs:
                raise ValueError(f"{name}={getattr(self, name)} applies only to average {needs!r}; got "
                                 f"average {self.average!r}")
        if self.average != "none" and self.optimizer == "schedule_free_adamw":
            raise ValueError("average applies to an optimizer that does not average already; "
                             "schedule_free_adamw evaluates its own average")
        if self.sam_rho != RunConfig.sam_rho and self.optimizer not in SAM_OPTIMIZERS:
            raise ValueError(f"sam_rho={self.sam_rho} applies only to a SAM optimizer; got optimizer "
                             f"{self.optimizer!r}; valid: {', '.join(SAM_OPTIMIZERS)}")
        _check(0 <= self.shift_pixels <= MAX_SHIFT_PIXELS, "shift_pixels", self.shift_pixels,
               f"must be in [0, {MAX_SHIFT_PIXELS}] (0 uses the dataset's default)")
        if self.shift_pixels and not AUGMENTATIONS[self.augment].shift:
            shifting = ", ".join(k for k, a in AUGMENTATIONS.items() if a.shift)
            raise ValueError(f"shift_pixels={self.shift_pixels} needs a shifting augment; got augment "
                             f"{self.augment!r}; valid: {shifting}")
        for name in ("augment", "test_augment"):
            if self.dataset == "mnist" and AUGMENTATIONS[getattr(self, name)].flip:
                unflipped = ", ".join(k for k, a in AUGMENTATIONS.items() if not a.flip)
                raise ValueError(f"{name} {getattr(self, name)!r} flips images, which changes what a digit "
                                 f"means; valid for mnist: {unflipped}")

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown configuration key(s) {', '.join(unknown)}; "
                             f"valid: {', '.join(f.name for f in fields(cls))}")
        return cls(**values)

    @classmethod
    def classic(cls, dataset: str = "mnist", **overrides) -> "RunConfig":
        """The 1998 LeNet-5 as the paper trained it: scaled tanh, trainable subsampling, the C3
        table, +-2.4/F_in initialization; ten Euclidean RBF output units with the fixed codes of its
        Fig. 3 (the same on every dataset), its MAP criterion (eq. 9), and its optimizer, stochastic
        diagonal Levenberg-Marquardt (one example a step, each weight's step eta / (mu + h_kk);
        lenet_core.optimizers.SDLM) at the paper's global rates (5e-4 for 2 passes, 2e-4 for 3,
        1e-4 for 3, 5e-5 for 4, then 1e-5), 20 passes.

        The two substitutes of later reproductions are options: `output="linear",
        loss="cross_entropy"` (softmax cross-entropy), then `optimizer="momentum", lr=0.05,
        batch_size=32` (SGD with momentum on mini-batches), as the ladder's first rungs apply them.
        """
        values = dict(dataset=dataset, act="scaled_tanh", pool="subsample", init="lecun_uniform",
                      c3_table=True, output="rbf", loss="map", optimizer="sdlm", lr=5e-4,
                      schedule="lecun1998", batch_size=1, epochs=20)
        return cls.from_dict({**values, **overrides})

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "RunConfig":
        """Fields plus an optional "preset" to start from: "modern" (the defaults) or "classic"
        (the 1998 network as the paper trained it)."""
        values = dict(values)
        preset = values.pop("preset", "modern")
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        return cls.from_dict(values) if preset == "modern" else getattr(cls, preset)(**values)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def canonical_json(self) -> str:
        """Stable text of the configuration: the basis of the run key."""
        values = {k: v for k, v in self.to_dict().items()
                  if not (k in KEYED_WHEN_SET and v == getattr(RunConfig, k)) and k not in KEYED_THROUGH_DATA}
        return json.dumps(values, sort_keys=True, separators=(",", ":"))

    def model_kwargs(self) -> dict[str, Any]:
        return dict(in_channels=DATASETS[self.dataset].channels, act=self.act, pool=self.pool,
                    init=self.init, dropout=self.dropout, batch_norm=self.batch_norm,
                    c3_table=self.c3_table, norm_layer=self.norm_layer, output=self.output)


def _check(ok: bool, name: str, value, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is out of range: {rule}")


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _coerce(name: str, type_name: str, value):
    """Accept the value, or its text form from a command line, as the field's type."""
    try:
        if type_name == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if type_name == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if type_name == "float":
            if isinstance(value, bool) or not math.isfinite(float(value)):
                raise ValueError
            return float(value)
        if type_name == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ValueError(f"{name}={value!r} is not a valid {type_name}")
