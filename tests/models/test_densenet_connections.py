"""DenseNet connection selection (shirakawa2018 §IV, saito2018 §4.2) as a search space."""

import pytest
import torch
import torch.nn.functional as F
from pyro import poutine

from bayesnas.data import as_tensors, load_dataset
from bayesnas.guides import auto_guide
from bayesnas.infer import ArchitectureSearch, RankingNaturalGradientLoss
from bayesnas.models.densenet_connections import DenseNetConnections
from bayesnas.sites import arch_plate, discover_sites

TINY = dict(growth=3, layers_per_block=3, blocks=3, stem_channels=4)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks (tests/conftest.py)


def tiny(**kw) -> DenseNetConnections:
    torch.manual_seed(0)
    net = DenseNetConnections.for_data((1, 8, 8), 10, **{**TINY, **kw})
    # Non-trivial BN parameters and running statistics, so that eval mode is a real test.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
        net.blocks[-1][-1].op.bias.uniform_(-1, 1)
    return net


def random_arch(net, generator, p=0.5):
    return {name: (torch.rand(net.bits_per_block, generator=generator) < p).float()
            for name in net.site_names()}


def run(net, archs, x):
    """Logits of the S architectures ``archs`` (list of {site: (d,) tensor}) in one pass."""
    data = {name: torch.stack([a[name] for a in archs]) for name in net.site_names()}
    with arch_plate(len(archs)):
        return poutine.condition(net, data=data)(x)


def reference(net, arch, x, training):
    """The fixed network with cut connections physically removed (sliced BN and weights)."""
    h = F.conv2d(x, net.stem.weight, padding=1)
    L = net.layers_per_block
    for b, consumers in enumerate(net.blocks):
        bits = arch[f"block{b + 1}.connections"]
        feats = [h]
        for l, consumer in enumerate(consumers, start=1):  # noqa: E741
            p = l * (l - 1) // 2
            starts = torch.tensor([0] + [f.shape[1] for f in feats]).cumsum(0).tolist()
            kept = [j for j in range(l) if bits[p + j]]
            op, bn = consumer.op, consumer.norm
            idx = torch.cat([torch.arange(starts[j], starts[j + 1]) for j in kept]) if kept else None
            if idx is None:  # no input left: a conv of nothing is 0, the classifier gives its bias
                if isinstance(op, torch.nn.Linear):
                    return op.bias.expand(x.shape[0], -1)
                out = x.new_zeros(x.shape[0], op.out_channels, *h.shape[-2:])
            else:
                z = F.relu(F.batch_norm(
                    torch.cat([feats[j] for j in kept], 1), bn.running_mean[idx].clone(),
                    bn.running_var[idx].clone(), bn.weight[idx], bn.bias[idx], training=training,
                    momentum=0.0, eps=bn.eps))
                if isinstance(op, torch.nn.Linear):
                    return F.linear(z.mean((2, 3)), op.weight[:, idx], op.bias)
                out = F.conv2d(z, op.weight[:, idx], padding=op.padding)
            if l <= L:
                feats.append(out)
            else:
                h = F.avg_pool2d(out, 2, ceil_mode=True)
    raise AssertionError("unreachable")


# -- size of the space and the costs ------------------------------------------------------------

