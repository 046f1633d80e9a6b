"""The training loop: one validated RunConfig in, one result record out.

Data stays on the device as tensors; a step is an index into them, an
optional batched augmentation, forward, backward, update. Nothing in the loop
synchronizes with the host (losses and accuracies accumulate on the device and
are read once per epoch), so the same code is fast on a GPU and on a CPU.
"""

from __future__ import annotations

import math
import os
import pickle
import platform
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime, timezone
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import SHIFT_PIXELS, RunConfig
from .data import Splits, splits
from .diagnostics import trained_summary
from .mixing import CUTOUT_PIXELS, mix
from .optimizers import Averaged
from .paths import atomic_write
from .model import LeNet5, TableConv2d, count_parameters
from .registry import AUGMENTATIONS, LOSSES, OPTIMIZERS, SCHEDULES

# Bump when a change alters what a stored run would contain (its numbers or
# their meaning): the version is part of every run key, so old runs are not reused.
# Not bumped for the channels-last memory format (the `fast` path): it computes
# the same function and changes results only by float32 rounding, which
# tests/test_train.py bounds; each record names its format in its provenance
# (records without one ran in NCHW, reproduced exactly by train(config, fast=False)).
ENGINE_VERSION = "1"
# Changes that alter the numbers of some configurations only: each is named here with the
# configurations it applies to, and its name joins those runs' engine version (and so their keys),
# while every other stored run keeps its key.
ENGINE_REVISIONS: dict[str, Callable[[RunConfig], bool]] = {
    # SWA's best epoch is chosen among the epochs its average is evaluated at (the last
    # 1 - swa_start of the run): before them the network validated is the raw one.
    "swa-best-averaged": lambda config: config.average == "swa",
}


def engine_version(config: RunConfig) -> str:
    """The engine version a run of `config` is keyed and recorded under: ENGINE_VERSION, then the
    name of each revision that applies to it ("1+swa-best-averaged")."""
    return "+".join([ENGINE_VERSION, *(name for name, applies in ENGINE_REVISIONS.items() if applies(config))])

EVAL_BATCH = 2048
DIAGNOSTIC_BATCH = 1024
# Training images that re-estimate batch norm's statistics for averaged weights (schedule-free).
BN_EXAMPLES = 8192


def pick_device(device: str | None = None) -> torch.device:
    """CUDA when present, else CPU; an explicit choice is honoured and checked."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; valid: auto, cpu, cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; valid: auto, cpu")
    return torch.device(device)


# ---------------------------------------------------------------- augmentation (batched, on device)

def _padded(x: torch.Tensor, pad: int, fill: torch.Tensor) -> torch.Tensor:
    """x with a border of `pad` pixels of `fill` on every side."""
    b, c, h, w = x.shape
    padded = fill.expand(b, c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, :, pad:pad + h, pad:pad + w] = x
    return padded


def random_shift(x: torch.Tensor, pad: int, fill: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Translate each image by up to +-pad pixels, filling with `fill` (pad + random crop)."""
    b, c, h, w = x.shape
    padded = _padded(x, pad, fill)
    dy = torch.randint(0, 2 * pad + 1, (b, 1), device=x.device, generator=g)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), device=x.device, generator=g)
    rows = dy + torch.arange(h, device=x.device)  # b x h
    cols = dx + torch.arange(w, device=x.device)  # b x w
    idx = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return padded.flatten(2).gather(2, idx).view(b, c, h, w)


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device, generator=g) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def augment(x: torch.Tensor, kind: str, data: Splits, g: torch.Generator, pixels: int = 0) -> torch.Tensor:
    """Augmentation `kind` (a name in AUGMENTATIONS) of a batch: shifts by up to `pixels`
    (0: the dataset's default), then flips."""
    chosen = AUGMENTATIONS[kind]
    if chosen.shift:
        x = random_shift(x, pixels or SHIFT_PIXELS[data.name], data.background, g)
    if chosen.flip:
        x = random_flip(x, g)
    return x


def augmented_examples(dataset: str, kind: str, n: int = 8, copies: int = 4, seed: int = 0,
                       pixels: int = 0, data_copy: str = "official", mix_kind: str = "none",
                       mix_alpha: float = 1.0) -> torch.Tensor:
    """`copies` augmented versions of each of the first n training images, one image's copies
    side by side: what the network sees under augmentation `kind`, then mixing `mix_kind` (with the
    other images of this batch, as in training)."""
    data = splits(dataset, "cpu", copy=data_copy)
    x = data.train_x[:n].repeat_interleave(copies, dim=0)
    g = torch.Generator().manual_seed(seed)
    x = augment(x, kind, data, g, pixels)
    if mix_kind != "none":
        x = mix(x, data.train_y[:n].repeat_interleave(copies), mix_kind, mix_alpha, g, fill=data.background,
                cutout_side=CUTOUT_PIXELS[dataset])[0]
    return x


