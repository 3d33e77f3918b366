import math

import pytest
import torch

from bayesnas.guides import BernoulliGuide, CategoricalGuide, FixedGuide, auto_guide
from bayesnas.sites import SiteSpec, discover_sites
from tests.toy_models import MixedToy


def test_default_init_is_half_and_one_over_k():
    g = auto_guide(MixedToy())
    s = g.summary()
    assert s["block.skip"]["theta"] == [0.5, 0.5]
    assert s["cell.n0.op"]["theta"] == pytest.approx([1 / 3] * 3)
    # Entropy of the uniform distribution: 2 log 2 + log 3.
    assert float(g.entropy()) == pytest.approx(2 * math.log(2) + math.log(3))


def test_mode_is_the_most_likely_architecture():
    b = BernoulliGuide([SiteSpec("b", "bernoulli", (4,))], init={"b": [0.2, 0.5, 0.7, 0.49]})
    assert b.mode()["b"].tolist() == [0.0, 1.0, 1.0, 0.0]
    c = CategoricalGuide([SiteSpec("c", "categorical", (2,), 3)],
                         init={"c": [[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]})
    assert c.mode()["c"].tolist() == [1, 0]


def test_bad_guide_inputs():
    with pytest.raises(ValueError, match=r"`init` must lie in \[0.0, 1.0\], but got init=1.5"):
        BernoulliGuide([SiteSpec("b", "bernoulli", (2,))], init=1.5)
    with pytest.raises(ValueError, match="rows summing to 1"):
        CategoricalGuide([SiteSpec("c", "categorical", (), 2)], init={"c": [0.7, 0.7]})
    with pytest.raises(ValueError, match=r"takes bernoulli sites only, but got \['c'\]"):
        BernoulliGuide([SiteSpec("c", "categorical", (), 2)])
    with pytest.raises(KeyError, match="Unknown arch site 'x'"):
        BernoulliGuide([SiteSpec("b", "bernoulli")]).theta("x")


def test_fixed_guide_proposes_its_architecture():
    from bayesnas.sites import arch_plate

    specs = discover_sites(MixedToy())
    g = FixedGuide({"block.skip": [1, 1], "cell.n0.op": 2}, specs)
    with arch_plate(3):
        out = g()
    assert out["block.skip"].tolist() == [[1.0, 1.0]] * 3 and out["cell.n0.op"].tolist() == [2] * 3
    assert g.make_optimizers() == []


def test_fixed_theta_has_no_optimizer():
    g = BernoulliGuide([SiteSpec("b", "bernoulli", (3,))], learnable=False)
    assert g.make_optimizers() == []
    assert torch.equal(g.theta("b"), torch.full((3,), 0.5))
