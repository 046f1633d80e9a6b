import math

import pytest
import torch

from lenet_core import data
from lenet_core.config import SUBSTITUTES, RunConfig
from lenet_core.model import LeNet5
from lenet_core.registry import LECUN1998, LOSSES, OPTIMIZERS, SCHEDULES
from lenet_core.train import augment, eval_views, evaluate, pick_device, random_flip, random_shift, train

pytestmark = pytest.mark.usefixtures("mnist_ready")

TINY = dict(train_size=256, epochs=1, batch_size=64)


def _curves(record):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in record["history"]]


def test_a_short_real_run_learns_mnist():
    """5,000 training digits, 3 epochs of Adam: at least 90% test accuracy (measured: 91.7%)."""
    record = train(RunConfig(train_size=5000, epochs=3, seed=0)).record
    assert record["status"] == "ok"
    assert record["metrics"]["test_acc_best"] >= 0.90
    losses = [h["train_loss"] for h in record["history"]]
    assert losses == sorted(losses, reverse=True)  # training loss falls every epoch


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_trains(optimizer):
    lr = {"sgd": 0.05, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01, "lion": 3e-4,
          "sam_momentum": 0.01}.get(optimizer, 1e-3)
    record = train(RunConfig(optimizer=optimizer, lr=lr, **{**TINY, "epochs": 2})).record
    first, last = record["history"][0], record["history"][-1]
    assert record["status"] == "ok" and last["train_loss"] < first["train_loss"], (optimizer, record["history"])


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_trains_and_sets_the_rate(schedule):
    record = train(RunConfig(schedule=schedule, lr=1e-3, **{**TINY, "epochs": 2})).record
    assert record["status"] == "ok"
    assert [h["lr"] for h in record["history"]] == [1e-3 * SCHEDULES[schedule](e, 2) for e in range(2)]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_registered_optimizer_builds_and_takes_a_step(optimizer):
    """Built from a model's parameters and the config's lr and weight decay, it takes a finite
    step that moves every parameter and carries the rate it was given."""
    torch.manual_seed(0)
    model = LeNet5(batch_norm=True)
    before = [p.detach().clone() for p in model.parameters()]
    opt = OPTIMIZERS[optimizer](model, RunConfig(optimizer=optimizer, lr=0.01, weight_decay=1e-4))
    assert isinstance(opt, torch.optim.Optimizer)
    assert all(g["lr"] == 0.01 for g in opt.param_groups)
    x = torch.randn(8, 1, 32, 32)

    def closure():
        loss = model(x).square().mean()
        loss.backward()
        return loss

    closure()
    getattr(opt, "train", lambda: None)()  # as the loop does for an optimizer with modes (schedule-free)
    opt.step(closure) if getattr(opt, "needs_closure", False) else opt.step()
    for old, new in zip(before, model.parameters(), strict=True):
        assert torch.isfinite(new).all() and not torch.equal(old, new)


G1, G2 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), torch.tensor([0.5, 1.0, -1.0], dtype=torch.float64)


def _after_two_steps(optimizer):
    """A parameter (all ones) after each of two steps of `optimizer` (lr 0.1) on the gradients G1 then G2."""
    holder = torch.nn.Module()
    holder.w = w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt, seen = OPTIMIZERS[optimizer](holder, RunConfig(optimizer=optimizer, lr=0.1)), []
    for g in (G1, G2):
        w.grad = g.clone()
        opt.step()
        seen.append(w.detach().clone())
    return seen


