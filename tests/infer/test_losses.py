"""The key identity: autograd of the surrogate × inverse Fisher = the papers' closed forms."""

import pytest
import torch

from bayesnas.guides import BernoulliGuide, CategoricalGuide, GuideList, auto_guide
from bayesnas.handlers import seeded_arch
from bayesnas.infer import ExpectedLoss, RankingNaturalGradientLoss
from bayesnas.sites import discover_sites
from tests.toy_models import HammingToy, MixedToy


def _run(loss, model, guide, seed=0):
    for p in guide.parameters():
        p.grad = None
    with seeded_arch(generator=torch.Generator().manual_seed(seed)):
        return loss.loss_and_grads(model, guide)


@pytest.mark.parametrize("lam", [2, 4, 7])
@pytest.mark.parametrize("eps0", [0.0, 0.25, -0.125])
def test_bernoulli_natural_gradient_matches_saito2018_eq7(lam, eps0):
    torch.manual_seed(lam)
    model = HammingToy(torch.randint(0, 2, (10,)))
    guide = BernoulliGuide(discover_sites(model), init={"bits": torch.rand(10) * 0.8 + 0.1})
    c = torch.rand(10) + 0.5
    loss = RankingNaturalGradientLoss(num_samples=lam, penalty=eps0, costs={"bits": c})
    out = _run(loss, model, guide, seed=lam)
    theta = guide.theta("bits").detach()
    M, u = out["samples"]["bits"], out["utility"]
    natural = theta * (1 - theta) * guide.theta("bits").grad
    eps = eps0 / c.max()
    closed = -(u[:, None] * (M - theta)).mean(0) + eps * c * theta * (1 - theta)
    torch.testing.assert_close(natural, closed, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lam", [2, 5])
def test_categorical_natural_gradient_matches_pdas2019_eq4(lam):
    model = MixedToy()
    specs = discover_sites(model)
    guide = auto_guide(sites=specs)
    assert isinstance(guide, GuideList)
    cat = next(g for g in guide.guides if isinstance(g, CategoricalGuide))
    with torch.no_grad():
        cat.theta("cell.n0.op").copy_(torch.tensor([0.2, 0.5, 0.3]))
    out = _run(RankingNaturalGradientLoss(num_samples=lam), model, guide, seed=3)
    theta = cat.theta("cell.n0.op").detach()
    g = cat.theta("cell.n0.op").grad
    natural = theta * g - theta * (theta * g).sum(-1, keepdim=True)
    onehot = torch.nn.functional.one_hot(out["samples"]["cell.n0.op"], 3).to(theta)
    closed = -(out["utility"][:, None] * (onehot - theta)).mean(0)
    torch.testing.assert_close(natural, closed, rtol=1e-5, atol=1e-6)


def test_losses_are_per_architecture_and_on_one_shared_batch():
    model = MixedToy()
    guide = auto_guide(model)
    out = _run(RankingNaturalGradientLoss(num_samples=6), model, guide, seed=1)
    b, op = out["samples"]["block.skip"].long(), out["samples"]["cell.n0.op"]
    torch.testing.assert_close(out["losses"], model.table[b[:, 0], b[:, 1], op])


def test_seeded_generator_repeats_the_samples():
    model = MixedToy()
    guide = auto_guide(model)
    a = _run(RankingNaturalGradientLoss(num_samples=8), model, guide, seed=5)["samples"]
    b = _run(RankingNaturalGradientLoss(num_samples=8), model, guide, seed=5)["samples"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_loss_inputs_state_the_rule_and_the_value():
    with pytest.raises(ValueError, match=r"integer >= 2, but got num_samples=1"):
        RankingNaturalGradientLoss(num_samples=1)
    with pytest.raises(ValueError, match=r"ε₀=0.1 needs complexity costs"):
        RankingNaturalGradientLoss(penalty=0.1)
    with pytest.raises(ValueError, match=r"max\(c\) must be positive"):
        RankingNaturalGradientLoss(penalty=0.1, costs={"bits": torch.zeros(10)})
    model = HammingToy(torch.zeros(10))
    guide = auto_guide(model)
    with pytest.raises(KeyError, match=r"unknown arch sites \['bitz'\]"):
        _run(RankingNaturalGradientLoss(penalty=0.1, costs={"bitz": torch.ones(10)}), model, guide)
    with pytest.raises(ValueError, match=r"must have shape \(10,\).*got \(3,\)"):
        _run(RankingNaturalGradientLoss(penalty=0.1, costs={"bits": torch.ones(3)}), model, guide)
    with pytest.raises(ValueError, match=r"multiple of λ, but got N=5, λ=2"):
        ExpectedLoss(num_samples=2, same_batch=False).evaluate(
            lambda x: None, guide, torch.zeros(5, 3)
        )


def test_model_without_observed_site_is_refused():
    from bayesnas import sites

    def model():
        sites.bernoulli("b", 2)

    guide = auto_guide(model)
    with pytest.raises(ValueError, match="no observed site"):
        _run(RankingNaturalGradientLoss(), model, guide)
