"""Natural-gradient optimizers over architecture distributions (``torch.optim.Optimizer``).

θ are plain ``nn.Parameter`` s holding expectation parameters; ``p.grad`` holds the Euclidean
gradient of the score-function surrogate, which the optimizers precondition with the
closed-form inverse Fisher, step, and project back into the clipped domain. Every optimizer
derives from :class:`NaturalGradientOptimizer`; every family's maths is a pure function of
:mod:`bayesnas.optim.functional`.
"""

from bayesnas.optim._base import AdaptiveNaturalGradient, NaturalGradientOptimizer
from bayesnas.optim.bernoulli import BernoulliNaturalGradient
from bayesnas.optim.categorical import CategoricalNaturalGradient
from bayesnas.optim.functional import (
    adaptive_lr_update,
    bernoulli_fisher_sqrt_image,
    bernoulli_natural_gradient,
    categorical_fisher_sqrt_image,
    categorical_natural_gradient,
    evolution_path_update,
    fisher_trace,
    gaussian_natural_gradient,
    gaussian_variance_natural_gradient,
    project_bernoulli,
    project_box,
    project_categorical,
    shared_bernoulli_fisher_sqrt_image,
    shared_bernoulli_natural_gradient,
)
from bayesnas.optim.gaussian import GaussianNaturalGradient
from bayesnas.optim.shared_bernoulli import SharedBernoulliNaturalGradient

__all__ = [
    "AdaptiveNaturalGradient",
    "BernoulliNaturalGradient",
    "CategoricalNaturalGradient",
    "GaussianNaturalGradient",
    "NaturalGradientOptimizer",
    "SharedBernoulliNaturalGradient",
    "adaptive_lr_update",
    "bernoulli_fisher_sqrt_image",
    "bernoulli_natural_gradient",
    "categorical_fisher_sqrt_image",
    "categorical_natural_gradient",
    "evolution_path_update",
    "fisher_trace",
    "gaussian_natural_gradient",
    "gaussian_variance_natural_gradient",
    "project_bernoulli",
    "project_box",
    "project_categorical",
    "shared_bernoulli_fisher_sqrt_image",
    "shared_bernoulli_natural_gradient",
]