def test_nesterov_momentum_and_sgd_update_differently():
    """On the same gradients, with momentum 0.9 (buffer b1 = G1, b2 = 0.9 G1 + G2): sgd steps by
    G1 then G2, momentum by b1 then b2, nesterov by G1 + 0.9 b1 then G2 + 0.9 b2. After one step
    momentum equals sgd; after two, all three differ."""
    b1, b2 = G1, 0.9 * G1 + G2
    expected = {"sgd": (G1, G2), "momentum": (b1, b2), "nesterov": (G1 + 0.9 * b1, G2 + 0.9 * b2)}
    after = {name: _after_two_steps(name) for name in expected}
    for name, (step1, step2) in expected.items():
        assert torch.allclose(after[name][0], 1 - 0.1 * step1), name
        assert torch.allclose(after[name][1], 1 - 0.1 * (step1 + step2)), name
    assert torch.equal(after["momentum"][0], after["sgd"][0])
    for a, b in (("nesterov", "momentum"), ("nesterov", "sgd"), ("momentum", "sgd")):
        assert (after[a][1] - after[b][1]).abs().max() > 0.1, (a, b)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_starts_at_its_start_and_stays_positive(schedule):
    """Factor 1.0 at t=0 (one_cycle warms up from 1/25), then in (0, 1] at every step of runs of
    any length: the configured lr is the largest rate of a run."""
    factor = SCHEDULES[schedule]
    for epochs in (1, 2, 3, 10, 20, 200):
        assert factor(0, epochs) == (1 / 25 if schedule == "one_cycle" else 1.0)
        for t in (e + k / 50 for e in range(epochs) for k in range(50)):  # 50 steps an epoch
            assert 0 < factor(t, epochs) <= 1, (epochs, t)


def test_the_loop_uses_what_the_registry_holds(monkeypatch):
    """A name added to the tables trains: the loop builds that optimizer and sets that schedule's rates."""
    built = []

    def plain_sgd(model, config):
        built.append((config.lr, config.weight_decay))
        return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    monkeypatch.setitem(OPTIMIZERS, "plain_sgd", plain_sgd)
    monkeypatch.setitem(SCHEDULES, "halving", lambda t, epochs: 0.5 ** math.floor(t))
    record = train(RunConfig(optimizer="plain_sgd", schedule="halving", lr=0.04, weight_decay=1e-4,
                             **{**TINY, "epochs": 2})).record
    assert record["status"] == "ok" and built == [(0.04, 1e-4)]
    assert [h["lr"] for h in record["history"]] == [0.04, 0.02]


