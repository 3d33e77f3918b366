"""The VINNAS cell search space (vinnas2020 §IV-A, §V-A): ops, cells, layouts, weight modes, export."""

import json
import time

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO

from bayesnas.analysis.marginals import NormalStrengthMarginal
from bayesnas.guides import NormalGuide
from bayesnas.handlers import local_reparameterization
from bayesnas.models.vinnas_space import WEIGHT_PREFIX, VinnasSearchSpace, site_name
from bayesnas.nn.vinnas_cells import LAYOUTS, VinnasNetwork, cell_edges, parse_cells, resolve_layout
from bayesnas.nn.vinnas_ops import OPS, ZERO_INDEX, make_op
from bayesnas.sites import arch_plate, discover_sites

PAPER_OPS = (
    "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5",
    "conv_7x1_1x7", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "zero",
)


def _data(n=4, c=1, hw=16, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, hw, hw, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_ten_ops_with_the_papers_labels():
    assert OPS == PAPER_OPS and len(OPS) == 10 and OPS[ZERO_INDEX] == "zero"


@pytest.mark.parametrize("name", PAPER_OPS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("hw", [10, 7])
def test_every_op_keeps_channels_and_divides_the_resolution_by_its_stride(name, stride, hw):
    torch.manual_seed(0)
    op = make_op(name, 6, stride=stride, affine=False)
    out = op(torch.randn(3, 6, hw, hw))
    side = -(-hw // stride)  # odd sizes round up, as in DARTS (7 → 4)
    assert out.shape == (3, 6, side, side)
    assert torch.isfinite(out).all()
    if name == "zero":
        assert not out.any()
    if name == "skip_connect" and stride == 1:
        assert not list(op.parameters())


def test_search_batchnorm_has_no_affine_parameters_nor_running_statistics():
    op = make_op("sep_conv_3x3", 4, stride=1, affine=False)
    assert op.bn.weight is None and op.bn.running_mean is None
    fixed = make_op("sep_conv_3x3", 4, stride=1, affine=True)
    assert fixed.bn.weight is not None and fixed.bn.running_mean is not None


def test_op_errors_state_the_rule_and_the_value():
    with pytest.raises(ValueError, match=r"`stride` must be 1 or 2, but got stride=3"):
        make_op("sep_conv_3x3", 4, stride=3, affine=False)
    with pytest.raises(ValueError, match=r"Unknown operation 'conv_9x9'"):
        make_op("conv_9x9", 4, affine=False)
    with pytest.raises(ValueError, match=r"`c` must be an integer >= 1, but got c=0"):
        make_op("sep_conv_3x3", 0, affine=False)


def test_discover_sites_finds_one_alpha_site_per_cell_kind_with_k_10_and_edges():
    space = VinnasSearchSpace(layout="F", channels=4)
    specs = discover_sites(space, _data()[0])
    assert sorted(specs) == ["cell.normal.alpha", "cell.reduce.alpha"]
    spec = specs["cell.normal.alpha"]
    # I = 3 states: 2 + 3 + 4 = 9 edges (vinnas2020 §V-A: K^(Σ (2+i)) cells per kind).
    assert (spec.family, spec.shape, spec.num_categories, spec.choices) == ("normal", (9, 10), 10, PAPER_OPS)
    assert spec.edges[:3] == (("c_{k-2}", "n0"), ("c_{k-1}", "n0"), ("c_{k-2}", "n1"))
    assert spec.edges[-1] == ("n1", "n2") and len(spec.edges) == 9
    # Layout M has only a reduction cell: one site, 5 edges.
    m = discover_sites(VinnasSearchSpace(layout="M", channels=4), _data()[0])
    assert list(m) == ["cell.reduce.alpha"] and m["cell.reduce.alpha"].shape == (5, 10)


def _arch_guide(space, x, seed=0):
    weights = space.point_weights() if space.bayesian else None
    specs = discover_sites(space, x, weights=weights)
    return NormalGuide(specs, generator=torch.Generator().manual_seed(seed))


def test_forward_with_two_architectures_gives_logits_s_n_classes():
    torch.manual_seed(0)
    space = VinnasSearchSpace(layout="M", channels=4, num_classes=7)
    x, y = _data(classes=7)
    guide = _arch_guide(space, x)
    with poutine.trace() as tr, arch_plate(2):
        guide()
    with poutine.trace() as model_tr, poutine.replay(trace=tr.trace), arch_plate(2):
        out = space(x, y)
    assert out.shape == (2, 4, 7) and torch.isfinite(out).all()
    assert model_tr.trace.nodes["obs"]["fn"].batch_shape == (2,)


def test_per_architecture_inputs_and_for_data():
    torch.manual_seed(0)
    space = VinnasSearchSpace.for_data((1, 16, 16), 3, layout="M", channels=4)
    x = torch.randn(2, 3, 1, 16, 16)  # (S, n, C, H, W)
    alpha = {site_name("reduce"): torch.zeros(2, 5, 10)}
    with arch_plate(2):
        out = poutine.condition(space, data=alpha)(x)
    assert out.shape == (2, 3, 3)
    with pytest.raises(ValueError, match=r"takes images \(C, H, W\), but got input_shape=\(16, 16\)"):
        VinnasSearchSpace.for_data((16, 16), 3)


def test_f_layout_runs_on_28x28_digits_through_two_reductions():
    torch.manual_seed(0)
    space = VinnasSearchSpace(layout="F", channels=2)
    x, y = _data(n=2, hw=28)
    alpha = {name: torch.zeros(9, 10) for name in (site_name("normal"), site_name("reduce"))}
    out = poutine.condition(space, data=alpha)(x, y)  # 28 → 14 → 7 → 4
    assert out.shape == (1, 2, 10) and torch.isfinite(out).all()


def test_zero_op_strength_is_clipped_from_above():
    space = VinnasSearchSpace(layout="M", channels=4, zero_clip=0.5)
    alpha = torch.zeros(5, 10)
    alpha[:, ZERO_INDEX] = 100.0
    w = space.mixing_weights(alpha)
    expected = torch.softmax(torch.tensor([0.0] * 9 + [0.5]), -1)
    assert torch.allclose(w, expected.expand(5, 10))
    alpha[:, ZERO_INDEX] = -3.0  # below the bound: untouched
    assert torch.allclose(space.mixing_weights(alpha), torch.softmax(alpha, -1))


@pytest.mark.parametrize("bayesian", [False, True])
def test_elbo_is_finite_and_gradients_reach_both_guides(bayesian):
    torch.manual_seed(0)
    space = VinnasSearchSpace(layout="M", channels=4, bayesian=bayesian)
    x, y = _data()
    arch_guide = _arch_guide(space, x)
    weight_guide = space.weight_guide() if bayesian else None
    s = 2

    def model(x, y):
        w = space.sample_weights() if bayesian else None
        with arch_plate(s):
            space(x, y, weights=w)

    def guide(x, y):
        if weight_guide is not None:
            weight_guide()
        with arch_plate(s):
            arch_guide()

    pyro.set_rng_seed(0)
    with local_reparameterization():
        loss = TraceMeanField_ELBO().differentiable_loss(model, guide, x, y)
    assert torch.isfinite(loss)
    loss.backward()
    for p in arch_guide.arch_parameters():  # μ and log σ² of α
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    if bayesian:
        # One flat site over every weight of the supernetwork.
        assert weight_guide.site_names == [WEIGHT_PREFIX]
        assert weight_guide.locs[0].shape == (sum(p.numel() for p in space.net.parameters()),)
        for group in (weight_guide.locs, weight_guide.log_sigma2s):
            grads = [p.grad for p in group]
            assert all(g is not None and torch.isfinite(g).all() for g in grads)
            assert sum(float(g.abs().sum()) for g in grads) > 0
        # The deterministic parameters are not used in the Bayesian mode.
        assert all(p.grad is None for p in space.net.parameters())
    else:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in space.net.parameters())


def test_model_method_opens_its_own_arch_plate_outside_the_weights():
    torch.manual_seed(0)
    space = VinnasSearchSpace(layout="M", channels=4, bayesian=True)
    x, y = _data()
    arch_guide, weight_guide = _arch_guide(space, x), space.weight_guide()

    def guide(x, y):
        weight_guide()
        with arch_plate(1):
            arch_guide()

    pyro.set_rng_seed(0)
    with local_reparameterization():
        loss = TraceMeanField_ELBO().differentiable_loss(space.model, guide, x, y)
    assert torch.isfinite(loss)
    guide_trace = poutine.trace(guide).get_trace(x, y)
    with poutine.trace() as tr:
        poutine.replay(space.model, trace=guide_trace)(x, y)
    nodes = tr.trace.nodes
    assert nodes["cell.reduce.alpha"]["cond_indep_stack"][0].name == "arch"
    assert all(not nodes[n]["cond_indep_stack"] for n in weight_guide.site_names)
    with pytest.raises(ValueError, match=r"`num_arch` must be an integer >= 1, but got num_arch=0"):
        space.model(x, y, num_arch=0)


def test_bayesian_weights_go_through_the_local_reparameterization():
    """Two forwards with the same guide draw differ only by the LRT's output noise."""
    torch.manual_seed(0)
    space = VinnasSearchSpace(layout="M", channels=4, bayesian=True)
    x, _ = _data()
    wg = space.weight_guide(init_log_sigma2=-2.0)
    alpha = {site_name("reduce"): torch.zeros(5, 10)}
    with local_reparameterization():
        with poutine.trace() as tr:
            wg()
        run = poutine.condition(poutine.replay(space, trace=tr.trace), data=alpha)
        a, b = run(x), run(x)
    assert not torch.allclose(a, b)  # fresh noise per output element at the same weights
    # Without the handler the same draw gives the same output.
    plain = poutine.condition(poutine.replay(space, trace=tr.trace), data=alpha)
    assert torch.equal(plain(x), plain(x))


def test_bayesian_forward_inside_the_arch_plate_needs_the_weights():
    space = VinnasSearchSpace(layout="M", channels=4, bayesian=True)
    with pytest.raises(ValueError, match=r"sampled outside the arch plate"), arch_plate(1):
        space(_data()[0])


def test_genotype_keeps_two_non_zero_edges_per_state_and_runs_stand_alone():
    torch.manual_seed(0)
    space = VinnasSearchSpace(layout="F", channels=4, num_classes=5)
    x, _ = _data(classes=5)
    guide = _arch_guide(space, x)
    # Make zero the top op everywhere: it must still never be kept.
    with torch.no_grad():
        for name in guide.site_names:
            guide.loc(name)[:, ZERO_INDEX] = 50.0
    geno = space.genotype(guide)
    geno = json.loads(json.dumps(geno))  # round-trips through JSON
    assert sorted(geno) == ["normal", "reduce"]
    for states in geno.values():
        assert len(states) == 3
        for state in states:
            assert len(state["inputs"]) == 2 == len(set(state["inputs"])) and len(state["ops"]) == 2
            assert "zero" not in state["ops"]
    net = VinnasNetwork(genotype=geno, layout="F", in_channels=1, num_classes=5, channels=4)
    assert net.num_edges() == {"normal": 6, "reduce": 6}
    assert all(sum(1 for _ in cell.edges) == 6 for cell in net.cells)
    assert not any("pyro" in type(m).__module__ for m in net.modules())
    out = net(x)
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    assert all(m.affine for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # stand_alone reuses the space's options; the evaluation network of C-like scaling works too.
    assert space.stand_alone(geno)(x).shape == (4, 5)
    assert len(space.stand_alone(geno, cells="2NR2NR2N").cells) == 8


def test_genotype_picks_the_edges_and_ops_with_the_highest_snr():
    space = VinnasSearchSpace(layout="M", channels=4)
    mu = torch.zeros(5, 10)
    sigma = torch.ones(5, 10)
    # node 1 reads edges 2 (c_{k-2}), 3 (c_{k-1}), 4 (n0): make n0 and c_{k-2} win.
    mu[4, OPS.index("dil_conv_5x5")] = 3.0
    mu[2, OPS.index("avg_pool_3x3")] = 2.0
    mu[3, OPS.index("sep_conv_7x7")] = 1.0
    mu[0, OPS.index("skip_connect")] = 1.0
    mu[1, OPS.index("conv_7x1_1x7")] = 1.0
    marginal = NormalStrengthMarginal(site_name("reduce"), mu, sigma, num_samples=10)
    geno = space.genotype({site_name("reduce"): marginal})
    assert geno == {"reduce": [
        {"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["skip_connect", "conv_7x1_1x7"]},
        {"inputs": ["c_{k-2}", "n0"], "ops": ["avg_pool_3x3", "dil_conv_5x5"]},
    ]}
    # The same from raw scores, and a small σ can outrank a large μ under the SNR.
    sigma[3, OPS.index("sep_conv_7x7")] = 0.1  # SNR 100
    assert space.genotype({site_name("reduce"): mu / sigma**2})["reduce"][1]["inputs"] == ["c_{k-1}", "n0"]
    with pytest.raises(ValueError, match=r"`criterion` must be one of .*, but got criterion='abs'"):
        space.genotype({site_name("reduce"): mu}, criterion="abs")
    with pytest.raises(KeyError, match="no scores for the α site 'cell.reduce.alpha'"):
        space.genotype({})


@pytest.mark.parametrize(("layout", "sequence", "states"), [
    ("M", ("reduce",), 2),
    ("F", ("normal", "normal", "reduce", "normal", "normal", "reduce", "normal", "normal"), 3),
    ("C", ("normal", "normal", "reduce", "normal", "normal", "reduce", "normal", "normal"), 4),
])
def test_layouts_build_with_the_papers_cell_sequences(layout, sequence, states):
    space = VinnasSearchSpace(layout=layout, channels=4)
    assert space.kinds == sequence and space.num_states == states
    assert space.net.kinds == sequence and len(space.net.cells) == len(sequence)
    assert space.num_edges == len(cell_edges(states)) == sum(2 + i for i in range(states))
    x, _ = _data(n=2)
    specs = discover_sites(space, x)
    alpha = {name: torch.zeros(spec.shape) for name, spec in specs.items()}
    out = poutine.condition(space, data=alpha)(x)
    assert out.shape == (1, 2, 10)


def test_cell_and_state_options_override_the_layout():
    assert resolve_layout("C", cells="6NR6NR6N") == ((("normal",) * 6 + ("reduce",)) * 2 + ("normal",) * 6, 4)
    assert len(parse_cells("6NR6NR6N")) == 20
    space = VinnasSearchSpace(layout="M", cells="NR", num_states=3, channels=4)
    assert space.kinds == ("normal", "reduce") and space.num_states == 3 and space.num_edges == 9
    assert set(LAYOUTS) == {"M", "F", "C"}


def test_bad_layouts_and_options_state_the_rule_and_the_value():
    with pytest.raises(ValueError, match=r"`layout` must be one of \['C', 'F', 'M'\].*but got layout='X'"):
        VinnasSearchSpace(layout="X")
    with pytest.raises(ValueError, match=r"`cells` must be a sequence of 'N'.*but got cells='NXR'"):
        VinnasSearchSpace(cells="NXR")
    with pytest.raises(ValueError, match=r"Repeat counts .* must be >= 1, but got '0'"):
        parse_cells("0NR")
    with pytest.raises(ValueError, match=r"`num_states` must be an integer >= 1, but got num_states=0"):
        VinnasSearchSpace(num_states=0)
    with pytest.raises(ValueError, match=r"`channels` must be an integer >= 2, but got channels=1"):
        VinnasSearchSpace(channels=1)
    with pytest.raises(ValueError, match=r"`zero_clip` must be a number, but got zero_clip='x'"):
        VinnasSearchSpace(zero_clip="x")
    with pytest.raises(ValueError, match=r"maps exactly \['reduce'\] to lists of states, but got \['normal"):
        VinnasNetwork(genotype={"normal": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["zero", "zero"]}]},
                      layout="M")
    bad = {"reduce": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["zero", "skip_connect"]},
                      {"inputs": ["c_{k-2}", "n0"], "ops": ["skip_connect", "skip_connect"]}]}
    with pytest.raises(ValueError, match=r"State n0 of the reduce cell applies two of .*ops=\['zero'"):
        VinnasNetwork(genotype=bad, layout="M")
    bad["reduce"][0]["ops"] = ["skip_connect", "skip_connect"]
    bad["reduce"][1]["inputs"] = ["n0", "n0"]
    with pytest.raises(ValueError, match=r"State n1 .* two different edges .*but got inputs=\['n0', 'n0'\]"):
        VinnasNetwork(genotype=bad, layout="M")


def test_m_layout_forward_and_backward_of_a_mnist_batch_is_fast_on_cpu():
    torch.manual_seed(0)
    space = VinnasSearchSpace(layout="M", channels=8)
    x, y = _data(n=32, hw=28)
    alpha = {site_name("reduce"): torch.zeros(1, 5, 10, requires_grad=True)}

    def step():
        with arch_plate(1):
            out = poutine.condition(space, data=alpha)(x, y)
        torch.nn.functional.cross_entropy(out[0], y).backward()

    step()  # warm-up
    start = time.perf_counter()
    step()
    assert time.perf_counter() - start < 1.0
