"""The MLP spaces of the Bernoulli papers: activation selection (shirakawa2018 exp. II) and
unit selection under a complexity penalty (saito2018 §4.1)."""

import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn
from torch.testing import assert_close

from bayesnas import sites
from bayesnas.guides import FixedGuide, auto_guide
from bayesnas.infer import (
    ArchitectureSearch,
    ExpectedLoss,
    RankingNaturalGradientLoss,
    predict_deterministic,
    predict_stochastic,
)
from bayesnas.models.activation_select import ActivationSelectMLP
from bayesnas.models.unit_select import UnitSelectMLP

SITE = {ActivationSelectMLP: "activation", UnitSelectMLP: "units"}


def run(model, bits, x, y=None):
    """The model with its S architectures ``bits`` of shape (S, depth, width) conditioned."""
    with sites.arch_plate(bits.shape[0]):
        return poutine.condition(model, data={SITE[type(model)]: bits.float()})(x, y)


def reference(model, bits, x):
    """One architecture (depth, width) computed unit by unit from the papers' formulas."""
    h = x
    for layer, m in zip(model.hidden, bits.float(), strict=True):
        z = layer(h)
        if isinstance(model, ActivationSelectMLP):  # m relu(z) + (1 − m) tanh(z), shirakawa2018 (II)
            h = m * F.relu(z) + (1 - m) * torch.tanh(z)
        else:  # m F(z), saito2018 §4.1
            h = m * F.relu(z)
    return model.output(h)


def small(cls, **kw):
    torch.manual_seed(0)
    return cls(12, 4, depth=3, width=8, **kw)


# -- sites -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, shape, choices, d", [
    (ActivationSelectMLP, (3, 1024), ("tanh", "relu"), 3072),
    (UnitSelectMLP, (3, 784), ("removed", "kept"), 2352),
])
def test_default_space_declares_one_bit_per_hidden_unit(cls, shape, choices, d):
    model = cls.for_data((1, 28, 28), 10)
    specs = sites.discover_sites(model, torch.zeros(2, 784))
    assert list(specs) == [SITE[cls]]
    spec = specs[SITE[cls]]
    assert (spec.family, spec.shape, spec.choices, spec.edges, spec.numel) == (
        "bernoulli", shape, choices, None, d)
    assert [(lin.in_features, lin.out_features) for lin in [*model.hidden, model.output]] == [
        (784, shape[1]), (shape[1], shape[1]), (shape[1], shape[1]), (shape[1], 10)]


def test_initialisation_follows_each_paper():
    torch.manual_seed(0)
    act, unit = ActivationSelectMLP(), UnitSelectMLP()
    # shirakawa2018 (II) on Chainer 1.23: N(0, 1/fan_in); saito2018 §4: He, N(0, 2/fan_in).
    for model, gain in ((act, 1.0), (unit, 2.0)):
        for layer in [*model.hidden, model.output]:
            std = float(layer.weight.detach().std())
            assert abs(std - (gain / layer.in_features) ** 0.5) < 0.05 * std
            assert not layer.bias.any()


# -- batched pass ----------------------------------------------------------------------------


def _cases():
    g = torch.Generator().manual_seed(1)
    rand = torch.randint(0, 2, (4, 3, 8), generator=g)
    mixed = torch.randint(0, 2, (3, 8), generator=g)
    partly = torch.randint(0, 2, (3, 3, 8), generator=g)
    partly[:, 0] = mixed[0]  # layer 1: the same mixed layout in every sample (stays shared)
    partly[:, 1] = 1  # layer 2: all ReLU / all kept in every sample
    partly[1, 2] = 0  # layer 3: differs between samples
    return {
        "random": rand,
        "shared-then-split": partly,
        "all-ones": torch.ones(2, 3, 8, dtype=torch.long),
        "all-zeros": torch.zeros(2, 3, 8, dtype=torch.long),
        "single": rand[:1],
    }


