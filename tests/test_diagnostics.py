import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lenet_core.config import RunConfig
from lenet_core.diagnostics import (LOG10_EDGES, SHARPNESS_RHO, activations, dead_fraction, gradient_norms,
                                    init_statistics, layer_names, sharpness, update_spectrum, weight_summary)
from lenet_core.model import ACTIVATIONS, LeNet5, TableConv2d

WEIGHTS = ["C1", "C3", "C5", "F6", "output"]
HIDDEN = ["C1", "C3", "C5", "F6"]


def _batch(n=64, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def _set_biases(model, value):
    with torch.no_grad():
        for m in layer_names(model).weights.values():
            m.bias.fill_(value)


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("kwargs, acts", [
    (dict(), HIDDEN),
    (dict(pool="subsample", act="scaled_tanh", c3_table=True), ["C1", "S2", "C3", "S4", "C5", "F6"]),
    (dict(batch_norm=True, dropout=0.5, act="leaky_relu"), HIDDEN),
    (dict(pool="avg", act="gelu", in_channels=3), HIDDEN),
])
def test_layer_names_follow_the_paper_and_find_the_right_modules(kwargs, acts):
    model = LeNet5(**kwargs)
    layers = layer_names(model)
    assert list(layers.weights) == WEIGHTS and list(layers.activations) == acts
    assert layers.weights["C1"] is model.features[0][0] and layers.weights["output"] is model.classifier[-1]
    assert isinstance(layers.weights["C3"], TableConv2d if kwargs.get("c3_table") else nn.Conv2d)
    expected = type(ACTIVATIONS[kwargs.get("act", "relu")]())
    assert all(type(m) is expected for m in layers.activations.values())
    assert len({id(m) for m in layers.activations.values()}) == len(acts)  # one module per layer


def test_layer_names_rejects_other_networks():
    model = LeNet5()
    model.classifier = model.classifier[:-1]
    with pytest.raises(ValueError, match="not a LeNet5 layout"):
        layer_names(model)


# ---------------------------------------------------------------- forward measurements

def test_activations_are_the_layers_outputs_detached_on_the_cpu():
    model = LeNet5()
    x, _ = _batch(8)
    acts = activations(model, x)
    assert {k: tuple(v.shape) for k, v in acts.items()} == {
        "C1": (8, 6, 28, 28), "C3": (8, 16, 10, 10), "C5": (8, 120), "F6": (8, 84)}
    assert all(v.device.type == "cpu" and not v.requires_grad for v in acts.values())
    with torch.no_grad():
        assert torch.equal(acts["C1"], F.relu(model.features[0][0](x)))


def test_subsampling_activations_are_named_s2_s4():
    acts = activations(LeNet5(pool="subsample", act="tanh"), _batch(4)[0])
    assert acts["S2"].shape == (4, 6, 14, 14) and acts["S4"].shape == (4, 16, 5, 5)
    assert acts["S2"].abs().max() < 1  # squashed by tanh


def test_measurements_leave_the_model_as_they_found_it():
    model = LeNet5(batch_norm=True, dropout=0.5)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _batch(32)
    activations(model, x)
    dead_fraction(model, x, training=True)
    gradient_norms(model, x, y)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics too
    assert all(p.grad is None for p in model.parameters())


def test_dead_fraction_is_one_when_every_unit_is_pushed_negative_and_zero_when_positive():
    x, _ = _batch(32)
    model = LeNet5()
    _set_biases(model, -1e3)
    assert dead_fraction(model, x) == {name: 1.0 for name in HIDDEN}
    # +1e3 keeps every unit alive only where the weights cannot outweigh it: random weights
    # times inputs of ~1e3 (the layer below's output) can reach -1e3, so use zero weights.
    model = LeNet5(init="zeros")
    _set_biases(model, 1e3)
    assert dead_fraction(model, x) == {name: 0.0 for name in HIDDEN}


def test_dead_fraction_counts_channels_and_neurons():
    model = LeNet5()
    x, _ = _batch(32)
    with torch.no_grad():
        model.features[0][0].bias[:3] = -1e3  # 3 of C1's 6 channels
        model.classifier[1][0].bias[:21] = -1e3  # 21 of F6's 84 neurons
    dead = dead_fraction(model, x)
    assert dead["C1"] == pytest.approx(0.5)
    assert dead["F6"] >= 0.25  # more may die from F6's own random weights


# ---------------------------------------------------------------- gradients

def test_gradient_norms_match_a_plain_backward_pass():
    torch.manual_seed(0)
    model = LeNet5()
    x, y = _batch(32)
    norms = gradient_norms(model, x, y)
    assert list(norms) == WEIGHTS
    F.cross_entropy(model(x), y).backward()
    for name, m in layer_names(model).weights.items():
        assert norms[name]["grad_norm"] == pytest.approx(m.weight.grad.norm().item(), rel=1e-5)
        assert norms[name]["grad_mean_abs"] == pytest.approx(m.weight.grad.abs().mean().item(), rel=1e-5)
        assert norms[name]["grad_norm"] > 0


def test_zero_initialization_gets_no_weight_gradient_below_the_output():
    """All-zero weights make every hidden unit compute act(0): the same for all inputs. The
    backward signal to a hidden layer is multiplied by the zero weights above it, so no hidden
    weight moves; the output weights see act(0), which is 0 for ReLU and 0.5 for the sigmoid."""
    x, y = _batch(32)
    relu = gradient_norms(LeNet5(init="zeros", act="relu"), x, y)
    assert all(v["grad_norm"] == 0 for v in relu.values())
    sigmoid = gradient_norms(LeNet5(init="zeros", act="sigmoid"), x, y)
    assert all(sigmoid[name]["grad_norm"] == 0 for name in HIDDEN)
    assert sigmoid["output"]["grad_norm"] > 0


# ---------------------------------------------------------------- initialization statistics

@pytest.mark.usefixtures("mnist_ready")
def test_init_statistics_zeros_kill_the_signal():
    stats = init_statistics(RunConfig(init="zeros", act="relu"), n=256)
    assert list(stats) == HIDDEN + ["output"]
    assert all(stats[name]["activation_var"] == 0 for name in HIDDEN)
    assert all(stats[name]["grad_var"] == 0 for name in WEIGHTS)


@pytest.mark.usefixtures("mnist_ready")
def test_kaiming_keeps_more_variance_than_pytorchs_default_in_a_relu_net():
    """PyTorch's default draws U(+-1/sqrt(fan_in)) (variance 1/(3 fan_in)); Kaiming's 2/fan_in is
    6 times larger per layer, so the ReLU activations' variance is larger at every depth."""
    default = init_statistics(RunConfig(init="default"), n=256)
    kaiming = init_statistics(RunConfig(init="kaiming_normal"), n=256)
    for name in HIDDEN + ["output"]:
        assert kaiming[name]["activation_var"] > default[name]["activation_var"] > 0
    assert default["F6"]["activation_var"] < default["C1"]["activation_var"]  # default: shrinks with depth


@pytest.mark.usefixtures("mnist_ready")
def test_init_statistics_is_seeded_and_names_the_subsampling_layers():
    config = RunConfig.classic()
    a, b = init_statistics(config, n=64, seed=3), init_statistics(config, n=64, seed=3)
    assert a == b
    assert list(a) == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    assert a["S2"]["grad_var"] is None and a["C3"]["grad_var"] > 0
    assert init_statistics(config, n=64, seed=4) != a


# ---------------------------------------------------------------- weights

def _weight_count(model):
    return sum(m.weight.numel() for m in layer_names(model).weights.values())


def test_weight_summary_of_a_zero_network_is_all_sparse():
    model = LeNet5(init="zeros")
    s = weight_summary(model)
    n = _weight_count(model)
    assert s["sparsity"] == 1.0 and s["zeros"] == n == s["n"]
    assert sum(s["counts"]) == n and s["counts"][0] == n  # zeros land in the first bin
    assert s["layer_sparsity"] == {name: 1.0 for name in WEIGHTS}


def test_weight_summary_histogram_is_fixed_and_json_ready():
    model = LeNet5(c3_table=True)
    s = weight_summary(model, threshold=1e-2)
    json.dumps(s)  # plain ints and floats only
    assert s["edges"] == pytest.approx(list(LOG10_EDGES)) and s["edges"][0] == -8 and s["edges"][-1] == 1
    assert len(s["counts"]) == len(s["edges"]) - 1 and all(isinstance(c, int) for c in s["counts"])
    assert sum(s["counts"]) == s["n"] == _weight_count(model)
    weights = torch.cat([m.weight.detach().flatten() for m in layer_names(model).weights.values()])
    assert s["sparsity"] == pytest.approx((weights.abs() < 1e-2).double().mean().item())
    assert 0 < s["sparsity"] < 1 and weight_summary(model, threshold=10)["sparsity"] == 1.0


# ---------------------------------------------------------------- sharpness and update spectrum

def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_sharpness_rises_first_order_along_the_gradient_and_leaves_the_model_alone():
    """At a small radius the loss rises along the gradient by about rho * |gradient| (first order),
    more than along a random direction of the same length; the weights come back unchanged."""
    torch.manual_seed(0)
    model = LeNet5(batch_norm=True).eval()
    x, y = _batch()
    params = list(model.parameters())
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    gnorm = torch.sqrt(sum((g ** 2).sum() for g in grads)).item()
    before = _state(model)
    s = sharpness(model, x, y, rho=1e-3)
    assert s["adversarial"] == pytest.approx(1e-3 * gnorm, rel=0.05)
    assert abs(s["random"]) < s["adversarial"]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in params) and not model.training
    big = sharpness(model, x, y, rho=0.5)
    assert big["adversarial"] > s["adversarial"] and big["random"] > s["random"]  # rises grow with the radius
    assert sharpness(model, x, y, rho=0.5) == big  # seeded: the same random directions