def test_densenet40_has_273_bits_and_the_known_weight_counts():
    net = DenseNetConnections()  # DenseNet-40, k = 12, CIFAR-sized
    specs = discover_sites(net, torch.randn(2, 3, 4, 4))  # one forward on a tiny input, S = 1
    assert list(specs) == ["block1.connections", "block2.connections", "block3.connections"]
    assert [s.shape for s in specs.values()] == [(91,)] * 3
    assert sum(s.numel for s in specs.values()) == net.num_connections == 273
    spec = specs["block1.connections"]
    assert spec.choices == ("cut", "keep")
    assert spec.edges[0] == ("b1.in", "b1.l1")
    assert spec.edges[3] == ("b1.in", "b1.l3")  # l = 3: p = 3, j = 0
    assert spec.edges[80] == ("b1.l2", "b1.out")  # l = 13 (the transition): p = 78, j = 2
    assert spec.edges[-1] == ("b1.l12", "b1.out")
    # Channels: 16 -> 160 -> 304 -> 448; conv weights 108·(12·k0 + 12·66) per block,
    # transitions 160² and 304², classifier 448 × 10.
    gated = sum(108 * (12 * k0 + 792) for k0 in (16, 160, 304)) + 160**2 + 304**2 + 448 * 10
    bn_channels = sum(12 * k0 + 792 + (k0 + 144) for k0 in (16, 160, 304))
    total = sum(p.numel() for p in net.parameters())
    costs = net.complexity_costs()
    assert gated == 1_001_184 and bn_channels == 9048
    assert int(sum(c.sum() for c in costs.values())) == gated
    assert net.num_ungated_weights() == 16 * 3 * 9 + 2 * bn_channels + 10 == 18_538
    assert total == 1_019_722
    # c of the first bit: layer 1 of block 1 reads the 16 stem channels with 12 × 3 × 3 weights.
    assert costs["block1.connections"][0] == 16 * 12 * 9
    assert costs["block3.connections"][-1] == 12 * 10  # layer 12 of block 3 -> classifier


@pytest.mark.parametrize("options", [TINY, dict(growth=4, layers_per_block=3, blocks=2, stem_channels=8)])
def test_costs_are_the_weights_reading_each_connection_and_add_up_to_the_total(options):
    net = DenseNetConnections(in_channels=1, **options)
    costs = net.complexity_costs()
    L = net.layers_per_block
    assert net.num_connections == options["blocks"] * (L + 1) * (L + 2) // 2
    for b, consumers in enumerate(net.blocks):
        c = costs[f"block{b + 1}.connections"]
        assert c.shape == (net.bits_per_block,)
        sources = [net.blocks[b][0].op.in_channels] + [net.growth] * L
        for l, consumer in enumerate(consumers, start=1):  # noqa: E741
            start = 0
            for j in range(l):
                cols = consumer.op.weight[:, start : start + sources[j]]
                assert c[l * (l - 1) // 2 + j] == cols.numel()
                start += sources[j]
            assert start == consumer.op.weight.shape[1]  # the connections cover every input column
    ungated = (net.stem.weight.numel() + net.blocks[-1][-1].op.bias.numel()
               + sum(p.numel() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)
                     for p in m.parameters()))
    total = sum(p.numel() for p in net.parameters())
    assert int(sum(x.sum() for x in costs.values())) + ungated == total
    assert net.num_ungated_weights() == ungated


