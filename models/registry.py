"""Named search spaces for the command line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class SearchSpace:
    """A named search space.

    Attributes:
        name: the name used on the command line.
        build: ``build(input_shape, num_classes, **options) -> nn.Module`` (a Pyro model).
        flatten_input: whether the model takes flattened inputs ``(N, C*H*W)``.
        description: one line for ``bayesnas spaces``.
    """

    name: str
    build: Callable[..., nn.Module]
    flatten_input: bool
    description: str


#: Spaces added with :func:`register_space` (a user's own, or a test's), after the built-in ones.
_REGISTERED: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> SearchSpace:
    """Make ``space`` known by name to ``get_space``, the runner and the command line of this
    process; returns it. A built-in name cannot be taken."""
    if space.name in _builtin_spaces():
        raise ValueError(f"{space.name!r} names a built-in search space; choose another name.")
    _REGISTERED[space.name] = space
    return space


def unregister_space(name: str) -> None:
    """Forget a space added with :func:`register_space`."""
    if name not in _REGISTERED:
        raise ValueError(f"No registered search space {name!r}. Registered: {sorted(_REGISTERED)}.")
    del _REGISTERED[name]


def _spaces() -> dict[str, SearchSpace]:
    return {**_builtin_spaces(), **_REGISTERED}


def _builtin_spaces() -> dict[str, SearchSpace]:
    from bayesnas.models.activation_select import ActivationSelectMLP
    from bayesnas.models.cell_space import CellSearchSpace
    from bayesnas.models.densenet_connections import DenseNetConnections
    from bayesnas.models.input_groups import InputGroupsMLP
    from bayesnas.models.layer_skip import LayerSkipMLP
    from bayesnas.models.nb201_cell import NB201CellSpace
    from bayesnas.models.stochastic_net import StochasticNetMLP
    from bayesnas.models.unit_select import UnitSelectMLP

    return {
        "layer-skip": SearchSpace(
            "layer-skip",
            LayerSkipMLP.for_data,
            True,
            "shirakawa2018 exp. I: 32 x 128 ReLU MLP, layers 2-32 each skippable (d = 31).",
        ),
        "activation-select": SearchSpace(
            "activation-select",
            ActivationSelectMLP.for_data,
            True,
            "shirakawa2018 exp. II: 3 x 1024 MLP, each hidden unit ReLU (1) or tanh (0) (d = 3,072).",
        ),
        "unit-select": SearchSpace(
            "unit-select",
            UnitSelectMLP.for_data,
            True,
            "saito2018 sec. 4.1: 3 x 784 ReLU MLP, each hidden unit kept or removed, cost 1 per unit "
            "(d = 2,352).",
        ),
        "densenet-connections": SearchSpace(
            "densenet-connections",
            DenseNetConnections.for_data,
            False,
            "shirakawa2018 exp. IV / saito2018 sec. 4.2: DenseNet-40 (k = 12, 3 blocks x 12 layers), one "
            "bit per connection in each dense block (d = 273); options growth, layers_per_block, blocks, "
            "stem_channels.",
        ),
        "enas-cells": SearchSpace(
            "enas-cells",
            CellSearchSpace.for_data,
            False,
            "pdas2019 sec. 4.1: ENAS micro space, normal + reduction cells of 5 nodes, 2 inputs and 2 "
            "ops each (D = 40, 180 theta entries); options channels, normal_cells, num_nodes.",
        ),
        "input-groups": SearchSpace(
            "input-groups",
            InputGroupsMLP.for_data,
            True,
            "input selection: one bit per group of 8 input features, a 32-unit MLP; on digits-noise "
            "8 pixel rows and 2 groups of planted noise (d = 10); options group_size, width.",
        ),
        "nb201-cell": SearchSpace(
            "nb201-cell",
            NB201CellSpace.for_data,
            False,
            "NAS-Bench-201 cell: 4 nodes, 6 edges, each none / skip / conv 1x1 / conv 3x3 / avg-pool 3x3 "
            "(D = 6, K = 5, 15,625 cells); a stem, the cell, a linear head; options channels, cells.",
        ),
        "stochastic-net": SearchSpace(
            "stochastic-net",
            StochasticNetMLP.for_data,
            True,
            "shirakawa2018 exp. III: 10 x 1024 ReLU MLP, layers 2-10 skippable + one dropout "
            "keep-rate per layer (d = 19).",
        ),
    }


def available_spaces() -> list[str]:
    return sorted(_spaces())


def get_space(name: str) -> SearchSpace:
    spaces = _spaces()
    if name not in spaces:
        raise ValueError(f"Unknown search space {name!r}. Known spaces: {', '.join(sorted(spaces))}.")
    return spaces[name]