def test_schedule_shapes():
    assert SCHEDULES["constant"](7.3, 10) == 1
    assert [SCHEDULES["step"](e, 8) for e in range(8)] == [1, 1, 1, 1, 0.1, 0.1, pytest.approx(0.01), pytest.approx(0.01)]
    # BIGBALLON's LeNet: 0.01 until epoch 100 of 200, 0.005 until 150, 0.001 after
    rates = [0.01 * SCHEDULES["bigballon"](e + 0.5, 200) for e in range(200)]
    assert rates == pytest.approx([0.01] * 100 + [0.005] * 50 + [0.001] * 50)
    assert SCHEDULES["cosine"](0, 10) == 1 and SCHEDULES["cosine"](5, 10) == pytest.approx(0.5)
    assert SCHEDULES["cosine"](10, 10) == pytest.approx(0, abs=1e-12)
    assert SCHEDULES["one_cycle"](0, 10) == pytest.approx(1 / 25)
    assert SCHEDULES["one_cycle"](3, 10) == pytest.approx(1)
    assert SCHEDULES["one_cycle"](10, 10) == pytest.approx(1 / 25 / 1e4)
    # the paper's 20 passes: 5e-4 x2, 2e-4 x3, 1e-4 x3, 5e-5 x4, 1e-5 after
    rates = [5e-4 * SCHEDULES["lecun1998"](e, 20) for e in range(20)]
    assert rates == pytest.approx([5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8)
    assert LECUN1998[-1][1] == 0.02


@pytest.mark.parametrize("change", [dict(act="sigmoid", pool="avg", init="xavier_uniform"),
                                    RunConfig.classic(**SUBSTITUTES).to_dict() | TINY,
                                    dict(batch_norm=True, dropout=0.5),
                                    dict(augment="shift", label_smoothing=0.1, weight_decay=1e-3, l1=1e-5)])
def test_network_and_regularization_choices_train(change):
    record = train(RunConfig(**{**TINY, **change})).record
    assert record["status"] == "ok" and record["metrics"]["test_acc_best"] > 0


def test_same_seed_same_history_different_seed_differs():
    a = train(RunConfig(seed=1, augment="shift", dropout=0.3, **TINY)).record
    b = train(RunConfig(seed=1, augment="shift", dropout=0.3, **TINY)).record
    c = train(RunConfig(seed=2, augment="shift", dropout=0.3, **TINY)).record
    assert _curves(a) == _curves(b)
    assert a["metrics"] == b["metrics"]
    assert _curves(a) != _curves(c)


def test_early_stopping_stops_and_restores_the_best_epoch():
    """300 examples and a high rate: validation loss turns up within a few epochs."""
    run = train(RunConfig(train_size=300, epochs=40, patience=3, lr=3e-3, seed=0))
    m, history = run.record["metrics"], run.record["history"]
    assert m["stopped_early"] and m["epochs_run"] < 40
    assert m["epochs_run"] == m["best_epoch"] + 3  # three epochs without improvement, then stop
    best_val = min(h["val_loss"] for h in history)
    assert history[m["best_epoch"] - 1]["val_loss"] == best_val == m["val_loss_best"]
    s = data.splits("mnist")
    assert evaluate(run.model, s.val_x, s.val_y)["loss"] == pytest.approx(best_val, rel=1e-6)  # restored
    assert m["test_acc_best"] == pytest.approx(evaluate(run.model, s.test_x, s.test_y)["acc"])


def test_without_early_stopping_the_model_is_the_last_one():
    run = train(RunConfig(**{**TINY, "epochs": 2}))
    s = data.splits("mnist")
    assert evaluate(run.model, s.test_x, s.test_y)["acc"] == pytest.approx(run.record["metrics"]["test_acc_last"])


def test_a_diverging_run_is_recorded_not_raised():
    record = train(RunConfig(optimizer="sgd", lr=1e20, train_size=512, epochs=3)).record
    assert record["status"] == "diverged"
    assert record["metrics"]["diverged_epoch"] == 1 and record["metrics"]["epochs_run"] == 1
    assert record["metrics"]["test_acc_best"] is None and record["history"][0]["train_loss"] is None


def test_the_record_holds_what_the_book_needs():
    record = train(RunConfig(**TINY)).record
    assert set(record) >= {"engine_version", "config", "data", "status", "history", "metrics", "provenance"}
    assert set(record["history"][0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    assert set(record["provenance"]) >= {"date", "host", "device", "torch", "threads", "wall_seconds"}
    m = record["metrics"]
    assert {"test_acc_last", "test_acc_best", "test_loss_last", "test_loss_best", "best_epoch"} <= set(m)
    assert sum(map(sum, m["test_confusion_best"])) == 10_000
    assert record["data"]["content_sha256"] == data.provenance("mnist")["content_sha256"]


def test_l1_shrinks_weights():
    def weight_mass(l1):
        model = train(RunConfig(l1=l1, optimizer="sgd", lr=0.05, **{**TINY, "epochs": 3})).model
        return sum(p.abs().sum().item() for n, p in model.named_parameters() if n.endswith("weight"))
    assert weight_mass(1e-2) < 0.9 * weight_mass(0.0)


def test_train_size_beyond_the_training_part_is_refused():
    with pytest.raises(ValueError, match="train_size=60000.*54000"):
        train(RunConfig(train_size=60_000))


def test_shift_moves_content_without_losing_it():
    s = data.splits("mnist")
    x = s.train_x[:64]  # digits sit inside a 2-pixel black border, so a 2-pixel shift keeps every stroke
    g = torch.Generator().manual_seed(0)
    shifted = random_shift(x, 2, s.background, g)
    assert shifted.shape == x.shape
    assert torch.allclose(shifted.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=1e-4)
    assert (shifted != x).any(dim=(1, 2, 3)).float().mean() > 0.8  # most images moved
    assert torch.equal(augment(x, "none", s, g), x)


@pytest.mark.parametrize("dataset, pixels, largest", [("mnist", 0, 2), ("cifar10", 0, 4), ("cifar10", 1, 1),
                                                      ("mnist", 3, 3)])
def test_shifts_stay_within_the_pixels_asked_for(dataset, pixels, largest):
    """An image with one bright pixel: after the shift it sits at most `largest` pixels from
    where it was in each direction, and over many copies every offset up to it occurs."""
    s = data.splits(dataset, "cpu")
    x = s.background.expand(2000, -1, 32, 32).clone()
    x[:, :, 16, 16] = 10.0
    shifted = augment(x, "shift", s, torch.Generator().manual_seed(0), pixels)
    where = shifted[:, 0].flatten(1).argmax(1)
    dy, dx = where // 32 - 16, where % 32 - 16
    assert set(dy.tolist()) == set(dx.tolist()) == set(range(-largest, largest + 1))


def test_the_run_trains_on_the_shifts_it_asks_for():
    """shift_pixels reaches the loop: the default and an explicit value equal to it train alike,
    a different value trains on other images."""
    default = train(RunConfig(augment="shift", **TINY)).record
    same = train(RunConfig(augment="shift", shift_pixels=2, **TINY)).record
    other = train(RunConfig(augment="shift", shift_pixels=1, **TINY)).record
    assert _curves(default) == _curves(same)
    assert _curves(default) != _curves(other)


def test_flip_mirrors_about_half():
    x = torch.arange(2 * 1000 * 4.0).view(1000, 2, 1, 4)
    flipped = random_flip(x, torch.Generator().manual_seed(0))
    mirrored = (flipped == x.flip(3)).all(dim=(1, 2, 3))
    assert torch.equal(flipped[~mirrored], x[~mirrored])
    assert 400 < mirrored.sum() < 600


@pytest.mark.parametrize("kind, offsets", [
    ("none", [(0, 0, False)]),
    ("flip", [(0, 0, False), (0, 0, True)]),
    ("shift", [(0, 0, False), (1, 0, False), (-1, 0, False), (0, 1, False), (0, -1, False)]),
    ("shift_flip", [(dy, dx, f) for f in (False, True) for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))]),
])
def test_test_views_are_the_image_moved_one_pixel_and_mirrored(kind, offsets):
    """One bright pixel at (16, 10) of a background image: each view puts it where the view says
    (mirroring maps column 10 to 21), and what moves in at the border is the background."""
    s = data.splits("cifar10", "cpu")
    x = s.background.expand(1, 3, 32, 32).clone()
    x[:, :, 16, 10] = 10.0
    views = eval_views(x, kind, s.background)
    assert len(views) == len(offsets)
    for view, (dy, dx, mirrored) in zip(views, offsets):
        where = view[0, 0].flatten().argmax().item()
        row, col = where // 32, where % 32
        assert (row, col) == (16 + dy, (31 - (10 + dx)) if mirrored else 10 + dx)
        assert torch.equal(view[0, :, 0, :], s.background[0, :, 0].expand(3, 32))  # top row: background
        assert view.shape == x.shape


def test_shifted_views_need_the_fill_value():
    with pytest.raises(ValueError, match="test_augment 'shift' shifts images and needs the fill value"):
        eval_views(torch.zeros(1, 1, 8, 8), "shift")


def test_evaluation_averages_the_probabilities_over_the_views():
    """With views, the prediction is the mean of softmax over the views and the loss its
    cross-entropy; without, the plain cross-entropy of the logits."""
    s = data.splits("fashion_mnist", "cpu")
    torch.manual_seed(0)
    model = LeNet5(in_channels=1).eval()
    with torch.no_grad():
        for w in model.parameters():  # confident, varied outputs instead of the near-uniform ones at init
            w.mul_(3)
    x, y = s.val_x[:700], s.val_y[:700]
    with torch.no_grad():
        logits = [model(v) for v in eval_views(x, "shift_flip", s.background)]
        p = torch.stack([l.softmax(1) for l in logits]).mean(0)
    many = evaluate(model, x, y, views="shift_flip", fill=s.background)
    assert many["loss"] == pytest.approx(-p[torch.arange(700), y].log().mean().item(), rel=1e-5)
    assert many["acc"] == pytest.approx((p.argmax(1) == y).float().mean().item())
    one = evaluate(model, x, y)
    assert one["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits[0], y).item(), rel=1e-5)
    assert one["acc"] == pytest.approx((logits[0].argmax(1) == y).float().mean().item())
    assert abs(one["loss"] - many["loss"]) > 0.01


def test_raw_pixel_inputs_reach_training_and_evaluation():
    """normalize=False trains and evaluates on pixel values in [0, 1]: the returned model's test
    numbers are those on the raw test images, and the run differs from the normalized one."""
    normalized = train(RunConfig(**TINY)).record
    run = train(RunConfig(normalize=False, **TINY))
    assert _curves(run.record) != _curves(normalized)
    raw = data.splits("mnist", normalize=False)
    assert run.record["metrics"]["test_acc_last"] == pytest.approx(
        evaluate(run.model, raw.test_x, raw.test_y)["acc"])


def test_test_augment_changes_evaluation_not_training():
    """The same run with and without test-time views: identical training, different validation,
    and the test numbers are those of the returned model evaluated with the views."""
    plain = train(RunConfig(**TINY)).record
    run = train(RunConfig(test_augment="shift", **TINY))
    viewed = run.record
    assert [h["train_loss"] for h in plain["history"]] == [h["train_loss"] for h in viewed["history"]]
    assert plain["history"][0]["val_loss"] != viewed["history"][0]["val_loss"]
    s = data.splits("mnist")
    assert viewed["metrics"]["test_acc_last"] == pytest.approx(
        evaluate(run.model, s.test_x, s.test_y, views="shift", fill=s.background)["acc"])


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="valid: auto, cpu, cuda"):
        pick_device("tpu")


FAST_VS_EAGER = {
    "modern, Adam": RunConfig(train_size=512, epochs=2, batch_size=64),
    "1998 network, two substitutes": RunConfig.classic(train_size=512, epochs=2, **SUBSTITUTES),
    "batch norm, dropout, shift": RunConfig(train_size=512, epochs=2, batch_size=64, batch_norm=True,
                                            dropout=0.3, augment="shift", optimizer="momentum", lr=0.01),
    "CIFAR-10, flips, label smoothing": RunConfig(dataset="cifar10", train_size=512, epochs=2, batch_size=64,
                                                  augment="shift_flip", label_smoothing=0.1, batch_norm=True),
    "1998 way, one example a step": RunConfig.classic(train_size=48, epochs=2),
}


@pytest.fixture
def float64(monkeypatch):
    """Train in double precision: the network's parameters and the data's images (validation
    and test parts cut to their first 1,024 examples: evaluating all of them in float64 costs more
    than the training steps this compares, and adds nothing to the comparison)."""
    import dataclasses
    import importlib

    engine = importlib.import_module("lenet_core.train")  # the module, not the function of that name
    single = engine.splits

    def splits64(name, device, normalize=True, copy="official"):
        s = single(name, device, normalize, copy)
        s = dataclasses.replace(s, **{f: getattr(s, f)[:1024] for f in ("val_x", "val_y", "test_x", "test_y")})
        return dataclasses.replace(s, **{f: getattr(s, f).double()
                                         for f in ("train_x", "val_x", "test_x", "mean", "std")})

    monkeypatch.setattr(engine, "splits", splits64)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


@pytest.mark.parametrize("kwargs", [dict(), dict(in_channels=3), dict(batch_norm=True, dropout=0.3),
                                    RunConfig.classic().model_kwargs()], ids=["modern", "rgb", "bn", "1998"])
def test_channels_last_computes_the_same_function(kwargs):
    """Same weights, same batch: the fast layout's outputs and gradients are the eager ones up to
    float32 rounding."""
    import copy

    torch.manual_seed(0)
    eager = LeNet5(**kwargs)
    fast = copy.deepcopy(eager).to(memory_format=torch.channels_last)
    x = torch.randn(64, kwargs.get("in_channels", 1), 32, 32)
    outs = []
    for model, batch in ((eager, x), (fast, x.contiguous(memory_format=torch.channels_last))):
        torch.manual_seed(1)  # the same dropout mask
        out = model(batch)
        out.square().mean().backward()
        outs.append(out)
    assert torch.allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(eager.named_parameters(), fast.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-3, atol=1e-5 * a.grad.abs().max().item()), name


@pytest.mark.parametrize("name", FAST_VS_EAGER)
def test_fast_path_gives_the_eager_loss_trajectory(name, float64):
    """Training on the fast path (the default: channels-last, or at batch size 1 the native
    kernels and a compiled step) and the plain one (NCHW, oneDNN), same seed: the same per-epoch losses and
    accuracies, and the record says which path ran.

    In float32 the two layouts' kernels round differently (the test above bounds one step), and
    over many steps those differences grow the way any perturbation of SGD does, so a float32
    comparison of whole trajectories tests the chaos of training, not the engine. In float64 the
    rounding is far below anything training amplifies in 16 steps: what is left to differ is
    what the paths feed the network (batch order, augmentation, dropout masks, layouts), and
    that must be nothing."""
    config = FAST_VS_EAGER[name]
    fast, eager = train(config, fast=True), train(config, fast=False)
    one = config.batch_size == 1  # on a CPU: NCHW with the native kernels instead of channels-last
    assert (fast.record["provenance"]["memory_format"], fast.record["provenance"]["conv_kernels"]) == \
        (("nchw", "native") if one else ("channels_last", "onednn"))
    assert (eager.record["provenance"]["memory_format"], eager.record["provenance"]["conv_kernels"]) == ("nchw", "onednn")
    # at one example a step the fast path also compiles the step (compiles_step: nothing random in it)
    assert (fast.record["provenance"]["step"], eager.record["provenance"]["step"]) == \
        ("compiled" if one and not config.dropout else "eager", "eager")
    assert torch.backends.mkldnn.enabled  # restored after the run
    assert next(fast.model.parameters()).dtype == torch.float64
    # The compiled step sums in another order: one step agrees to 1e-16 in float64 (the test below
    # in float32), and the paper's first steps (eta / mu, before any curvature estimate) amplify
    # that to about 1e-9 in 96 steps; every other path agrees to 1e-9.
    rel = 1e-7 if fast.record["provenance"]["step"] == "compiled" else 1e-9
    for a, b in zip(_curves(fast.record), _curves(eager.record), strict=True):
        for key in ("train_loss", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=rel), (key, a, b)
        for key in ("train_acc", "val_acc"):
            assert a[key] == b[key], (key, a, b)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_matches_cpu_closely():
    cfg = RunConfig(**TINY)
    cpu = train(cfg, device="cpu").record
    gpu = train(cfg, device="cuda").record
    assert gpu["provenance"]["device"] == "cuda"
    assert gpu["history"][0]["train_loss"] == pytest.approx(cpu["history"][0]["train_loss"], rel=1e-2)


RESUMABLE = {
    "Adam": RunConfig(train_size=256, epochs=4, batch_size=64),
    "momentum, step schedule, batch norm, dropout, shift": RunConfig(
        train_size=256, epochs=4, batch_size=64, optimizer="momentum", lr=0.05, schedule="step",
        batch_norm=True, dropout=0.3, augment="shift"),
    "AdamW cosine, mixup": RunConfig(train_size=256, epochs=4, batch_size=64, optimizer="adamw", lr=0.003,
                                     schedule="cosine", weight_decay=0.01, mix="mixup"),
    "Muon": RunConfig(train_size=256, epochs=4, batch_size=64, optimizer="muon", lr=0.003, schedule="cosine"),
    "Lion": RunConfig(train_size=256, epochs=4, batch_size=64, optimizer="lion", lr=0.0003),
    "schedule-free AdamW, batch norm": RunConfig(train_size=256, epochs=4, batch_size=64,
                                                 optimizer="schedule_free_adamw", lr=0.003, batch_norm=True),
    "SAM on AdamW, EMA": RunConfig(train_size=256, epochs=4, batch_size=64, optimizer="sam_adamw", lr=0.003,
                                   average="ema"),
    "SWA, batch norm": RunConfig(train_size=256, epochs=4, batch_size=64, average="swa", swa_start=0.25,
                                 batch_norm=True),
    "early stopping": RunConfig(train_size=256, epochs=6, batch_size=64, lr=0.03, patience=2),
    "1998 way, one example a step": RunConfig.classic(train_size=32, epochs=4),
}


@pytest.mark.parametrize("name", RESUMABLE)
def test_an_interrupted_run_resumes_to_the_record_it_would_have_given(name, tmp_path, monkeypatch):
    """Killed during epoch 3 (after the state of epoch 2 was written), then run again with the same
    state file: the same history, metrics and diagnostics as the run that was never interrupted."""
    import importlib

    engine = importlib.import_module("lenet_core.train")
    config = RESUMABLE[name]
    whole = train(config).record
    state = tmp_path / "run.partial.pt"
    real, calls = engine.evaluate, []

    def killed_on_the_third_validation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3 * (1 + (config.average != "none")):  # averaged runs validate twice an epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", killed_on_the_third_validation)
    with pytest.raises(KeyboardInterrupt):
        train(config, resume=state)
    monkeypatch.setattr(engine, "evaluate", real)
    assert len(torch.load(state, weights_only=True)["history"]) == 2
    again = train(config, resume=state).record
    assert again["provenance"]["resumed_after_epochs"] == [2] and "resumed_after_epochs" not in whole["provenance"]
    assert _curves(again) == _curves(whole)
    assert again["metrics"] == whole["metrics"] and again["status"] == whole["status"]
    assert again["diagnostics"] == whole["diagnostics"]


def test_a_state_file_of_another_run_is_not_resumed(tmp_path):
    state = tmp_path / "run.partial.pt"
    config = RunConfig(train_size=128, epochs=2, batch_size=64)
    train(config.replace(seed=1), resume=state)  # leaves the state of its epoch 1
    assert torch.load(state, weights_only=True)["config"]["seed"] == 1
    record = train(config, resume=state).record  # another seed: it starts over
    assert "resumed_after_epochs" not in record["provenance"]
    assert _curves(record) == _curves(train(config).record)
    state.write_bytes(b"not a state file")  # unreadable: starts over too
    assert _curves(train(config, resume=state).record) == _curves(record)


def test_swa_chooses_its_best_epoch_among_the_epochs_its_average_is_validated_at():
    """Before swa_start the raw network is validated; it is never the run's choice, even where its
    validation loss is the lowest of the run (epoch 5 of this one). EMA is averaged throughout."""
    config = RunConfig(train_size=128, epochs=8, batch_size=16, lr=0.01, average="swa", swa_start=0.75)
    record = train(config, progress=False).record
    losses = [h["val_loss"] for h in record["history"]]
    start = 6  # floor(0.75 * 8): epochs 7 and 8 are the average's
    assert min(losses) < min(losses[start:])  # a raw epoch is the lowest: the rule decides here
    assert record["metrics"]["best_epoch"] == start + 1 + losses[start:].index(min(losses[start:]))
    assert record["engine_version"] == "1+swa-best-averaged"
    ema = train(config.replace(average="ema"), progress=False).record
    ema_losses = [h["val_loss"] for h in ema["history"]]
    assert ema["metrics"]["best_epoch"] == 1 + ema_losses.index(min(ema_losses)) and ema["engine_version"] == "1"


def test_the_step_is_compiled_only_where_it_computes_the_eager_step():
    """compiles_step: one example a step on a CPU, and nothing in the step random or batch-dependent;
    compiled_objective leaves the eager gradients (float rounding apart) in every .grad."""
    import importlib

    engine = importlib.import_module("lenet_core.train")
    cpu, classic = torch.device("cpu"), RunConfig.classic()
    one = classic.replace(**dict(SUBSTITUTES, batch_size=1))  # softmax, momentum, one example a step
    assert engine.compiles_step(classic, cpu) and engine.compiles_step(one, cpu)
    for change in (dict(batch_size=32), dict(dropout=0.1), dict(batch_norm=True), dict(augment="shift"),
                   dict(mix="cutout"), dict(l1=1e-5)):
        assert not engine.compiles_step(one.replace(**change), cpu), change
    assert not engine.compiles_step(classic, torch.device("meta"))
    torch.manual_seed(0)
    model = LeNet5(**classic.model_kwargs())
    criterion = LOSSES[classic.loss](classic)
    x, y = torch.randn(1, 1, 32, 32), torch.tensor([3])
    criterion(model(x), y).backward()
    eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    out, loss = engine.compiled_objective(model, criterion)(x, y)
    assert loss.item() == pytest.approx(criterion(model(x), y).item(), rel=1e-5)
    for (name, p), g in zip(model.named_parameters(), eager):
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6 * g.abs().max().item()), name