@pytest.mark.parametrize("cls", [ActivationSelectMLP, UnitSelectMLP])
@pytest.mark.parametrize("case", list(_cases()))
def test_batched_pass_equals_each_architecture_alone(cls, case):
    model, bits = small(cls), _cases()[case]
    x = torch.randn(5, 12)
    out = run(model, bits, x)
    assert out.shape == (bits.shape[0], 5, 4)
    for s in range(bits.shape[0]):
        assert_close(out[s], run(model, bits[s : s + 1], x)[0])
        assert_close(out[s], reference(model, bits[s], x))


@pytest.mark.parametrize("cls", [ActivationSelectMLP, UnitSelectMLP])
def test_per_architecture_batches_of_eq5(cls):
    model, bits = small(cls), _cases()["shared-then-split"]
    x = torch.randn(3, 2, 12)  # shirakawa2018 eq. (5): each architecture its own part
    out = run(model, bits, x)
    assert out.shape == (3, 2, 4)
    for s in range(3):
        assert_close(out[s], reference(model, bits[s], x[s]))


# -- fixed networks --------------------------------------------------------------------------


def plain_mlp(model, activation):
    layers = []
    for lin in model.hidden:
        layers += [lin, activation()]
    return nn.Sequential(*layers, model.output)


@pytest.mark.parametrize("cls, value, activation", [
    (ActivationSelectMLP, 1, nn.ReLU),
    (ActivationSelectMLP, 0, nn.Tanh),
    (UnitSelectMLP, 1, nn.ReLU),
])
def test_uniform_architecture_is_the_plain_mlp(cls, value, activation):
    torch.manual_seed(0)
    model = cls.for_data((784,), 10, width=64)
    x = torch.randn(6, 784)
    bits = torch.full((1, 3, 64), value)
    assert_close(run(model, bits, x)[0], plain_mlp(model, activation)(x), rtol=0, atol=0)


def test_removed_units_equal_the_pruned_network_and_its_weight_count():
    model = small(UnitSelectMLP)
    arch = torch.zeros(3, 8, dtype=torch.long)
    arch[0, [0, 2, 3, 7]] = 1
    arch[1, [1, 5]] = 1
    arch[2, [2, 3, 4]] = 1
    kept = [torch.tensor([0, 2, 3, 7]), torch.tensor([1, 5]), torch.tensor([2, 3, 4])]
    pruned, previous = [], torch.arange(12)
    for lin, k in zip(model.hidden, kept, strict=True):
        small_lin = nn.Linear(len(previous), len(k))
        small_lin.weight.data = lin.weight.data[k][:, previous]
        small_lin.bias.data = lin.bias.data[k]
        pruned += [small_lin, nn.ReLU()]
        previous = k
    out = nn.Linear(len(previous), 4)
    out.weight.data, out.bias.data = model.output.weight.data[:, previous], model.output.bias.data
    net = nn.Sequential(*pruned, out)
    x = torch.randn(5, 12)
    assert_close(run(model, arch[None], x)[0], net(x))
    arch_map = {"units": arch.tolist()}
    assert model.units_per_layer(arch_map) == [4, 2, 3]
    # 12·4+4 + 4·2+2 + 2·3+3 + 3·4+4 = 52 + 10 + 9 + 16
    assert model.num_weights_used(arch_map) == sum(p.numel() for p in net.parameters()) == 87


