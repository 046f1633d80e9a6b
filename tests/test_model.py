import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lenet_core.model import (ACTIVATIONS, C3_TABLE, INITIALIZERS, NORMS, POOLS, LeNet5, ScaledTanh,
                              TableConv2d, count_parameters)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(), 61_706),  # modern ReLU / max-pool LeNet-5 on MNIST
    (dict(in_channels=3), 62_006),  # on CIFAR-10: C1 sees 3 channels
    (dict(act="scaled_tanh", pool="subsample", init="lecun_uniform", c3_table=True), 60_850),  # 1998: 60,000 + output
    (dict(pool="subsample"), 61_706 + 2 * (6 + 16)),  # coefficient and bias per map
    (dict(batch_norm=True), 61_706 - (6 + 16 + 120 + 84) + 2 * (6 + 16 + 120 + 84)),  # biases move into BN
    # group and layer norm: the same scale and shift per channel (unit) as batch norm
    (dict(batch_norm=True, norm_layer="group"), 61_706 - (6 + 16 + 120 + 84) + 2 * (6 + 16 + 120 + 84)),
    (dict(batch_norm=True, norm_layer="layer"), 61_706 - (6 + 16 + 120 + 84) + 2 * (6 + 16 + 120 + 84)),
])
def test_parameter_counts(kwargs, expected):
    assert count_parameters(LeNet5(**kwargs)) == expected


def test_c3_table_has_the_papers_1516_parameters():
    conv = TableConv2d(6, C3_TABLE)
    assert count_parameters(conv) == 1_516
    assert sum(len(t) for t in C3_TABLE) == 60
    with torch.no_grad():
        conv.weight.uniform_(0.5, 1.0)  # every connected weight nonzero (torch.empty holds anything)
    dense = conv.dense_weight()
    for out, inputs in enumerate(C3_TABLE):  # unconnected kernels are exactly zero
        for i in range(6):
            assert (dense[out, i].abs().sum() > 0) == (i in inputs)


def test_c3_table_gradients_reach_only_connected_kernels():
    """Each connected kernel gets the gradient a dense convolution gives that kernel, and an input
    map reaches only the output maps the table connects it to."""
    torch.manual_seed(0)
    conv = TableConv2d(6, C3_TABLE)
    with torch.no_grad():
        conv.weight.normal_()
    x, upstream = torch.randn(2, 6, 14, 14), torch.randn(2, 16, 10, 10)
    (conv(x) * upstream).sum().backward()
    dense = conv.dense_weight().detach().requires_grad_()
    (F.conv2d(x, dense, conv.bias.detach()) * upstream).sum().backward()
    assert conv.weight.grad.shape == (60, 25)
    assert torch.allclose(conv.weight.grad, dense.grad.view(16 * 6, 25)[conv.rows], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        for j in range(6):
            only_j = torch.zeros_like(x)
            only_j[:, j] = x[:, j]
            out = conv(only_j) - conv.bias.view(1, -1, 1, 1)
            reached = {i for i in range(16) if out[:, i].abs().sum() > 0}
            assert reached == {i for i, inputs in enumerate(C3_TABLE) if j in inputs}, j


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("classic", [False, True])
def test_output_shapes(channels, classic):
    kw = dict(act="scaled_tanh", pool="subsample", c3_table=True) if classic else {}
    model = LeNet5(in_channels=channels, **kw)
    assert model(torch.zeros(5, channels, 32, 32)).shape == (5, 10)
    assert model.features(torch.zeros(5, channels, 32, 32)).shape == (5, 400)


def test_scaled_tanh_is_lecuns_function():
    f = ScaledTanh()
    assert f(torch.tensor(1.0)).item() == pytest.approx(1.0, abs=1e-3)
    assert f(torch.tensor(-1.0)).item() == pytest.approx(-1.0, abs=1e-3)
    assert f(torch.tensor(100.0)).item() == pytest.approx(1.7159)


def _one_step(model: nn.Module) -> bool:
    """One SGD step on a random batch; True when some parameter moved."""
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(torch.randn(8, 1, 32, 32)), torch.arange(8) % 10)
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    return any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_activation_builds_and_steps(act):
    assert _one_step(LeNet5(act=act))


@pytest.mark.parametrize("pool", POOLS)
def test_every_pooling_builds_and_steps(pool):
    assert _one_step(LeNet5(pool=pool))


@pytest.mark.parametrize("init", INITIALIZERS)
@pytest.mark.parametrize("c3_table", [False, True])
def test_every_initialization_builds_and_steps(init, c3_table):
    assert _one_step(LeNet5(init=init, c3_table=c3_table))


