"""A shared suite every natural-gradient optimizer passes (Bernoulli and categorical θ)."""

import copy
import io
import math
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.distributions as pdist
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesnas.optim import BernoulliNaturalGradient, CategoricalNaturalGradient


@dataclass(frozen=True)
class Family:
    name: str
    cls: type
    shapes: tuple  # θ shapes of one param group
    free: int  # Σ(K − 1) over the group
    options: tuple  # keywords that keep a one-param group non-degenerate (the whole problem's size)

    def init(self, dtype=torch.float64, device="cpu") -> list[torch.nn.Parameter]:
        """Interior θ that differ between entries."""
        out = []
        for i, shape in enumerate(self.shapes):
            n = math.prod(shape)
            x = torch.linspace(0.2, 0.7, n, dtype=torch.float64).roll(i).reshape(shape)
            if self.name == "categorical":
                x = x / x.sum(-1, keepdim=True)
            out.append(torch.nn.Parameter(x.to(dtype=dtype, device=device)))
        return out

    def in_domain(self, theta: torch.Tensor, group: dict[str, Any]) -> bool:
        tol = 1e-7
        if self.name == "bernoulli":
            low = 1 / self.free
            return bool(((theta >= low - tol) & (theta <= 1 - low + tol)).all())
        k = theta.shape[-1]
        theta_min = 1 / (sum(math.prod(s[:-1]) for s in self.shapes) * (k - 1))
        sums_ok = float((theta.double().sum(-1) - 1).abs().max()) <= 1e-6
        return sums_ok and float(theta.min()) >= theta_min - tol


BERNOULLI = Family("bernoulli", BernoulliNaturalGradient, ((5,), (2, 1)), 7, (("dim", 7),))
CATEGORICAL = Family(
    "categorical", CategoricalNaturalGradient, ((1, 3), (2, 4)), 2 + 6, (("num_variables", 3),)
)
FAMILIES = [BERNOULLI, CATEGORICAL]
family = pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# -- θ stays in its clipped domain, whatever the gradient and step size ------------------------

grad_values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1e6, -1e6, 1e-30])
)


def _bernoulli_start(n: int):
    return st.lists(st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0])), min_size=n,
                    max_size=n)


def _simplex_row(k: int):
    weights = st.lists(st.one_of(st.floats(0, 1), st.just(0.0)), min_size=k, max_size=k)
    return weights.filter(lambda w: sum(w) > 1e-3).map(lambda w: [x / sum(w) for x in w])


