"""The improper log-uniform prior p(x) ∝ 1/|x| of sparse variational dropout.

Molchanov et al. (2017, "Variational Dropout Sparsifies Deep Neural Networks") put this
prior on every weight; vinnas2020 (eq. 4) puts it on the weights ``w`` and on the operation
relevances ``α`` of the supergraph. It has no normalising constant, so it cannot be sampled
and its ``log_prob`` is only defined up to an additive constant: it is meant to sit in a
model whose site the guide always provides, with the KL term computed analytically by the
approximation registered in :mod:`bayesnas.distributions.kl`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

_IMPROPER = (
    "LogUniform is an improper prior (p(x) ∝ 1/|x| has no normalising constant), so it cannot be "
    "sampled, but got a call to {method}(sample_shape={shape}). Use it only at a site that a guide "
    "provides (e.g. SVI with TraceMeanField_ELBO, which uses the registered analytic "
    "KL(Normal ‖ LogUniform)), or condition the site on a value."
)


class LogUniform(TorchDistribution):
    """Improper log-uniform density ``p(x) ∝ 1/|x|`` on the real line (vinnas2020, eq. 4).

    ``log_prob(x) = −log|x|`` (``+inf`` at 0), i.e. the log density up to its (infinite)
    normalising constant; only differences of it, or the KL against it, are meaningful.

    :param shape: the ``batch_shape``; the default ``()`` is a scalar prior, which
        broadcasts against any value and can be ``.expand``-ed or ``.to_event``-ed like any
        Pyro distribution.
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, shape: Sequence[int] | torch.Size = (), *, validate_args: bool | None = None) -> None:
        try:
            batch_shape = torch.Size(shape)
        except TypeError as err:
            raise TypeError(f"`shape` must be a sequence of ints, but got shape={shape!r}.") from err
        if any(d < 0 for d in batch_shape):
            raise ValueError(f"`shape` must have non-negative sizes, but got shape={tuple(batch_shape)}.")
        super().__init__(batch_shape, torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> LogUniform:
        new = self._get_checked_instance(LogUniform, _instance)
        super(LogUniform, new).__init__(torch.Size(batch_shape), torch.Size(), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = torch.broadcast_shapes(value.shape, self.batch_shape)
        return -value.abs().log().expand(shape)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        raise NotImplementedError(_IMPROPER.format(method="sample", shape=tuple(sample_shape)))

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        raise NotImplementedError(_IMPROPER.format(method="rsample", shape=tuple(sample_shape)))

    def __repr__(self) -> str:
        return f"LogUniform(shape={tuple(self.batch_shape)})"
