"""Natural-gradient optimizers over architecture distributions (``torch.optim.Optimizer``)."""

from bayesnas.optim.functional import (
    adaptive_lr_update,
    bernoulli_natural_gradient,
    categorical_natural_gradient,
    fisher_sqrt_image,
    project_bernoulli,
    project_categorical,
)
from bayesnas.optim.natural import BernoulliNaturalGradient, CategoricalNaturalGradient

__all__ = [
    "BernoulliNaturalGradient",
    "CategoricalNaturalGradient",
    "adaptive_lr_update",
    "bernoulli_natural_gradient",
    "categorical_natural_gradient",
    "fisher_sqrt_image",
    "project_bernoulli",
    "project_categorical",
]