def test_num_weights_used_counts_kept_connections_plus_ungated_weights():
    net = tiny()
    total = sum(p.numel() for p in net.parameters())
    ones = {n: [1] * net.bits_per_block for n in net.site_names()}
    zeros = {n: [0] * net.bits_per_block for n in net.site_names()}
    assert net.num_weights_used(ones) == total
    assert net.num_weights_used(zeros) == net.num_ungated_weights()
    arch = random_arch(net, torch.Generator().manual_seed(1))
    plain = {n: v.long().tolist() for n, v in arch.items()}
    # Count the weight columns the pruned network keeps, consumer by consumer.
    kept = 0
    for b, consumers in enumerate(net.blocks):
        sources = [consumers[0].op.in_channels] + [net.growth] * net.layers_per_block
        for l, consumer in enumerate(consumers, start=1):  # noqa: E741
            w = consumer.op.weight
            kept += sum(w.numel() // w.shape[1] * sources[j] for j in range(l)
                        if plain[f"block{b + 1}.connections"][l * (l - 1) // 2 + j])
    assert net.num_weights_used(plain) == kept + net.num_ungated_weights()
    with pytest.raises(KeyError, match="no value for the arch sites"):
        net.num_weights_used({"block1.connections": ones["block1.connections"]})
    with pytest.raises(ValueError, match="has shape"):
        net.num_weights_used({**ones, "block2.connections": [1, 0]})


# -- semantics of a cut connection --------------------------------------------------------------

@pytest.mark.parametrize("training", [False, True])
def test_masked_network_and_its_gradients_equal_the_network_with_cut_connections_removed(training):
    # float64: in training mode BN divides by per-batch deviations, which magnifies the float32
    # rounding of two different (but equal in exact arithmetic) orders of summation.
    net = tiny().double()
    net.train(training)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    weights = torch.randn(6, 10, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    archs = [random_arch(net, g) for _ in range(3)] + [random_arch(net, g, p=0.2)]
    archs.append({n: torch.ones(net.bits_per_block) for n in net.site_names()})  # plain DenseNet
    names = [n for n, _ in net.named_parameters()]
    for arch in archs:
        results = []
        for forward in (lambda a=arch: run(net, [a], x)[0], lambda a=arch: reference(net, a, x, training)):
            net.zero_grad(set_to_none=False)
            out = forward()
            (out * weights).sum().backward()
            results.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
        (out, got), (want_out, want) = results
        torch.testing.assert_close(out, want_out, rtol=1e-9, atol=1e-10)
        for name, g_got, g_want in zip(names, got, want, strict=True):
            torch.testing.assert_close(g_got, g_want, rtol=1e-7, atol=1e-9,
                                       msg=lambda m, name=name: f"{name}: {m}")


def test_all_cut_gives_the_classifier_bias_and_layers_without_inputs_output_zero():
    net = tiny()
    net.eval()
    x = torch.randn(5, 1, 8, 8)
    zeros = {n: torch.zeros(net.bits_per_block) for n in net.site_names()}
    out = run(net, [zeros], x)[0]
    assert torch.equal(out, net.blocks[-1][-1].op.bias.detach().expand(5, -1))
    # Only layer 2 of block 1 loses every input (its bits 1 and 2): its output is exactly 0.
    arch = {n: torch.ones(net.bits_per_block) for n in net.site_names()}
    arch["block1.connections"][1:3] = 0
    seen = []
    hook = net.blocks[0][1].op.register_forward_hook(lambda m, i, o: seen.append(o))
    run(net, [arch], x)
    hook.remove()
    assert seen[0].shape == (5, net.growth, 8, 8) and not seen[0].any()


def _weight_grads_per_connection(net):
    """{(site, bit): gradient of the consumer's weight columns that read that connection}."""
    out = {}
    for blk, consumers in enumerate(net.blocks):
        sources = [consumers[0].op.in_channels] + [net.growth] * net.layers_per_block
        for l, consumer in enumerate(consumers, start=1):  # noqa: E741
            start = 0
            for j in range(l):
                grad = consumer.op.weight.grad[:, start : start + sources[j]]
                out[f"block{blk + 1}.connections", l * (l - 1) // 2 + j] = grad
                start += sources[j]
    return out


def test_gradients_reach_only_the_weights_of_kept_connections():
    net = tiny()
    x = torch.randn(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    g = torch.Generator().manual_seed(4)
    a, b = random_arch(net, g), random_arch(net, g)
    F.cross_entropy(run(net, [a, b], x).flatten(0, 1), y.repeat(2)).backward()
    grads = _weight_grads_per_connection(net)
    cut_both = [(n, i) for n, i in grads if not (a[n][i] or b[n][i])]
    assert 0 < len(cut_both) < len(grads)
    for key in cut_both:
        assert not grads[key].any(), key
    # With every connection kept in one of the samples, every weight column gets a gradient.
    net.zero_grad()
    ones = {n: torch.ones(net.bits_per_block) for n in net.site_names()}
    F.cross_entropy(run(net, [a, ones], x).flatten(0, 1), y.repeat(2)).backward()
    assert all(grad.abs().sum() > 0 for grad in _weight_grads_per_connection(net).values())


# -- the batched pass ---------------------------------------------------------------------------

def test_batched_architectures_equal_each_architecture_alone():
    net = tiny()
    net.eval()
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(6)
    a, b = random_arch(net, g), random_arch(net, g)
    late = {n: v.clone() for n, v in a.items()}
    late["block2.connections"][4] = 1 - late["block2.connections"][4]  # differs in block 2 only
    ones = {n: torch.ones(net.bits_per_block) for n in net.site_names()}
    for archs in ([a, b, ones, a], [a, late], [a, a], [ones, ones]):
        out = run(net, archs, x)
        assert out.shape == (len(archs), 5, 10)
        for s, arch in enumerate(archs):
            torch.testing.assert_close(out[s], run(net, [arch], x)[0], rtol=1e-5, atol=1e-6)


def test_identical_samples_share_everything_even_in_training_mode():
    net = tiny()
    x = torch.randn(5, 1, 8, 8)
    a = random_arch(net, torch.Generator().manual_seed(7))
    out = run(net, [a, a, a], x)
    assert torch.equal(out[0], out[2])
    torch.testing.assert_close(out[1], run(net, [a], x)[0], rtol=1e-5, atol=1e-6)


def test_each_architecture_its_own_part_of_the_batch_eq5():
    net = tiny()
    net.eval()
    x = torch.randn(3, 4, 1, 8, 8)
    g = torch.Generator().manual_seed(8)
    archs = [random_arch(net, g) for _ in range(3)]
    out = run(net, archs, x)
    assert out.shape == (3, 4, 10)
    for s in range(3):
        torch.testing.assert_close(out[s], run(net, [archs[s]], x[s])[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"needs S = the number of architectures \(2\)"):
        run(net, archs[:2], x)


def test_small_and_odd_spatial_sizes_work():
    for size in (1, 2, 3, 7):
        net = DenseNetConnections.for_data((1, size, size), 3, growth=2, layers_per_block=1, blocks=4)
        with arch_plate(2):
            assert net(torch.randn(2, 1, size, size)).shape == (2, 2, 3)


# -- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, message", [
    (dict(growth=0), "`growth` must be an integer >= 1, but got growth=0."),
    (dict(layers_per_block=0), "`layers_per_block` must be an integer >= 1, but got layers_per_block=0."),
    (dict(blocks=-1), "`blocks` must be an integer >= 1, but got blocks=-1."),
    (dict(stem_channels=2.5), "`stem_channels` must be an integer >= 1, but got stem_channels=2.5."),
    (dict(in_channels=0), "`in_channels` must be an integer >= 1, but got in_channels=0."),
    (dict(num_classes=1), "`num_classes` must be an integer >= 2, but got num_classes=1."),
])
def test_bad_options_state_the_rule_and_the_value(kw, message):
    with pytest.raises(ValueError) as info:
        DenseNetConnections(**kw)
    assert str(info.value) == message


def test_bad_inputs_state_the_expected_shape():
    rule = r"shape \(C, H, W\) with positive sizes, but got input_shape=\(64,\)"
    with pytest.raises(ValueError, match=rule):
        DenseNetConnections.for_data((64,), 10)
    with pytest.raises(TypeError):
        DenseNetConnections(3, 10)  # options are keyword-only
    with pytest.raises(TypeError, match=r"options \['depth'\]; the options are \['growth', 'layers_per"):
        DenseNetConnections.for_data((1, 8, 8), 10, depth=40)
    net = tiny()
    with arch_plate(1), pytest.raises(ValueError, match=r"takes images \(N, 1, H, W\).*\(5, 64\)"):
        net(torch.randn(5, 64))


# -- end to end ---------------------------------------------------------------------------------

@pytest.mark.parametrize("penalty, same_batch", [(0.0, True), (0.5, False)])
def test_search_on_digits_moves_theta(penalty, same_batch):
    data = load_dataset("digits")
    x, y = as_tensors(data.train)
    x, y = x[:64], y[:64]
    assert x.shape[1:] == (1, 8, 8)
    torch.manual_seed(0)
    net = DenseNetConnections.for_data((1, 8, 8), 10, growth=4, layers_per_block=2, stem_channels=8)
    guide = auto_guide(net, x[:2])
    search = ArchitectureSearch(
        net, guide,
        RankingNaturalGradientLoss(num_samples=2, same_batch=same_batch, penalty=penalty,
                                   costs=net.complexity_costs()),
        weight_optimizer=torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
        arch_optimizers=guide.make_optimizers(),
        generator=torch.Generator().manual_seed(0),
    )
    for i in range(4):
        metrics = search.step(x[16 * i : 16 * (i + 1)], y[16 * i : 16 * (i + 1)])
        assert torch.isfinite(metrics["loss"])
    theta = torch.cat([guide.theta(n).detach() for n in net.site_names()])
    assert theta.shape == (net.num_connections,) == (18,)
    assert (theta != 0.5).any()
    assert ((theta >= 1 / 18) & (theta <= 1 - 1 / 18)).all()