@settings(max_examples=60, deadline=None)
@given(
    start=_bernoulli_start(7),
    grads=st.lists(st.lists(grad_values, min_size=7, max_size=7), min_size=3, max_size=3),
    lr=st.floats(1e-6, 1e3),
    adaptive=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_bernoulli_theta_stays_within_one_over_d(start, grads, lr, adaptive, dtype):
    a = torch.nn.Parameter(torch.tensor(start[:5], dtype=dtype))
    b = torch.nn.Parameter(torch.tensor(start[5:], dtype=dtype).reshape(2, 1))
    opt = BernoulliNaturalGradient([a, b], lr=lr, adaptive=adaptive)
    for g in grads:
        a.grad = torch.tensor(g[:5], dtype=dtype)
        b.grad = torch.tensor(g[5:], dtype=dtype).reshape(2, 1)
        opt.step()
        for p in (a, b):
            assert p.dtype == dtype
            assert BERNOULLI.in_domain(p.detach(), opt.param_groups[0]), p
        _assert_finite_state(opt)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.tuples(_simplex_row(3), _simplex_row(4), _simplex_row(4)),
    grads=st.lists(st.lists(grad_values, min_size=11, max_size=11), min_size=3, max_size=3),
    lr=st.floats(1e-6, 1e3),
    adaptive=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_categorical_theta_stays_on_the_clipped_simplex(rows, grads, lr, adaptive, dtype):
    a = torch.nn.Parameter(torch.tensor([rows[0]], dtype=dtype))
    b = torch.nn.Parameter(torch.tensor(rows[1:], dtype=dtype))
    opt = CategoricalNaturalGradient([a, b], lr=lr, adaptive=adaptive)
    for g in grads:
        a.grad = torch.tensor([g[:3]], dtype=dtype)
        b.grad = torch.tensor([g[3:7], g[7:]], dtype=dtype)
        opt.step()
        for p in (a, b):
            assert p.dtype == dtype
            assert CATEGORICAL.in_domain(p.detach(), opt.param_groups[0]), p
        _assert_finite_state(opt)


def _assert_finite_state(opt) -> None:
    group = opt.param_groups[0]
    assert math.isfinite(group["lr"]) and group["lr"] >= 0
    assert math.isfinite(group["gamma"])
    for p in group["params"]:
        assert torch.isfinite(p).all()
        if "s" in opt.state[p]:
            assert torch.isfinite(opt.state[p]["s"]).all()


@family
def test_zero_gradient_and_boundary_theta_give_no_nan(fam):
    if fam.name == "bernoulli":
        theta = torch.nn.Parameter(torch.tensor([0.0, 1.0, 0.5, 1.0], dtype=torch.float64))
    else:
        theta = torch.nn.Parameter(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).double())
    opt = fam.cls([theta], adaptive=True)
    for _ in range(4):
        theta.grad = torch.zeros_like(theta)
        opt.step()
        _assert_finite_state(opt)
    assert opt.param_groups[0]["lr"] < opt.param_groups[0]["lr_max"]  # no signal: η shrinks


# -- the step is the papers' update -----------------------------------------------------------


def test_bernoulli_step_is_saito2018_eq7():
    g = torch.Generator().manual_seed(0)
    d, lam, eps, lr = 9, 2, 0.05, 0.2
    theta = torch.nn.Parameter(torch.rand(d, generator=g, dtype=torch.float64) * 0.6 + 0.2)
    before = theta.detach().clone()
    m = torch.randint(0, 2, (lam, d), generator=g).double()
    u = torch.tensor([1.0, -1.0], dtype=torch.float64)
    c = torch.rand(d, generator=g, dtype=torch.float64)
    opt = BernoulliNaturalGradient([theta], lr=lr)
    log_p = pdist.Bernoulli(probs=theta).log_prob(m)
    (-(u[:, None] * log_p).sum() / lam + eps * (c * theta).sum()).backward()
    opt.step()
    step = (u[:, None] * (m - before)).sum(0) / lam - eps * c * before * (1 - before)
    expected = (before + lr * step).clamp(1 / d, 1 - 1 / d)
    torch.testing.assert_close(theta.detach(), expected)


def test_categorical_step_is_pdas2019_eq4_then_app_b():
    g = torch.Generator().manual_seed(1)
    lam, lr = 4, 0.3
    theta = torch.nn.Parameter(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]).double())
    before = theta.detach().clone()
    h = torch.randint(0, 3, (lam, 2), generator=g)
    u = torch.tensor([1.0, 0.0, 0.0, -1.0], dtype=torch.float64)
    opt = CategoricalNaturalGradient([theta], lr=lr, num_variables=4)
    (-(u[:, None] * pdist.Categorical(probs=theta).log_prob(h)).sum() / lam).backward()
    opt.step()
    onehot = torch.nn.functional.one_hot(h, 3).double()
    t = before + lr * (u[:, None, None] * (onehot - before)).sum(0) / lam  # eq. (4)
    tmin = 1 / (4 * 2)
    t = t.clamp(min=tmin)  # app. B eq. (11)
    t = t + (1 - t.sum(-1, keepdim=True)) / (t - tmin).sum(-1, keepdim=True) * (t - tmin)  # (12)
    torch.testing.assert_close(theta.detach(), t)


