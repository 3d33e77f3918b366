"""Search spaces as Pyro models (imported as ``bayesnas.models``), one file per family."""

from bayesnas.models.activation_select import ActivationSelectMLP
from bayesnas.models.densenet_connections import DenseNetConnections
from bayesnas.models.inpainting_space import InpaintingSearchSpace
from bayesnas.models.layer_skip import LayerSkipMLP
from bayesnas.models.registry import (
    SearchSpace,
    available_spaces,
    get_space,
    register_space,
    unregister_space,
)
from bayesnas.models.stochastic_net import StochasticNetMLP
from bayesnas.models.unit_select import UnitSelectMLP
from bayesnas.models.vinnas_space import VinnasSearchSpace

__all__ = [
    "ActivationSelectMLP",
    "DenseNetConnections",
    "InpaintingSearchSpace",
    "LayerSkipMLP",
    "SearchSpace",
    "StochasticNetMLP",
    "UnitSelectMLP",
    "VinnasSearchSpace",
    "available_spaces",
    "get_space",
    "register_space",
    "unregister_space",
]
