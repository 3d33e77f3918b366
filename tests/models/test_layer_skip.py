"""The layer-skip space (shirakawa2018 I): batched pass, skip-forward, initialisation."""

import pytest
import torch
from pyro import poutine

from bayesnas.models import LayerSkipMLP, layer_skip
from bayesnas.models.layer_skip import init_linear_
from bayesnas.sites import arch_plate


def _net(depth=6, width=5):
    torch.manual_seed(0)
    return LayerSkipMLP(7, 3, depth=depth, width=width).double()


@pytest.mark.parametrize("max_runs", [0, 1000])  # the masked path always / never
@pytest.mark.parametrize("num_arch", [1, 2, 3, 9])
@pytest.mark.parametrize("per_sample", [False, True])
def test_batched_pass_and_gradients_equal_each_architecture_alone(
    num_arch, per_sample, max_runs, monkeypatch
):
    monkeypatch.setattr(layer_skip, "_MAX_RUNS", max_runs)
    net = _net()
    g = torch.Generator().manual_seed(num_arch)
    keep = (torch.rand(num_arch, 5, generator=g) < 0.5).double()
    keep[:, 0] = 1.0  # one layer kept by every sample, and one skipped by all
    keep[:, 1] = 0.0
    n = 4
    x = torch.randn((num_arch, n, 7) if per_sample else (n, 7), generator=g, dtype=torch.float64)
    with arch_plate(num_arch):
        batched = poutine.condition(net, data={"layers": keep})(x)
    assert batched.shape == (num_arch, n, 3)
    batched.square().sum().backward()
    grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    total = 0.0
    for s in range(num_arch):
        with arch_plate(1):
            alone = poutine.condition(net, data={"layers": keep[s : s + 1]})(x[s] if per_sample else x)
        torch.testing.assert_close(batched[s], alone[0], rtol=1e-12, atol=1e-12)
        total = total + alone.square().sum()
    total.backward()
    for a, p in zip(grads, net.parameters(), strict=True):
        if a is None:  # the layer every sample skips gets no gradient either way
            assert p.grad is None
        else:
            torch.testing.assert_close(a, p.grad, rtol=1e-10, atol=1e-12)


def test_a_skipped_layer_passes_its_input_forward():
    net = _net(depth=3)
    x = torch.randn(4, 7, dtype=torch.float64)
    with arch_plate(1):
        out = poutine.condition(net, data={"layers": torch.zeros(1, 2, dtype=torch.float64)})(x)
    h = torch.relu(net.input(x))
    torch.testing.assert_close(out[0], net.output(h))


@pytest.mark.parametrize("init, gain", [("lecun", 1.0), ("he", 2.0)])
def test_initialisation_scale(init, gain):
    torch.manual_seed(0)
    layer = torch.nn.Linear(400, 300)
    init_linear_(layer, init)
    assert float(layer.bias.detach().abs().max()) == 0.0
    assert float(layer.weight.detach().var()) == pytest.approx(gain / 400, rel=0.02)


def test_unknown_initialisation_states_the_rule():
    with pytest.raises(ValueError, match=r"`init` must be one of \('lecun', 'he'\), but got init='xavier'"):
        LayerSkipMLP(7, 3, depth=3, width=4, init="xavier")