def test_default_step_sizes():
    assert BernoulliNaturalGradient([torch.full((31,), 0.5)]).param_groups[0]["lr"] == 1 / 31
    assert BernoulliNaturalGradient([torch.full((3,), 0.5)], dim=10).param_groups[0]["lr"] == 0.1
    opt = CategoricalNaturalGradient([torch.full((4, 5), 0.2), torch.full((2, 3), 1 / 3)])
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / (4 * 4 + 2 * 2))  # 1/Σ(K−1)
    ad = CategoricalNaturalGradient([torch.full((4, 5), 0.2)], adaptive=True)
    assert ad.param_groups[0]["lr"] == ad.param_groups[0]["lr_max"] == pytest.approx(16**-0.5)
    assert ad.param_groups[0]["lr_min"] == 0.0 and ad.param_groups[0]["alpha"] == 1.5


def test_bernoulli_dim_and_theta_min_set_the_clipping_range():
    theta = torch.nn.Parameter(torch.full((3,), 0.5))
    opt = BernoulliNaturalGradient([theta], lr=1.0, dim=10)
    theta.grad = torch.tensor([1e3, -1e3, 0.0])
    opt.step()
    torch.testing.assert_close(theta.detach(), torch.tensor([0.1, 0.9, 0.5]))
    one = torch.nn.Parameter(torch.full((1,), 0.5))
    opt = BernoulliNaturalGradient([one], theta_min=0.05)
    one.grad = torch.full((1,), 1e3)
    opt.step()
    assert float(one.detach()) == pytest.approx(0.05)


# -- the torch.optim contract -------------------------------------------------------------------


@family
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("adaptive", [False, True])
def test_keeps_dtype_and_device(fam, dtype, device, adaptive):
    params = fam.init(dtype, device)
    opt = fam.cls(params, adaptive=adaptive)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    for p in params:
        assert p.dtype == dtype and p.device.type == device
        assert fam.in_domain(p.detach(), opt.param_groups[0])
        if adaptive:
            s = opt.state[p]["s"]
            assert s.dtype == dtype and s.device.type == device


@family
def test_lazy_state_skips_params_without_grad_and_runs_the_closure(fam):
    params = fam.init()
    opt = fam.cls(params, adaptive=True)
    assert len(opt.state) == 0
    before = params[1].detach().clone()

    def closure():
        opt.zero_grad()
        loss = (params[0] ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss) and params[1].grad is None
    assert opt.state[params[0]]["step"] == 1 and params[1] not in opt.state
    assert torch.equal(params[1].detach(), before)
    assert opt.param_groups[0]["lr"] <= opt.param_groups[0]["lr_max"]
    lr = opt.param_groups[0]["lr"]
    opt.zero_grad()
    opt.step()  # no gradient at all: nothing moves, η is not updated
    assert opt.param_groups[0]["lr"] == lr and opt.state[params[0]]["step"] == 1


@family
def test_param_groups_have_their_own_settings_and_step_size(fam):
    p1, p2 = fam.init()
    opt = fam.cls(
        [{"params": [p1], "adaptive": True}, {"params": [p2], "lr": 0.01}], **dict(fam.options)
    )
    g1, g2 = opt.param_groups
    free1 = 7 if fam.name == "bernoulli" else 2  # Bernoulli: d = dim; categorical: Σ(K − 1)
    assert g1["lr"] == g1["lr_max"] == pytest.approx(free1**-0.5)
    assert g2["lr"] == 0.01 and not g2["adaptive"]
    for p in (p1, p2):
        p.grad = torch.randn_like(p)
    opt.step()
    assert "s" in opt.state[p1] and "s" not in opt.state[p2]
    assert g2["lr"] == 0.01


