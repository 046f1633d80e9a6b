"""The 1998 network as the paper trained it: the RBF output layer with the codes of its Fig. 3, the
MAP criterion (eq. 9) and stochastic diagonal Levenberg-Marquardt, each against hand-computed
values or a brute-force computation."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev

from lenet_core import optimizers
from lenet_core.config import SUBSTITUTES, RunConfig
from lenet_core.model import RBF, LeNet5, rbf_codes
from lenet_core.registry import LOSSES, OPTIMIZERS
from lenet_core.train import evaluate, train


# ---------------------------------------------------------------- the output layer

def test_the_codes_are_the_digit_bitmaps_of_fig_3():
    codes = rbf_codes()
    assert codes.shape == (10, 84) and set(codes.unique().tolist()) == {-1.0, 1.0}
    zero = codes[0].view(12, 7)
    assert zero[0].tolist() == [-1, 1, 1, 1, 1, 1, -1]  # the short bar on top of the 0 (row ".#####.")
    assert zero[1].tolist() == [-1] * 7 and zero[4].tolist() == [1, 1, -1, -1, -1, 1, 1]
    assert int((codes[0] > 0).sum()) == 35  # the ink of the 0, counted by hand in the file
    assert len({tuple(c.tolist()) for c in codes}) == 10
    assert rbf_codes() is not rbf_codes()  # a copy: nothing can change the table


def test_an_rbf_unit_scores_minus_the_squared_distance_to_its_code():
    codes = rbf_codes()
    rbf = RBF(codes)
    assert torch.equal(rbf(torch.zeros(1, 84)), torch.full((1, 10), -84.0))  # |c_i|^2 = 84 for +-1 codes
    x = codes[3].clone()
    x[0] += 0.5
    y = -rbf(x[None])[0]
    assert y[3].item() == pytest.approx(0.25)
    by_hand = sum((a - b) ** 2 for a, b in zip(x.tolist(), codes[5].tolist()))
    assert y[5].item() == pytest.approx(by_hand)
    assert y[5].item() > 4 * 10  # the codes of 3 and 5 differ in more than 10 of their 84 pixels
    assert not list(rbf.parameters())  # fixed, not trained
    model = LeNet5(act="scaled_tanh", output="rbf")
    assert isinstance(model.classifier[-1], RBF) and model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    assert model(torch.zeros(2, 1, 32, 32), head=False).shape == (2, 84)


def test_the_map_criterion_is_eq_9_with_its_rubbish_class():
    y = [float(i + 1) for i in range(10)]  # distances 1..10
    j, label = 2.0, 3
    by_hand = y[label] + math.log(math.exp(-j) + sum(math.exp(-v) for v in y))
    scores = -torch.tensor([y])
    config = RunConfig(output="rbf", loss="map", map_j=j)
    assert LOSSES["map"](config)(scores, torch.tensor([label])).item() == pytest.approx(by_hand, rel=1e-6)
    # a large j leaves the rubbish class out: softmax cross-entropy over -y
    far = RunConfig(output="rbf", loss="map", map_j=200.0)
    assert LOSSES["map"](far)(scores, torch.tensor([label])).item() == pytest.approx(
        F.cross_entropy(scores, torch.tensor([label])).item(), rel=1e-6)
    per_example = LOSSES["map"](config)(scores.repeat(2, 1), torch.tensor([label, 0]), reduction="none")
    assert per_example[0].item() == pytest.approx(by_hand, rel=1e-6) and per_example[1] < per_example[0]


def test_evaluation_scores_the_class_probabilities_whatever_the_criterion():
    torch.manual_seed(0)
    model = LeNet5(act="scaled_tanh", output="rbf")
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    result = evaluate(model, x, y)
    with torch.no_grad():
        out = model.eval()(x)
    assert result["loss"] == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-5)
    assert result["acc"] == pytest.approx((out.argmax(1) == y).float().mean().item())


@pytest.mark.parametrize("values, message", [
    (dict(loss="map"), "loss 'map' .* needs output 'rbf'; got output 'linear'"),
    (dict(output="rbf", map_j=3.0), "map_j=3.0 applies only to loss 'map'; got loss 'cross_entropy'"),
    (dict(output="rbf", loss="map", map_j=0.0), r"map_j=0.0 is out of range: must be > 0"),
    (dict(output="rbf", loss="map", label_smoothing=0.1), "label_smoothing=0.1 applies only to loss 'cross_entropy'"),
    (dict(optimizer="sdlm", batch_norm=True), "optimizer 'sdlm' .* got batch_norm=True"),
    (dict(output="softmax"), "unknown output 'softmax'; valid: linear, rbf"),
    (dict(loss="mse"), "unknown loss 'mse'; valid: cross_entropy, map"),
])
def test_the_1998_settings_are_refused_where_they_do_not_apply(values, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**values)


def test_the_two_substitutes_are_options_of_the_classic_preset():
    paper = RunConfig.classic("cifar10", seed=1)
    substitutes = RunConfig.classic("cifar10", seed=1, **SUBSTITUTES)
    assert (paper.output, paper.loss, paper.optimizer, paper.lr, paper.batch_size, paper.schedule) == (
        "rbf", "map", "sdlm", 5e-4, 1, "lecun1998")
    different = {k for k, v in paper.to_dict().items() if v != substitutes.to_dict()[k]}
    assert different == {"output", "loss", "optimizer", "lr", "batch_size"}
    assert paper.canonical_json() != substitutes.canonical_json()


# ---------------------------------------------------------------- the curvature estimate

class Tiny(nn.Module):
    """A network small enough for its whole Jacobian: the layout gauss_newton_diagonal needs."""

    def __init__(self, output: nn.Module, hidden: nn.Module | None = None):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(3, 5), nn.Tanh())
        self.classifier = nn.Sequential(hidden or nn.Sequential(nn.Linear(5, 84), nn.Tanh()), output)

    def forward(self, x, head=True):
        f = self.features(x)
        return self.classifier(f) if head else self.classifier[:-1](f)


def _brute_force_diagonal(model, x, y, loss):
    """diag(J^T H J) averaged over the examples, from each example's full Jacobian and Hessian."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    flat = torch.cat([p.flatten() for p in params.values()])
    last = model.classifier[-1]
    trained_head = bool(list(last.parameters()))

    def unflatten(v):
        out, i = {}, 0
        for n, p in params.items():
            out[n] = v[i:i + p.numel()].view_as(p)
            i += p.numel()
        return out

    total = torch.zeros_like(flat)
    for b in range(len(x)):
        J = jacrev(lambda v: functional_call(model, unflatten(v), (x[b:b + 1],), {"head": trained_head})[0])(flat)
        z = functional_call(model, params, (x[b:b + 1],), {"head": trained_head})[0]
        H = torch.autograd.functional.hessian(
            lambda z: loss(z[None] if trained_head else last(z[None]), y[b:b + 1]), z)
        total += torch.einsum("ip,ij,jp->p", J, H, J)
    return total / len(x)


