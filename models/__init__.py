"""Search spaces as Pyro models (imported as ``bayesnas.models``), one file per family."""

from bayesnas.models.layer_skip import LayerSkipMLP
from bayesnas.models.registry import SearchSpace, available_spaces, get_space
from bayesnas.models.stochastic_net import StochasticNetMLP

__all__ = ["LayerSkipMLP", "SearchSpace", "StochasticNetMLP", "available_spaces", "get_space"]