@family
@pytest.mark.parametrize("adaptive", [False, True])
def test_state_dict_round_trip_continues_identically(fam, adaptive):
    g = torch.Generator().manual_seed(3)
    grads = [[torch.randn(s, generator=g, dtype=torch.float64) for s in fam.shapes]
             for _ in range(8)]
    a = fam.init()
    opt_a = fam.cls(a, adaptive=adaptive)
    for gs in grads[:4]:
        for p, gr in zip(a, gs, strict=True):
            p.grad = gr.clone()
        opt_a.step()
    buf = io.BytesIO()
    torch.save({"opt": opt_a.state_dict(), "theta": [p.detach().clone() for p in a]}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b = [torch.nn.Parameter(t) for t in saved["theta"]]
    opt_b = fam.cls(b, adaptive=adaptive)
    opt_b.load_state_dict(saved["opt"])
    for gs in grads[4:]:
        for p, q, gr in zip(a, b, gs, strict=True):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt_a.step()
        opt_b.step()
    ga, gb = opt_a.param_groups[0], opt_b.param_groups[0]
    assert ga["lr"] == gb["lr"] and ga["gamma"] == gb["gamma"]
    if adaptive:
        assert ga["gamma"] > 0
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)
        assert opt_a.state[p]["step"] == opt_b.state[q]["step"] == 8
        if adaptive:
            assert torch.equal(opt_a.state[p]["s"], opt_b.state[q]["s"])


# -- eager validation: the rule and the offending value -----------------------------------------

B = [torch.full((4,), 0.5)]
C = [torch.full((3, 3), 1 / 3)]

BAD = [
    (BernoulliNaturalGradient, B, {"lr": -1.0}, r"`lr` must be positive, but got lr=-1.0\."),
    (CategoricalNaturalGradient, C, {"lr": 0.0}, r"`lr` must be positive, but got lr=0.0\."),
    (BernoulliNaturalGradient, B, {"lr": math.nan}, r"`lr` must be positive, but got lr=nan"),
    (BernoulliNaturalGradient, [torch.tensor([0.5, 1.5, 0.2])], {},
     r"θ must lie in \[0, 1\], but got values in \[0.2\d*, 1.5\]\."),
    (BernoulliNaturalGradient, [torch.tensor([0.5, -0.25, 0.2])], {},
     r"θ must lie in \[0, 1\], but got values in \[-0.25, 0.5\]\."),
    (BernoulliNaturalGradient, [torch.tensor([0.5, math.nan, 0.2])], {}, r"θ must lie in \[0, 1\]"),
    (CategoricalNaturalGradient, [torch.tensor([[0.5, 0.6], [0.5, 0.5], [0.5, 0.5]])], {},
     r"simplex .*row sums in \[1.0, 1.1\d*\]"),
    (CategoricalNaturalGradient, [torch.tensor([[1.5, -0.5], [0.5, 0.5], [0.5, 0.5]])], {},
     r"simplex .*min entry -0.5\."),
    (CategoricalNaturalGradient, [torch.ones(3, 1)], {},
     r"K >= 2 categories, but got shape \(3, 1\)"),
    (CategoricalNaturalGradient, [torch.tensor(1.0)], {}, r"K >= 2 categories, but got shape \(\)"),
    (BernoulliNaturalGradient, B, {"adaptive": True, "lr_max": 3},
     r"`lr_max` must be <= 2 .*but got lr_max=3\."),
    (CategoricalNaturalGradient, C, {"alpha": 0}, r"`alpha` must be positive, but got alpha=0\."),
    (BernoulliNaturalGradient, B, {"alpha": -1.5}, r"`alpha` must be positive, but got alpha=-1.5"),
    (BernoulliNaturalGradient, B, {"lr_min": -0.1}, r"`lr_min` must be >= 0, but got lr_min=-0.1"),
    (BernoulliNaturalGradient, B, {"lr_min": 0.6, "lr_max": 0.5},
     r"`lr_min <= lr_max` must hold, but got \(lr_min=0.6, lr_max=0.5\)\."),
    (CategoricalNaturalGradient, C, {"num_samples": 1},
     r"`num_samples` must be an integer >= 2, but got num_samples=1\."),
    (BernoulliNaturalGradient, B, {"dim": 0}, r"`dim` must be an integer >= 1, but got dim=0\."),
    (CategoricalNaturalGradient, C, {"num_variables": 0},
     r"`num_variables` must be an integer >= 1, but got num_variables=0\."),
    (BernoulliNaturalGradient, B, {"theta_min": 0.5},
     r"`theta_min` must lie in \(0, 0.5\), but got theta_min=0.5\."),
    (CategoricalNaturalGradient, C, {"theta_min": 0.4},
     r"`theta_min` must lie in \(0, 1/K\) .*K=3, but got theta_min=0.4\."),
    (BernoulliNaturalGradient, [torch.full((2,), 0.5)], {},
     r"d >= 3 θ entries.*got d=2; pass theta_min"),
    (CategoricalNaturalGradient, [torch.full((1, 3), 1 / 3)], {},
     r"K·θmin < 1.*got D=1, K=3; pass theta_min"),
    (CategoricalNaturalGradient, [torch.full((2, 2), 0.5)], {}, r"K·θmin < 1.*got D=2, K=2"),
    (BernoulliNaturalGradient, [torch.ones(4, dtype=torch.long)], {},
     r"floating-point tensor, but got dtype=torch.int64"),
]