@pytest.mark.parametrize("head", ["rbf", "linear"])
def test_the_curvature_is_the_gauss_newton_diagonal_computed_by_brute_force(head):
    torch.manual_seed(0)
    output, config = ((RBF(rbf_codes()), RunConfig(output="rbf", loss="map", map_j=3.0)) if head == "rbf"
                      else (nn.Linear(84, 10), RunConfig()))
    model = Tiny(output).double()
    x, y = torch.randn(7, 3, dtype=torch.double), torch.randint(0, 10, (7,))
    loss = LOSSES[config.loss](config)
    mine = torch.cat([h.flatten() for h in optimizers.gauss_newton_diagonal(model, x, y, loss, rows_at_once=200)])
    brute = _brute_force_diagonal(model, x, y, loss)
    assert brute.abs().max() > 1e-3
    assert torch.allclose(mine, brute, rtol=1e-9, atol=1e-12)


def test_for_a_network_linear_in_its_weights_the_curvature_is_the_exact_hessian_diagonal():
    """Gauss-Newton drops only the curvature of the network itself: with a body linear in its
    weights (and a fixed RBF head) it is the Hessian of the loss."""
    torch.manual_seed(1)
    model = Tiny(RBF(rbf_codes()), hidden=nn.Linear(5, 84)).double()
    model.features = nn.Sequential(nn.Identity())  # the body: one linear layer
    model.classifier[0] = nn.Linear(3, 84).double()
    config = RunConfig(output="rbf", loss="map", map_j=5.0)
    loss = LOSSES["map"](config)
    x, y = torch.randn(5, 3, dtype=torch.double) * 0.3, torch.randint(0, 10, (5,))
    params = dict(model.named_parameters())
    names, shapes = list(params), [p.shape for p in params.values()]
    flat = torch.cat([p.detach().flatten() for p in params.values()])

    def total_loss(v):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = v[i:i + s.numel()].view(s)
            i += s.numel()
        return loss(functional_call(model, parts, (x,)), y)

    exact = torch.autograd.functional.hessian(total_loss, flat).diagonal()
    mine = torch.cat([h.flatten() for h in optimizers.gauss_newton_diagonal(model, x, y, loss)])
    assert torch.allclose(mine, exact, rtol=1e-8, atol=1e-12)


