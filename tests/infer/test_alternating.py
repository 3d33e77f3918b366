"""pdas2019 alg. 1: W on D_W, then θ on D_θ with the updated W, without touching W or BN."""

import copy

import pytest
import torch

from bayesnas.guides import auto_guide
from bayesnas.infer import (
    AlternatingArchitectureSearch,
    ArchitectureSearch,
    ExpectedLoss,
    RankingNaturalGradientLoss,
    frozen_batchnorm_statistics,
)
from bayesnas.methods import run
from bayesnas.models import get_space


def _setup(seed=0, lr_theta=0.05):
    torch.manual_seed(seed)
    model = get_space("enas-cells").build((3, 8, 8), 4, channels=4, normal_cells=1)
    g = torch.Generator().manual_seed(seed)
    data = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 4, (8,), generator=g)) for _ in range(2)]
    guide = auto_guide(model, data[0][0][:1])
    weights = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    return model, guide, weights, data, guide.make_optimizers(lr=lr_theta)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_the_theta_step_changes_neither_weights_nor_batchnorm_statistics():
    model, guide, weights, (w_batch, t_batch), arch_opts = _setup()
    search = AlternatingArchitectureSearch(model, guide, RankingNaturalGradientLoss(num_samples=2),
                                           weight_optimizer=weights, arch_optimizers=arch_opts,
                                           generator=torch.Generator().manual_seed(1))
    after_weight_step = {}
    original = weights.step

    def step_and_snapshot(*args, **kwargs):
        out = original(*args, **kwargs)
        after_weight_step.update(_state(model))
        return out

    weights.step = step_and_snapshot
    before = _state(model)
    theta_before = [t.detach().clone() for t in guide.parameters()]
    out = search.step(w_batch, t_batch)
    assert any(not torch.equal(before[k], v) for k, v in after_weight_step.items())  # W and BN moved
    for k, v in model.state_dict().items():  # ... and the θ step changed none of them
        assert torch.equal(v, after_weight_step[k]), k
    assert any(not torch.equal(a, b.detach()) for a, b in zip(theta_before, guide.parameters(), strict=True))
    assert out["theta_losses"].shape == (2,) and not out["theta_losses"].requires_grad