def test_weight_counts_of_saito2018():
    model = UnitSelectMLP()
    total = sum(p.numel() for p in model.parameters())
    full = {"units": [[1] * 784] * 3}
    assert model.num_weights_used(full) == total == 3 * (784 * 784 + 784) + 784 * 10 + 10
    assert model.weight_usage_rate(full) == 1.0
    assert model.units_per_layer(full) == [784, 784, 784]
    # A layer with no unit left passes nothing on: the next layer keeps only its biases.
    tiny = UnitSelectMLP(5, 3, depth=2, width=4)
    assert tiny.num_weights_used({"units": [[0, 0, 0, 0], [1, 1, 1, 0]]}) == 0 + 3 + (9 + 3)
    assert tiny.num_weights_used({"units": [[1, 1, 0, 0], [1, 0, 0, 0]]}) == 12 + 3 + 6
    # The uniform-removal baseline: width 392, every unit kept, against the 784-unit network.
    half = UnitSelectMLP.for_data((784,), 10, width=392)
    n_half = (784 * 392 + 392) + 2 * (392 * 392 + 392) + (392 * 10 + 10)
    assert UnitSelectMLP.weights_of_widths(784, [392] * 3, 10) == n_half == 619_762
    assert sum(p.numel() for p in half.parameters()) == n_half
    first_half = {"units": [[1] * 392 + [0] * 392] * 3}
    assert model.num_weights_used(first_half) == n_half
    assert model.weight_usage_rate(first_half) == n_half / total


def test_costs_are_one_per_unit_and_accepted_by_the_loss():
    model = UnitSelectMLP()
    costs = model.complexity_costs()
    assert list(costs) == ["units"]
    assert costs["units"].shape == (3, 784) and bool((costs["units"] == 1).all())
    small_model = small(UnitSelectMLP)
    x, y = torch.randn(4, 12), torch.randint(0, 4, (4,))
    guide = auto_guide(small_model, x)
    loss = RankingNaturalGradientLoss(penalty=2**-7, costs=small_model.complexity_costs())
    loss.loss_and_grads(small_model, guide, x, y)  # checks the costs' site and shape
    assert loss.epsilon == 2**-7  # ε = ε₀ / max(c), max(c) = 1


# -- dropout baseline ------------------------------------------------------------------------


def test_dropout_acts_in_training_mode_only():
    torch.manual_seed(0)
    model = UnitSelectMLP(16, 4, depth=1, width=32, dropout=0.5)
    twin = UnitSelectMLP(16, 4, depth=1, width=32)
    twin.load_state_dict(model.state_dict())
    ones = torch.ones(1, 1, 32)
    x = torch.randn(1, 16).expand(4000, 16)
    model.eval()
    twin.train()  # no dropout: training mode changes nothing
    expected = run(twin, ones, x)
    assert_close(run(model, ones, x), expected, rtol=0, atol=0)
    model.train()
    out = run(model, ones, x)[0]
    assert len(torch.unique(out[:, 0])) > 100  # each datum draws its own dropout mask
    # Inverted dropout: the logits are linear in the hidden units, so their mean is unchanged.
    err = (out.mean(0) - expected[0, 0]).abs()
    assert bool((err < 5 * out.std(0) / 4000**0.5).all())


# -- complexity penalty ----------------------------------------------------------------------