@pytest.mark.parametrize(("cls", "params", "kwargs", "match"), BAD)
def test_bad_inputs_state_the_rule_and_the_value(cls, params, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(params, **kwargs)


@family
def test_a_bad_param_group_is_rejected_and_not_added(fam):
    p1, p2 = fam.init()
    opt = fam.cls([p1], **dict(fam.options))
    with pytest.raises(ValueError, match=r"`lr` must be positive, but got lr=-2"):
        opt.add_param_group({"params": [p2], "lr": -2})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [p2]})  # defaults resolved per group
    free2 = 7 if fam.name == "bernoulli" else 2 * 3
    assert opt.param_groups[1]["lr"] == pytest.approx(1 / free2)


def test_small_problems_work_with_an_explicit_theta_min():
    theta = torch.nn.Parameter(torch.full((1, 3), 1 / 3))
    opt = CategoricalNaturalGradient([theta], theta_min=0.1, adaptive=True)
    theta.grad = torch.tensor([[-1e3, 0.0, 0.0]])
    opt.step()
    torch.testing.assert_close(theta.detach(), torch.tensor([[0.8, 0.1, 0.1]]))


# -- pyro.optim ------------------------------------------------------------------------------------


def test_pyro_optim_can_wrap_it():
    from pyro.optim import PyroOptim

    theta = torch.nn.Parameter(torch.full((10,), 0.5))
    wrapped = PyroOptim(BernoulliNaturalGradient, {"lr": 0.1, "dim": 10})
    theta.grad = -torch.ones(10) / 0.25  # pushes every θ up
    wrapped([theta])
    torch.testing.assert_close(theta.detach(), torch.full((10,), 0.6))


def test_pyro_optim_state_round_trip_with_the_param_store():
    from pyro.optim import PyroOptim

    pyro.clear_param_store()
    try:
        pyro.param("arch.theta", torch.full((2, 3), 1 / 3))  # θ as an (unconstrained) Pyro param
        theta = pyro.param("arch.theta").unconstrained()
        args = {"num_variables": 2, "adaptive": True}
        wrapped = PyroOptim(CategoricalNaturalGradient, args)
        theta.grad = torch.tensor([[-1.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
        wrapped([theta])
        state = copy.deepcopy(wrapped.get_state())  # as saved to disk (state_dict holds refs)
        assert set(state) == {"arch.theta"}
        other = PyroOptim(CategoricalNaturalGradient, args)
        other.set_state(state)
        twin = torch.nn.Parameter(theta.detach().clone())
        pyro.get_param_store()._param_to_name[twin] = "arch.theta"  # a resumed run's param
        twin.grad = theta.grad.clone()
        wrapped([theta])
        other([twin])
        assert torch.equal(theta, twin)
        o1, o2 = wrapped.optim_objs[theta], other.optim_objs[twin]
        assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"]
        assert torch.equal(o1.state[theta]["s"], o2.state[twin]["s"])
    finally:
        pyro.clear_param_store()