# ---------------------------------------------------------------- evaluation

# The one-pixel moves of test-time "shift" views (down, up, right, left), after the image itself.
TEST_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def eval_views(x: torch.Tensor, kind: str, fill: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The views of a batch that evaluation with test_augment=`kind` averages over: the images,
    where AUGMENTATIONS[kind].shift also each moved by one pixel in each direction (filled with
    `fill`), where AUGMENTATIONS[kind].flip each of those mirrored left to right."""
    chosen = AUGMENTATIONS[kind]
    views = [x]
    if chosen.shift:
        if fill is None:
            raise ValueError(f"test_augment {kind!r} shifts images and needs the fill value (the dataset's background)")
        padded, (h, w) = _padded(x, 1, fill), x.shape[2:]
        views += [padded[:, :, 1 - dy:1 - dy + h, 1 - dx:1 - dx + w] for dy, dx in TEST_SHIFTS]
    if chosen.flip:
        views += [v.flip(3) for v in views]
    return views


def view_count(kind: str) -> int:
    """How many views evaluation with test_augment=`kind` averages over."""
    return len(eval_views(torch.zeros(1, 1, 3, 3), kind, torch.zeros(1)))


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int = 10,
             confusion: bool = False, views: str = "none", fill: torch.Tensor | None = None) -> dict:
    """Mean cross-entropy and accuracy (and optionally the confusion matrix) over (x, y).

    With views other than "none" (a test_augment), the prediction for an image is the mean of
    the predicted probabilities over its views (`eval_views`), and the loss is that mean's
    cross-entropy. The loss is that of the class probabilities softmax(outputs) whatever the run
    trained on (the MAP criterion's rubbish class is a device of training, left out here), so
    validation losses compare across criteria and across its constant j."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=x.device)
    preds = []
    for i in range(0, len(x), EVAL_BATCH):
        xb, yb = x[i:i + EVAL_BATCH], y[i:i + EVAL_BATCH]
        if views == "none":
            out = model(xb).float()
            loss += F.cross_entropy(out, yb, reduction="sum")
        else:  # log of the mean probability over the views, computed stably
            logp = torch.stack([F.log_softmax(model(v).float(), 1) for v in eval_views(xb, views, fill)])
            out = torch.logsumexp(logp, 0) - math.log(len(logp))
            loss += F.nll_loss(out, yb, reduction="sum")
        preds.append(out.argmax(1))
    model.train(was_training)
    pred = torch.cat(preds)
    result = dict(loss=loss.item() / len(x), acc=(pred == y).float().mean().item())
    if confusion:
        cm = torch.bincount(y * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)
        result["confusion"] = cm.tolist()  # rows: true class, columns: predicted
    return result


# ---------------------------------------------------------------- training

@dataclass
class TrainedRun:
    record: dict  # JSON-ready: config, history, metrics, provenance
    model: nn.Module  # best-validation weights when early stopping is on, else the last
    weights: dict = field(default_factory=dict)  # {"last": state_dict, "best": state_dict}


def _progress_enabled(progress: bool | None) -> bool:
    if progress is None:
        return os.environ.get("LENET_PROGRESS", "1") not in ("0", "false", "no", "off")
    return progress


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _mode(optimizer, mode: str, model: LeNet5 | None = None, train_x: torch.Tensor | None = None) -> None:
    """Put an optimizer that keeps separate weights for evaluation (schedule-free) in `mode`; in
    "eval", a network with batch norm then gets statistics of those weights, from training images."""
    switch = getattr(optimizer, mode, None)
    if switch is None:
        return
    switch()
    if mode == "eval" and getattr(optimizer, "evaluating_average", True):
        recompute_batch_norm(model, train_x)


@torch.no_grad()
def recompute_batch_norm(model: LeNet5, x: torch.Tensor, examples: int = BN_EXAMPLES, batch: int = 512) -> None:
    """Batch norm's running statistics re-estimated for the current weights: the cumulative mean
    over the first `examples` training images, in batches (as torch.optim.swa_utils.update_bn)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    was_training = model.training
    model.train()
    for i in range(0, min(examples, len(x)), batch):
        model(x[i:i + batch])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


@contextmanager
def onednn(enabled: bool):
    """oneDNN's CPU kernels on or off inside the block (torch.backends.mkldnn.flags without its
    TF32 setting, which warns on a CPU-only build)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def fast_layout(batch_size: int, device: torch.device) -> tuple[torch.memory_format, bool]:
    """The fast path's memory format and whether it uses oneDNN's convolutions. On one image a step
    (the 1998 optimizer's) oneDNN costs more than it saves on a CPU: PyTorch's native kernels in
    NCHW train about three times as many steps a second (bench/sdlm.py). Batches: channels-last."""
    if batch_size == 1 and device.type == "cpu":
        return torch.contiguous_format, False
    return torch.channels_last, True


def compiles_step(config: RunConfig, device: torch.device) -> bool:
    """Whether the fast path compiles the step's forward and backward into one function
    (`compiled_objective`): at one example a step on a CPU, where the step is a few hundred small
    kernels and PyTorch's dispatch of each costs more than its arithmetic (bench/sdlm.py: about
    twice the steps a second). Only where nothing in the step draws random numbers or reads a
    batch's statistics (no dropout, no batch norm, no augmentation or mixing) or adds a penalty
    (L1); `train` leaves out SAM too (a second gradient). The compiled function computes the
    eager one, up to float rounding."""
    return (config.batch_size == 1 and device.type == "cpu" and not config.dropout and not config.batch_norm
            and config.augment == "none" and config.mix == "none" and not config.l1)


def compiled_objective(model: nn.Module, criterion: Callable) -> Callable:
    """objective(x, y) -> (output, loss) that leaves the loss's gradients in every parameter's
    .grad, as `loss.backward()` does, from one torch.compile'd function of the weights
    (torch.func.grad_and_value over torch.func.functional_call of `model`)."""
    from torch.func import functional_call, grad_and_value

    names, params = zip(*model.named_parameters())
    buffers = dict(model.named_buffers())

    def loss_of(weights, x, y):
        out = functional_call(model, (dict(zip(names, weights)), buffers), (x,))
        loss = criterion(out, y)
        return loss, out.detach()

    gradient = torch.compile(grad_and_value(loss_of, has_aux=True), dynamic=False)

    def objective(x, y):
        grads, (loss, out) = gradient([p.detach() for p in params], x, y)
        for p, g in zip(params, grads):
            p.grad = g
        return out, loss

    return objective


def _load_state(path, config: RunConfig, dev: torch.device, layout) -> dict | None:
    """The state `train` left in `path` for this configuration, on this kind of device and memory
    format; None when there is none (or it is another run's, or unreadable: the run starts over)."""
    if path is None:
        return None
    try:
        state = torch.load(path, map_location=dev, weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError):
        return None
    same = (state.get("config") == config.to_dict() and state.get("device") == dev.type
            and state.get("layout") == str(layout) and state.get("engine_version") == engine_version(config))
    return state if same else None


def train(config: RunConfig, *, device: str | None = None, progress: bool | None = None,
          fast: bool = True, resume=None) -> TrainedRun:
    """Train `config` and return its record (and its model and weights).

    `fast` runs the network in the channels-last memory format, which the CPU
    and GPU convolution kernels are quicker in, or at batch size 1 on a CPU in
    NCHW with PyTorch's native convolutions instead of oneDNN's (`fast_layout`);
    fast=False is the plain eager path (NCHW, the default kernels). All compute
    the same function: one step agrees to float32 rounding, and in float64
    whole loss trajectories agree (tests/test_train.py).

    `resume`: a file the run keeps its whole state in at the end of every epoch
    (written atomically; the caller deletes it once the run is stored). Where it
    holds this configuration's state, the run carries on after its last epoch and
    gives the record the uninterrupted run gives (its provenance lists the epochs
    it resumed after).

    A non-finite training loss ends the run with status "diverged" instead of
    raising. Test metrics are computed once, after training, for the last
    epoch's weights and for the best-validation-loss epoch's weights.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"train() takes a RunConfig, got {type(config).__name__}")
    dev = pick_device(device)
    if os.environ.get("LENET_THREADS"):  # set by the sweep when it runs several notebooks at once
        torch.set_num_threads(int(os.environ["LENET_THREADS"]))
    data = splits(config.dataset, str(dev), config.normalize, config.data_copy)
    train_x, train_y = data.train_x, data.train_y
    if config.train_size:
        if config.train_size > len(train_y):
            raise ValueError(f"train_size={config.train_size} is out of range: the training part of "
                             f"{config.dataset} has {len(train_y)} examples")
        train_x, train_y = train_x[:config.train_size], train_y[:config.train_size]
    n = len(train_y)

    torch.manual_seed(config.seed)  # model initialization and dropout
    g = torch.Generator(device=dev).manual_seed(config.seed)  # batch order and augmentation
    layout, use_onednn = fast_layout(config.batch_size, dev) if fast else (torch.contiguous_format, True)
    model = LeNet5(**config.model_kwargs()).to(dev, memory_format=layout)
    initial = _snapshot(model)  # for the spectrum of what training changes
    optimizer = OPTIMIZERS[config.optimizer](model, config)
    if config.average != "none":  # validated and tested as the averaged network
        optimizer = Averaged(optimizer, model, config.average, config.ema_decay,
                             start=math.floor(config.swa_start * config.epochs))
    for group in optimizer.param_groups:  # the schedule scales each group's own rate
        group["base_lr"] = group["lr"]
    two_pass = getattr(optimizer, "needs_closure", False)  # SAM: a second gradient at perturbed weights
    begin_pass = getattr(getattr(optimizer, "base", optimizer), "begin_pass", None)  # SDLM: curvature
    criterion = LOSSES[config.loss](config)
    compiled = compiled_objective(model, criterion) if fast and compiles_step(config, dev) and not two_pass else None
    evaluate_views = partial(evaluate, views=config.test_augment, fill=data.background)
    lr_factor = SCHEDULES[config.schedule]
    l1_params = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, TableConv2d))]
    steps = math.ceil(n / config.batch_size)

    history, best, wait, status, stopped_early = [], None, 0, "ok", False
    resumed, before = [], 0.0  # epochs resumed after; training seconds spent before this call
    state = _load_state(resume, config, dev, layout)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"].cpu())
        g.set_state(state["generator"].cpu())
        if dev.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), dev)
        history, best, wait, initial = state["history"], state["best"], state["wait"], state["initial"]
        resumed, before = state["resumed"] + [len(history)], state["seconds"]
    started = time.perf_counter() - before
    from tqdm.auto import tqdm  # picks the notebook widget inside Jupyter

    bar = tqdm(range(len(history), config.epochs), desc=f"{config.dataset} seed {config.seed}", unit="epoch",
               disable=not _progress_enabled(progress), leave=False, initial=len(history), total=config.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        _mode(optimizer, "train")
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        perm = torch.randperm(n, device=dev, generator=g)
        lr_start = config.lr * lr_factor(epoch, config.epochs)
        if begin_pass is not None:
            begin_pass(train_x, train_y, g)
        with onednn(use_onednn):  # off only on the path that is quicker without it
            for step in range(steps):
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * lr_factor(epoch + step / steps, config.epochs)
                idx = perm[step * config.batch_size:(step + 1) * config.batch_size]
                x, y = train_x[idx], train_y[idx]
                if config.augment != "none":
                    x = augment(x, config.augment, data, g, config.shift_pixels)
                if config.mix != "none":
                    x, y_other, share = mix(x, y, config.mix, config.mix_alpha, g, fill=data.background,
                                            cutout_side=config.cutout_pixels or CUTOUT_PIXELS[data.name])
                x = x.contiguous(memory_format=layout)

                def objective():  # the batch's loss, its gradients computed
                    out = model(x)
                    if config.mix in ("mixup", "cutmix"):  # the loss against the mixed label
                        loss = (share * criterion(out, y, reduction="none")
                                + (1 - share) * criterion(out, y_other, reduction="none")).mean()
                    else:
                        loss = criterion(out, y)
                    total = loss + config.l1 * sum(w.abs().sum() for w in l1_params) if config.l1 else loss
                    total.backward()
                    return out, loss

                optimizer.zero_grad(set_to_none=True)
                out, loss = compiled(x, y) if compiled else objective()
                optimizer.step(lambda: objective()[1]) if two_pass else optimizer.step()
                loss_sum += loss.detach() * len(y)
                correct += (out.argmax(1) == y).sum()
        train_loss = loss_sum.item() / n  # the one host sync of the epoch
        if not math.isfinite(train_loss):
            status = "diverged"
            history.append(dict(epoch=epoch + 1, train_loss=None, train_acc=None, val_loss=None,
                                val_acc=None, lr=lr_start, seconds=time.perf_counter() - t0))
            break
        entry = dict(epoch=epoch + 1, train_loss=train_loss, train_acc=correct.item() / n)
        if config.average != "none":  # the network as trained, beside its average
            raw = evaluate_views(model, data.val_x, data.val_y)
            entry.update(val_loss_raw=raw["loss"], val_acc_raw=raw["acc"])
        _mode(optimizer, "eval", model, train_x)  # averaged weights (schedule-free, ema, swa) from here
        val = evaluate_views(model, data.val_x, data.val_y)
        history.append(dict(**entry, val_loss=val["loss"], val_acc=val["acc"], lr=lr_start,
                            seconds=time.perf_counter() - t0))
        bar.set_postfix(val_acc=f"{val['acc']:.4f}")
        if not getattr(optimizer, "evaluating_average", True):
            pass  # SWA before its average starts: the raw network is validated, and chosen by none
        elif best is None or val["loss"] < best["val_loss"]:
            best, wait = dict(epoch=epoch + 1, val_loss=val["loss"], val_acc=val["acc"], state=_snapshot(model)), 0
        else:
            wait += 1
            if config.patience and wait >= config.patience:
                stopped_early = True
                break
        if resume is not None and epoch + 1 < config.epochs:  # everything the next epoch starts from
            saved = dict(config=config.to_dict(), device=dev.type, layout=str(layout), engine_version=engine_version(config),
                         model=model.state_dict(), optimizer=optimizer.state_dict(), rng=torch.get_rng_state(),
                         generator=g.get_state(), history=history, best=best, wait=wait, initial=initial,
                         resumed=resumed, seconds=time.perf_counter() - started,
                         cuda_rng=torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None)
            atomic_write(resume, lambda tmp: torch.save(saved, tmp))
    bar.close()
    train_seconds = time.perf_counter() - started

    metrics = dict(parameters=count_parameters(model), epochs_run=len(history),
                   stopped_early=stopped_early, best_epoch=best and best["epoch"],
                   val_loss_best=best and best["val_loss"], val_acc_best=best and best["val_acc"],
                   diverged_epoch=history[-1]["epoch"] if status == "diverged" else None)
    weights = {"last": _snapshot(model)}
    if status == "ok":
        test = partial(evaluate_views, x=data.test_x, y=data.test_y, confusion=True)
        last = test(model)
        if best["epoch"] == len(history):  # the last epoch was the best: same weights, same numbers
            best_test = last
        else:
            model.load_state_dict(best["state"])
            best_test = test(model)
        weights["best"] = best["state"]
        metrics.update(test_loss_last=last["loss"], test_acc_last=last["acc"],
                       test_loss_best=best_test["loss"], test_acc_best=best_test["acc"],
                       test_confusion_best=best_test["confusion"])
        if not config.patience:  # without early stopping the model a user gets is the last one
            model.load_state_dict(weights["last"])
        start = LeNet5(**config.model_kwargs()).to(dev)
        start.load_state_dict(initial)
        diagnostics = trained_summary(model, data.val_x[:DIAGNOSTIC_BATCH],
                                      train=(train_x[:DIAGNOSTIC_BATCH], train_y[:DIAGNOSTIC_BATCH]), initial=start)
    else:
        metrics.update(test_loss_last=None, test_acc_last=None, test_loss_best=None,
                       test_acc_best=None, test_confusion_best=None)
        diagnostics = None

    record = dict(
        engine_version=engine_version(config),
        config=config.to_dict(),
        data=data.provenance,
        status=status,
        history=history,
        metrics=metrics,
        diagnostics=diagnostics,  # of the returned model: on the first validation images, sharpness on training ones
        provenance=dict(
            date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            host=socket.gethostname(),
            device=dev.type,
            device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
            torch=torch.__version__,
            python=platform.python_version(),
            threads=torch.get_num_threads(),
            memory_format="channels_last" if layout == torch.channels_last else "nchw",
            conv_kernels="onednn" if use_onednn else "native",  # records without it: oneDNN
            step="compiled" if compiled else "eager",  # records without it: eager
            train_seconds=round(train_seconds, 3),  # the epochs, validation included
            wall_seconds=round(time.perf_counter() - started, 3),  # plus the final test evaluation
            train_images_per_second=round(n * len(history) / train_seconds, 1),
            **({"resumed_after_epochs": resumed} if resumed else {}),
        ),
    )
    return TrainedRun(record=record, model=model, weights=weights)
