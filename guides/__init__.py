"""Guides over architecture sites (imported as ``bayesnas.guides``).

Each guide is a distribution over some arch sites, held in expectation parameters θ, that
samples every site directly from its own family. :func:`auto_guide` builds the default guide
for a model: Bernoulli θ for Bernoulli sites, one rate per group for shared-rate Bernoulli
sites, categorical θ for categorical ones, a mean-field Normal (μ, log σ²) for the op
strengths of "normal" sites (vinnas2020), a Gaussian N(μ, σ²) in grid coordinates for
ordered "gaussian-integer" sites (nes2019); :class:`NormalWeightGuide` makes a module's weights
Bayesian.
"""

from bayesnas.guides.base import ExpectationGuide, GuideList, auto_guide, make_arch_optimizers
from bayesnas.guides.bernoulli import BernoulliGuide
from bayesnas.guides.categorical import CategoricalGuide
from bayesnas.guides.fixed import FixedGuide
from bayesnas.guides.gaussian import GaussianGuide
from bayesnas.guides.normal import NormalGuide, NormalWeightGuide
from bayesnas.guides.shared_bernoulli import SharedBernoulliGuide

__all__ = [
    "BernoulliGuide",
    "CategoricalGuide",
    "ExpectationGuide",
    "FixedGuide",
    "GaussianGuide",
    "GuideList",
    "NormalGuide",
    "NormalWeightGuide",
    "SharedBernoulliGuide",
    "auto_guide",
    "make_arch_optimizers",
]