def test_update_spectrum_counts_the_directions_of_what_training_changed():
    torch.manual_seed(0)
    initial = LeNet5(c3_table=True)
    model = LeNet5(c3_table=True)
    model.load_state_dict(initial.state_dict())
    u, v = torch.randn(120, 1), torch.randn(1, 400)
    q, _ = torch.linalg.qr(torch.randn(120, 84))
    with torch.no_grad():
        model.classifier[0][0].weight += u @ v  # C5: a rank-one change
        model.classifier[1][0].weight += 0.1 * q.T  # F6: an orthogonal change, all 84 directions equally
    spectrum = update_spectrum(model, initial)
    assert list(spectrum) == ["C3", "C5", "F6"]
    assert spectrum["C5"]["stable_rank"] == pytest.approx(1.0, rel=1e-6)
    assert spectrum["C5"]["singular_values"][0] == 1.0 and max(spectrum["C5"]["singular_values"][1:]) < 1e-6
    assert spectrum["F6"]["stable_rank"] == pytest.approx(84, rel=1e-4)
    assert spectrum["C3"] == dict(singular_values=[0.0] * 16, stable_rank=0.0)  # unchanged; 16 x 150 dense
    json.dumps(spectrum)


def test_a_trained_record_holds_sharpness_and_the_update_spectrum():
    from lenet_core.train import train

    record = train(RunConfig(epochs=1, train_size=256, batch_size=64), device="cpu", progress=False).record
    diag = record["diagnostics"]
    assert diag["sharpness"]["rho"] == SHARPNESS_RHO and diag["sharpness"]["adversarial"] > 0
    assert set(diag["update_spectrum"]) == {"C3", "C5", "F6"}
    assert 1 <= diag["update_spectrum"]["F6"]["stable_rank"] <= 84