@pytest.mark.usefixtures("mnist_ready")
def test_the_curvature_of_lenet5_itself_matches_brute_force():
    from lenet_core.data import splits

    config = RunConfig.classic()
    torch.manual_seed(0)
    model = LeNet5(**config.model_kwargs())
    data = splits("mnist", "cpu")
    x, y = data.train_x[:2], data.train_y[:2]
    loss = LOSSES["map"](config)
    diagonal = optimizers.gauss_newton_diagonal(model, x, y, loss)
    mine = torch.cat([h.flatten() for h in diagonal])
    brute = _brute_force_diagonal(model, x, y, loss)
    assert torch.allclose(mine, brute, rtol=1e-4, atol=1e-9)
    # F6's biases: f'(a)^2 times the RBF's exact second derivative 2, near f'(0)^2 = (1.7159 * 2/3)^2 at the start
    f6_bias = dict(zip([n for n, _ in model.named_parameters()], diagonal))
    assert f6_bias["classifier.1.0.bias"].max().item() == pytest.approx(2 * (1.7159 * 2 / 3) ** 2, rel=0.01)


# ---------------------------------------------------------------- the optimizer

def test_an_sdlm_step_divides_each_gradient_by_mu_plus_its_curvature():
    torch.manual_seed(0)
    config = RunConfig.classic(lr=1e-3)
    model = LeNet5(**config.model_kwargs())
    opt = OPTIMIZERS["sdlm"](model, config)
    x, y = torch.randn(40, 1, 32, 32), torch.randint(0, 10, (40,))
    assert all(torch.all(s == 1 / optimizers.SDLM_MU) for s in opt.scale)  # before the first estimate
    opt.begin_pass(x, y, torch.Generator().manual_seed(0))
    assert len(opt.curvature) == len(list(model.parameters())) and all(torch.all(h >= 0) for h in opt.curvature)
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    LOSSES["map"](config)(model(x[:1]), y[:1]).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, w, g, h in zip(model.parameters(), before, grads, opt.curvature):
        assert torch.allclose(p.detach(), w - 1e-3 / (optimizers.SDLM_MU + h) * g, atol=1e-7)
    rates = opt.effective_rates()
    assert rates.max().item() <= 1e-3 / optimizers.SDLM_MU + 1e-9 and rates.min() > 0
    assert rates.min() < rates.max() / 10  # curvature makes the steps differ, weight by weight


@pytest.mark.usefixtures("mnist_ready")
def test_sdlm_estimates_the_curvature_before_every_pass_and_is_reproducible(monkeypatch):
    calls = []
    original = optimizers.SDLM.begin_pass
    monkeypatch.setattr(optimizers.SDLM, "begin_pass", lambda self, *a: calls.append(len(a[0])) or original(self, *a))
    monkeypatch.setattr(optimizers, "SDLM_EXAMPLES", 32)  # the paper's 500 cost seconds a pass
    config = RunConfig.classic(lr=5e-5, epochs=2, train_size=300)
    first, again = train(config, progress=False).record, train(config, progress=False).record
    assert calls == [300] * 4  # two passes, two runs
    assert first["history"] == [dict(h, seconds=a["seconds"]) for h, a in zip(again["history"], first["history"])]
    other = train(config.replace(seed=1), progress=False).record
    assert other["history"][0]["train_loss"] != first["history"][0]["train_loss"]
    assert first["metrics"]["val_acc_best"] > 0.3  # 600 steps of one example: well above chance
    linear = LeNet5(**config.replace(output="linear", loss="cross_entropy").model_kwargs())
    assert first["metrics"]["parameters"] == sum(p.numel() for p in linear.parameters()) - (84 * 10 + 10)
