"""The optimizers from after 2015 (lenet_core.optimizers), checked against their update rules on
small tensors (tests/test_train.py trains every registered optimizer)."""

import math

import pytest
import torch
from torch.optim._muon import _zeropower_via_newtonschulz

from lenet_core import optimizers
from lenet_core.config import RunConfig
from lenet_core.model import LeNet5
from lenet_core.registry import OPTIMIZERS, SAM_OPTIMIZERS
from lenet_core.train import recompute_batch_norm


def test_lion_steps_by_the_sign_of_interpolated_momentum_with_decoupled_decay():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = optimizers.Lion([w], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    grads = [torch.tensor([0.3, 0.2, -1.0]), torch.tensor([-0.5, 0.1, 0.02])]
    m, expected = torch.zeros(3), w.detach().clone()
    for g in grads:
        w.grad = g.clone()
        opt.step()
        expected = expected * (1 - 0.1 * 0.5) - 0.1 * torch.sign(0.9 * m + 0.1 * g)
        m = 0.99 * m + 0.01 * g
    assert torch.allclose(w.detach(), expected)
    assert torch.allclose(opt.state[w]["exp_avg"], m)


def test_muon_orthogonalizes_a_kernel_as_its_flattened_matrix():
    torch.manual_seed(0)
    kernel = torch.nn.Parameter(torch.randn(6, 3, 5, 5))
    before = kernel.detach().clone()
    grad = torch.randn(6, 3, 5, 5)
    kernel.grad = grad.clone()
    optimizers.Muon([kernel], lr=0.01, momentum=0.95).step()
    step = (before - kernel.detach()).reshape(6, -1)
    nesterov = (grad + 0.95 * grad).reshape(6, -1)  # first step: buffer = g, update = g + mu * buffer
    ortho = _zeropower_via_newtonschulz(nesterov, optimizers.NS_COEFFICIENTS, optimizers.NS_STEPS, optimizers.NS_EPS)
    scale = 0.01 * 0.2 * math.sqrt(75)  # match_rms_adamw: 0.2 sqrt(max(rows, columns))
    assert torch.allclose(step, scale * ortho.float(), atol=1e-6)
    singular = torch.linalg.svdvals(step / scale)
    assert singular.min() > 0.5 and singular.max() < 1.5  # orthogonal up to Newton-Schulz's spread
    assert torch.linalg.svdvals(nesterov).max() / torch.linalg.svdvals(nesterov).min() > 1.5  # the raw one is not


def test_muon_trains_hidden_matrices_and_adamw_the_rest():
    model = LeNet5(in_channels=1, act="relu", pool="subsample", init="default", dropout=0.0,
                   batch_norm=True, c3_table=False)
    opt = OPTIMIZERS["muon"](model, RunConfig(optimizer="muon", lr=0.002))
    muon, adamw = opt.parts
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    in_adamw = {id(p) for g in adamw.param_groups for p in g["params"]}
    assert not in_muon & in_adamw and in_muon | in_adamw == {id(p) for p in model.parameters()}
    assert id(model.classifier[-1].weight) in in_adamw  # the output layer
    assert all(p.ndim >= 2 for g in muon.param_groups for p in g["params"])
    assert all(p.ndim == 1 for g in adamw.param_groups for p in g["params"] if p is not model.classifier[-1].weight)
    assert [g["lr"] for g in opt.param_groups] == [0.002, 0.002]  # one rate, scheduled together


def test_sam_steps_with_the_gradient_at_the_worst_nearby_point():
    a = torch.tensor([1.0, -1.0])
    w = torch.nn.Parameter(torch.tensor([3.0, 1.0]))
    opt = optimizers.SAM(torch.optim.SGD([w], lr=0.1), rho=0.5)

    def closure():
        loss = 0.5 * ((w - a) ** 2).sum()
        loss.backward()
        return loss

    opt.zero_grad()
    closure()
    g = w.grad.detach().clone()
    worst = w.detach() + 0.5 * g / g.norm()
    opt.step(closure)
    assert torch.allclose(w.detach(), torch.tensor([3.0, 1.0]) - 0.1 * (worst - a))
    with pytest.raises(ValueError, match="SAM needs step\\(closure\\)"):
        opt.step()
    with pytest.raises(ValueError, match="rho=0 is out of range"):
        optimizers.SAM(torch.optim.SGD([w], lr=0.1), rho=0)


def test_sam_rho_is_validated_and_only_for_sam():
    assert RunConfig(optimizer="sam_adamw", sam_rho=0.1).sam_rho == 0.1
    with pytest.raises(ValueError, match="sam_rho=0.1 applies only to a SAM optimizer; got optimizer 'adam'; "
                                         "valid: sam_momentum, sam_adamw"):
        RunConfig(optimizer="adam", sam_rho=0.1)
    with pytest.raises(ValueError, match="sam_rho=-1.0 is out of range: must be > 0"):
        RunConfig(optimizer="sam_momentum", sam_rho=-1)
    # the default stays out of the run key, so every run stored before SAM keeps its key
    assert "sam_rho" not in RunConfig().canonical_json() and "sam_rho" in RunConfig(
        optimizer="sam_adamw", sam_rho=0.1).canonical_json()
    assert set(SAM_OPTIMIZERS) <= set(OPTIMIZERS)


def test_batch_norm_statistics_are_recomputed_for_the_current_weights():
    torch.manual_seed(0)
    model = LeNet5(in_channels=1, act="relu", pool="max", init="default", dropout=0.0, batch_norm=True,
                   c3_table=False).eval()
    x = torch.randn(600, 1, 32, 32) * 2 + 1
    seen = []
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    handle = bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    recompute_batch_norm(model, x, examples=512, batch=128)
    handle.remove()
    inputs = torch.cat(seen)
    assert len(inputs) == 512 and not model.training  # back in the mode it was in
    assert torch.allclose(bn.running_mean, inputs.mean(dim=(0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.1  # put back


def _averaged(kind: str, **kw):
    holder = torch.nn.Module()
    holder.w = torch.nn.Parameter(torch.zeros(2))
    return holder.w, optimizers.Averaged(torch.optim.SGD([holder.w], lr=1.0), holder, kind, **kw)


def test_an_exponential_average_follows_every_step_and_is_what_evaluation_sees():
    w, opt = _averaged("ema", decay=0.5)
    expected = torch.zeros(2)
    for step, g in enumerate(([1.0, -1.0], [2.0, 0.0], [0.0, 4.0]), 1):
        w.grad = -torch.tensor(g)  # lr 1: w moves by +g
        opt.step()
        d = min(0.5, (1 + step) / (10 + step))  # warming up: 2/11, 3/12, then 0.5 from step 8 on
        expected = d * expected + (1 - d) * w.detach()
    raw = w.detach().clone()
    opt.eval()
    assert opt.evaluating_average and torch.allclose(w.detach(), expected)
    opt.train()
    assert not opt.evaluating_average and torch.equal(w.detach(), raw)  # training goes on from its own weights


def test_the_exponential_average_warms_up_to_its_decay():
    assert [optimizers.ema_decay_at(0.999, t) for t in (1, 10, 90)] == [2 / 11, 11 / 20, 0.91]
    assert optimizers.ema_decay_at(0.999, 100_000) == 0.999
    assert optimizers.ema_decay_at(0.9, 80) == 0.9  # the configured decay caps the warm-up


def test_weight_averaging_means_the_epoch_end_weights_after_its_start():
    w, opt = _averaged("swa", start=1)
    ends = []
    for epoch, g in enumerate(([1.0, 1.0], [2.0, -2.0], [4.0, 0.0])):
        opt.train()
        w.grad = -torch.tensor(g)
        opt.step()
        ends.append(w.detach().clone())
        opt.eval()
        if epoch == 0:  # before its start the network is evaluated as it is
            assert not opt.evaluating_average and torch.equal(w.detach(), ends[0])
    assert torch.allclose(w.detach(), (ends[1] + ends[2]) / 2)
    with pytest.raises(ValueError, match="unknown average 'mean'; valid: ema, swa"):
        _averaged("mean")


def test_averaging_settings_are_validated_where_they_enter():
    assert RunConfig(average="swa", swa_start=0.5).swa_start == 0.5
    with pytest.raises(ValueError, match="unknown average 'polyak'; valid: none, ema, swa"):
        RunConfig(average="polyak")
    with pytest.raises(ValueError, match="ema_decay=0.99 applies only to average 'ema'; got average 'swa'"):
        RunConfig(average="swa", ema_decay=0.99)
    with pytest.raises(ValueError, match="swa_start=1.0 is out of range: must be in \\[0, 1\\)"):
        RunConfig(average="swa", swa_start=1.0)
    with pytest.raises(ValueError, match="schedule_free_adamw evaluates its own average"):
        RunConfig(average="ema", optimizer="schedule_free_adamw")
    keyed = RunConfig().canonical_json()
    assert all(name not in keyed for name in ("average", "ema_decay", "swa_start"))


@pytest.mark.slow
@pytest.mark.usefixtures("mnist_ready")
def test_an_averaged_run_records_the_raw_network_beside_its_average():
    from lenet_core.train import train

    tiny = dict(train_size=512, epochs=2, batch_size=64, batch_norm=True)
    swa = train(RunConfig(average="swa", swa_start=0.5, **tiny), progress=False).record["history"]
    assert swa[0]["val_acc"] == swa[0]["val_acc_raw"]  # epoch 1: nothing averaged yet
    ema = train(RunConfig(average="ema", ema_decay=0.9, **tiny), progress=False).record["history"]
    assert all(h["val_loss"] != h["val_loss_raw"] for h in ema)
    plain = train(RunConfig(**tiny), progress=False).record["history"]
    assert "val_acc_raw" not in plain[0]