def test_the_weight_step_is_the_expected_loss_step_on_the_weight_batch():
    a_model, a_guide, a_weights, (w_batch, t_batch), _ = _setup()
    b_model, b_guide, b_weights = copy.deepcopy(a_model), copy.deepcopy(a_guide), None
    b_weights = torch.optim.SGD(b_model.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    AlternatingArchitectureSearch(a_model, a_guide, RankingNaturalGradientLoss(num_samples=2),
                                  weight_optimizer=a_weights, generator=torch.Generator().manual_seed(3),
                                  clip_norm=None).step(w_batch, t_batch)
    ArchitectureSearch(b_model, b_guide, ExpectedLoss(num_samples=2), weight_optimizer=b_weights,
                       generator=torch.Generator().manual_seed(3)).step(*w_batch)
    for (k, a), b in zip(a_model.state_dict().items(), b_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_the_theta_step_is_pdas2019_eq4_on_the_theta_batch_losses():
    model, guide, weights, (w_batch, t_batch), arch_opts = _setup(lr_theta=0.05)
    search = AlternatingArchitectureSearch(model, guide, RankingNaturalGradientLoss(num_samples=2),
                                           weight_optimizer=weights, arch_optimizers=arch_opts,
                                           generator=torch.Generator().manual_seed(5))
    before = {n: guide.theta(n).detach().clone() for n in guide.specs}
    out = search.step(w_batch, t_batch)
    u = out["utility"]
    assert sorted(u.tolist()) == [-1.0, 1.0]  # the better of two ranks +1 (distinct losses)
    assert u[int(out["theta_losses"].argmin())] == 1.0
    for name, theta0 in before.items():  # θ + η (1/λ) Σ u_i (onehot(M_i) − θ), inside the clip range
        onehot = torch.nn.functional.one_hot(out["samples"][name], theta0.shape[-1]).to(theta0.dtype)
        expected = theta0 + 0.05 * (u.view(-1, *[1] * theta0.dim()) * (onehot - theta0)).mean(0)
        torch.testing.assert_close(guide.theta(name).detach(), expected, rtol=1e-5, atol=1e-6)


def test_frozen_batchnorm_statistics_restores_running_stats():
    bn = torch.nn.BatchNorm2d(3)
    saved = {k: v.clone() for k, v in bn.state_dict().items()}
    with frozen_batchnorm_statistics(bn):
        bn(torch.randn(4, 3, 2, 2))
        assert not torch.equal(bn.running_mean, saved["running_mean"])
    for k, v in bn.state_dict().items():
        assert torch.equal(v, saved[k])


def test_the_alternating_search_ranks_on_one_shared_batch():
    model, guide, weights, _, _ = _setup()
    with pytest.raises(ValueError, match="same_batch=True"):
        AlternatingArchitectureSearch(model, guide,
                                      RankingNaturalGradientLoss(num_samples=2, same_batch=False),
                                      weight_optimizer=weights, generator=torch.Generator())


def test_recalibrated_batchnorm_holds_the_statistics_of_the_path_then_restores_them():
    from bayesnas.infer import recalibrated_batchnorm
    from bayesnas.sites import arch_plate

    model, guide, _, (w_batch, t_batch), _ = _setup()
    with torch.no_grad(), arch_plate(2):  # statistics of sampled paths
        model(w_batch[0])
    before = _state(model)
    arch = guide.mode()
    x = t_batch[0]
    stem = model.net.stem[0](x)  # the stem is on every path: its BatchNorm sees exactly this
    with recalibrated_batchnorm(model, arch, [x]):
        bn = model.net.stem[1]
        torch.testing.assert_close(bn.running_mean, stem.mean((0, 2, 3)))
        torch.testing.assert_close(bn.running_var, stem.var((0, 2, 3)))  # unbiased, as BatchNorm keeps
        assert int(bn.num_batches_tracked) == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_cutout_reaches_the_weight_batches_only(tmp_path, monkeypatch):
    from bayesnas.methods.search import SearchConfig

    seen = {"weight": [], "theta": []}
    original = AlternatingArchitectureSearch.step

    def spy(self, weight_batch, theta_batch):
        seen["weight"].append(weight_batch[0].clone())
        seen["theta"].append(theta_batch[0].clone())
        return original(self, weight_batch, theta_batch)

    monkeypatch.setattr(AlternatingArchitectureSearch, "step", spy)
    run(SearchConfig(space="enas-cells", dataset="digits", epochs=1, batch_size=64, alternate=True,
                            cutout=4, stochastic_samples=2, space_options={"channels": 4, "normal_cells": 1}),
               out=tmp_path, progress=False)
    holes = [int((x == 0).all(1).flatten(1).sum(1).min()) for x in seen["weight"]]
    assert min(holes) >= 4  # at least a 2 × 2 corner of each 4 × 4 square, in every image
    assert all(int((x == 0).sum()) == 0 for x in seen["theta"])  # standardised digits: no exact zeros


# 20-35 s: kept out of the default suite (10 min on 2 cores), run by `make test-slow`.
@pytest.mark.slow
def test_a_fixed_network_is_evaluated_with_its_own_statistics(tmp_path):
    """No recalibration for a fixed network: its most likely and averaged predictions agree."""
    from bayesnas.methods.search import SearchConfig

    res = run(SearchConfig(space="enas-cells", dataset="digits", epochs=1, batch_size=64,
                                  method="fixed", num_samples=1, stochastic_samples=2,
                                  space_options={"channels": 4, "normal_cells": 1}),
                     out=tmp_path, progress=False)
    assert res["test_most_likely"] == res["test_model_average"]
