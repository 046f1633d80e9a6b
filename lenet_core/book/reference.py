"""What the book measures against and how it is organised: its chapters, the goals of the study,
and the published numbers with the protocol behind each."""

from __future__ import annotations

from dataclasses import dataclass


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