def test_lecun_uniform_respects_each_layers_fan_in():
    torch.manual_seed(0)
    model = LeNet5(init="lecun_uniform", c3_table=True)
    c1, c3 = model.features[0][0], model.features[1][0]
    assert c1.weight.abs().max() <= 2.4 / 25 and c1.weight.abs().max() > 0.8 * 2.4 / 25
    for rows, fan_in in c3.kernels_per_map():  # 75, 100 or 150 inputs per C3 map
        assert rows.abs().max() <= 2.4 / fan_in
    assert {f for _, f in c3.kernels_per_map()} == {75, 100, 150}
    fc = model.classifier[0][0]
    assert fc.weight.abs().max() <= 2.4 / 400 and fc.bias.abs().sum() == 0


@pytest.mark.parametrize("init, std", [("kaiming_normal", math.sqrt(2 / 400)),
                                       ("lecun_normal", math.sqrt(1 / 400)),
                                       ("xavier_normal", math.sqrt(2 / 520))])
def test_normal_initializers_have_their_variance(init, std):
    torch.manual_seed(0)
    w = LeNet5(init=init).classifier[0][0].weight  # 400 -> 120
    assert w.std().item() == pytest.approx(std, rel=0.05)


def test_orthogonal_rows_are_orthonormal():
    w = LeNet5(init="orthogonal").classifier[1][0].weight  # 84 x 120
    assert torch.allclose(w @ w.T, torch.eye(84), atol=1e-5)


def test_zeros_initialization_is_all_zero():
    model = LeNet5(init="zeros")
    assert all(m.weight.abs().sum() == 0 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


@pytest.mark.parametrize("kwargs, word", [(dict(act="relu6"), "activation"), (dict(pool="l2"), "pooling"),
                                          (dict(init="he"), "initialization")])
def test_unknown_names_list_the_choices(kwargs, word):
    with pytest.raises(ValueError, match=f"unknown {word}") as err:
        LeNet5(**kwargs)
    table = {"activation": ACTIVATIONS, "pooling": POOLS, "initialization": INITIALIZERS}[word]
    assert all(name in str(err.value) for name in table)


def test_dropout_and_batch_norm_are_in_the_network():
    model = LeNet5(dropout=0.5, batch_norm=True)
    kinds = [type(m) for m in model.modules()]
    assert kinds.count(nn.Dropout) == 2 and kinds.count(nn.BatchNorm2d) == 2 and kinds.count(nn.BatchNorm1d) == 2


def _norm_inputs(model: LeNet5, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """(norm module, its input, its output) for every normalization layer on batch x."""
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].detach(), o.detach())))
               for m in model.modules() if isinstance(m, nn.GroupNorm | nn.BatchNorm2d | nn.BatchNorm1d)]
    model(x)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("kind, groups", [("group", [2, 4, 30, 21]), ("layer", [1, 1, 1, 1])])
def test_group_and_layer_norm_standardize_each_example_over_its_groups(kind, groups):
    """Each example's pre-activations are standardized within each group of channels (all of them
    for layer norm), independently of the other examples in the batch, the same in eval mode."""
    torch.manual_seed(0)
    model = LeNet5(batch_norm=True, norm_layer=kind)
    x = torch.randn(8, 1, 32, 32)
    seen = _norm_inputs(model, x)
    assert [m.num_groups for m, _, _ in seen] == groups
    for m, inp, out in seen:
        g = inp.reshape(len(inp), m.num_groups, -1)
        expected = ((g - g.mean(2, keepdim=True)) / torch.sqrt(g.var(2, unbiased=False, keepdim=True) + m.eps))
        assert torch.allclose(out, expected.reshape(inp.shape), atol=1e-5)  # scale 1, shift 0 at the start
    model.eval()  # no running statistics: one example alone gets the same output
    assert torch.allclose(model(x[:1]), model.train()(x)[:1], atol=1e-5)


def test_batch_norm_depends_on_the_batch_and_group_norm_does_not():
    torch.manual_seed(0)
    x = torch.randn(8, 1, 32, 32)
    for kind, batch_dependent in (("batch", True), ("group", False), ("layer", False)):
        model = LeNet5(batch_norm=True, norm_layer=kind).train()
        assert (not torch.allclose(model(x[:2]), model(x)[:2], atol=1e-4)) == batch_dependent, kind


def test_an_unknown_norm_layer_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match="unknown normalization 'instance'") as err:
        LeNet5(batch_norm=True, norm_layer="instance")
    assert all(name in str(err.value) for name in NORMS)
