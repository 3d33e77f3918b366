"""Guides over architecture sites (imported as ``bayesnas.guides``).

Each guide is a distribution over some arch sites, held in expectation parameters θ, that
samples every site directly from its own family. :func:`auto_guide` builds the default guide
for a model: Bernoulli θ for Bernoulli sites, categorical θ for categorical ones.
"""

from bayesnas.guides.base import ExpectationGuide, GuideList, auto_guide
from bayesnas.guides.bernoulli import BernoulliGuide
from bayesnas.guides.categorical import CategoricalGuide
from bayesnas.guides.fixed import FixedGuide

__all__ = [
    "BernoulliGuide",
    "CategoricalGuide",
    "ExpectationGuide",
    "FixedGuide",
    "GuideList",
    "auto_guide",
]