@pytest.mark.parametrize("penalty", [2**-2, 2**-6, 0.0])
def test_penalty_on_a_flat_loss_follows_saito2018_eq7(penalty):
    # Zero output layer: every architecture has the same loss, so the ranking utilities tie at
    # 0 and eq. (7) reduces to θ ← θ − η ε c θ(1 − θ), with η = 1/d, ε = ε₀ / max(c), c = 1.
    model = small(UnitSelectMLP)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.zero_()
    x, y = torch.randn(8, 12), torch.randint(0, 4, (8,))
    guide = auto_guide(model, x)
    search = ArchitectureSearch(
        model, guide, RankingNaturalGradientLoss(penalty=penalty, costs=model.complexity_costs()),
        weight_optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
        arch_optimizers=guide.make_optimizers(), generator=torch.Generator().manual_seed(0),
    )
    theta, d = guide.theta("units"), 24
    sums = [float(theta.detach().sum())]
    for _ in range(30):
        before = theta.detach().clone()
        metrics = search.step(x, y)
        assert metrics["utility"].tolist() == [0.0, 0.0]
        expected = (before - penalty * before * (1 - before) / d).clamp(1 / d, 1 - 1 / d)
        assert_close(theta.detach(), expected)
        sums.append(float(theta.detach().sum()))
    if penalty:
        assert all(b < a for a, b in zip(sums, sums[1:], strict=False))
    else:
        assert sums == [12.0] * 31


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, same_batch", [
    (ActivationSelectMLP, True), (UnitSelectMLP, True), (ActivationSelectMLP, False),
])
def test_search_step_and_predictions(cls, same_batch):
    model = small(cls)
    x, y = torch.randn(8, 12), torch.randint(0, 4, (8,))
    guide = auto_guide(model, x)
    search = ArchitectureSearch(
        model, guide, RankingNaturalGradientLoss(num_samples=2, same_batch=same_batch),
        weight_optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        arch_optimizers=guide.make_optimizers(), generator=torch.Generator().manual_seed(0),
    )
    before = [p.detach().clone() for p in model.parameters()]
    metrics = search.step(x, y)
    assert metrics["losses"].shape == (2,)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    mode = guide.mode()[SITE[cls]]
    assert_close(predict_deterministic(model, guide, x), reference(model, mode, x))
    probs = predict_stochastic(model, guide, x, num_samples=5, generator=torch.Generator().manual_seed(1))
    assert probs.shape == (8, 4)
    assert_close(probs.sum(-1), torch.ones(8))


def test_fixed_tanh_baseline_trains_the_tanh_network():
    model = small(ActivationSelectMLP)
    x, y = torch.randn(8, 12), torch.randint(0, 4, (8,))
    specs = sites.discover_sites(model, x)
    guide = FixedGuide({"activation": [[0] * 8] * 3}, specs)
    search = ArchitectureSearch(
        model, guide, ExpectedLoss(num_samples=1),
        weight_optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        generator=torch.Generator().manual_seed(0),
    )
    search.step(x, y)
    assert_close(predict_deterministic(model, guide, x), plain_mlp(model, nn.Tanh)(x))


# -- options ---------------------------------------------------------------------------------


A, U = ActivationSelectMLP.for_data, UnitSelectMLP.for_data


@pytest.mark.parametrize("build, message", [
    (lambda: A((784,), 10, width=0), "`width` must be an integer >= 1, but got width=0."),
    (lambda: A((784,), 10, depth=1.5), "`depth` must be an integer >= 1, but got depth=1.5."),
    (lambda: A((784,), 1), "`num_classes` must be an integer >= 2, but got num_classes=1."),
    (lambda: U((784,), 10, depth=0), "`depth` must be an integer >= 1, but got depth=0."),
    (lambda: U((784,), 10, width=True), "`width` must be an integer >= 1, but got width=True."),
    (lambda: U((784,), 10, dropout=1.0), "`dropout` must lie in [0, 1), but got dropout=1.0."),
    (lambda: U((784,), 10, dropout=-0.1), "`dropout` must lie in [0, 1), but got dropout=-0.1."),
    (lambda: UnitSelectMLP.weights_of_widths(784, [10, -1], 10), "integers >= 0, but got -1 at position 2."),
    (lambda: UnitSelectMLP(5, 3, depth=2, width=4).units_per_layer({"units": [[1] * 4]}),
     "has shape (2, 4), but the architecture gives a value of shape (1, 4)."),
])
def test_bad_options_state_the_rule_and_the_value(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


@pytest.mark.parametrize("cls", [ActivationSelectMLP, UnitSelectMLP])
def test_bad_inputs_state_the_shape(cls):
    model = small(cls)
    with pytest.raises(ValueError, match=r"takes flattened inputs \(N, 12\).*got x of shape \(4, 10\)"):
        run(model, torch.ones(1, 3, 8), torch.randn(4, 10))
    with pytest.raises(ValueError, match=r"number of architectures S=2, but got x of shape \(3, 4, 12\)"):
        run(model, torch.ones(2, 3, 8), torch.randn(3, 4, 12))
