"""What the book measures against and how it is organised: its chapters, the goals of the study,
and the published numbers with the protocol behind each. The goals and the published numbers are
those of `lenet_core/reference.yml` (see `lenet_core.reference`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..reference import ClassicGoal, Goal, Published, Source, Technique, load

_REFERENCE = load()

# Validation accuracy a run must reach for "epochs to target", per dataset.
TARGETS: dict[str, float] = _REFERENCE.epochs_to
# What the study set out to reach: the modernized network per dataset, the 1998 network on MNIST.
GOALS: tuple[Goal, ...] = _REFERENCE.goals
CLASSIC_GOAL: ClassicGoal = _REFERENCE.classic
# The published numbers, source by source, with the protocol behind each.
PUBLISHED: tuple[Source, ...] = _REFERENCE.sources
# What the papers behind each chapter's techniques report, per chapter (its notebook).
TECHNIQUES: dict[str, tuple[Technique, ...]] = _REFERENCE.techniques

__all__ = ["CHAPTERS", "CLASSIC_GOAL", "GOALS", "PUBLISHED", "TARGETS", "TECHNIQUES", "Chapter", "ClassicGoal",
           "Goal", "Published", "Source", "Technique"]


@dataclass(frozen=True)
class Chapter:
    notebook: str
    title: str
    # The parameter set every other row is tested against: the modern default
    # network (ReLU, max pooling, PyTorch's init, Adam 1e-3 constant, no
    # regularization, no early stopping, no augmentation).
    baseline: dict
    # A chapter whose technique acts at the end of training (an average of the last epochs) also
    # shows every setting's test accuracy at the last epoch, and the epochs validation chose.
    last_epoch: bool = False


CHAPTERS = (
    Chapter("activation", "Activation functions", {"act": "relu"}),
    Chapter("pooling", "Pooling", {"pool": "max"}),
    Chapter("initialization", "Initialization", {"init": "default"}),
    Chapter("optimization", "Optimizers and learning-rate schedules",
            {"optimizer": "adam", "lr": 0.001, "schedule": "constant"}),
    Chapter("regularization", "Regularization", {"weight_decay": 0.0, "l1": 0.0, "dropout": 0.0}),
    Chapter("early_stopping", "Early stopping", {"patience": 0}),
    # batch norm is studied under SGD with momentum; its baseline is the plain network at lr 0.01
    Chapter("normalization", "Normalization", {"batch_norm": False, "lr": 0.01}),
    Chapter("augmentation", "Data augmentation", {"augment": "none"}),
    # After 2015: each against the current recipe of its kind (AdamW with a cosine schedule; the
    # augmentation chapter's shifts, and flips where they keep an image's meaning).
    Chapter("modern_optimizers", "Optimizers after Adam", {"optimizer": "adamw"}),
    Chapter("weight_averaging", "Weight averaging", {"average": "none"}, last_epoch=True),
    Chapter("mixing", "Mixing augmentations", {"mix": "none"}),
)
