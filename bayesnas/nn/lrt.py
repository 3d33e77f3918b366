"""Layers that honour :func:`bayesnas.handlers.local_reparameterization`.

Each helper has the signature of its ``torch.nn.functional`` namesake. Outside the handler,
or with a weight that is not a registered Normal sample, it *is* that function (same
call, same result). Under the handler, with a weight drawn from a Normal site, the handler
computes the output by the local reparameterization trick instead (see
:mod:`bayesnas.handlers.local_reparameterization` for the design).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from pyro.poutine.runtime import Message, am_i_wrapped, apply_stack


def _effect(op: Callable[..., torch.Tensor], args: tuple, kwargs: dict) -> torch.Tensor:
    if not am_i_wrapped():
        return op(*args, **kwargs)
    msg = Message(
        type="lrt",
        name="_bayesnas_lrt",  # never traced (infer["_do_not_trace"]), but some handlers read it
        fn=op,
        is_observed=False,
        args=args,
        kwargs=kwargs,
        value=None,
        infer={"_do_not_trace": True},
        scale=1.0,
        mask=None,
        cond_indep_stack=(),
        done=False,
        stop=False,
        continuation=None,
    )
    apply_stack(msg)  # unanswered, Pyro's default runs ``op(*args, **kwargs)``
    return msg["value"]


def linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``, or its local reparameterization under the handler."""
    return _effect(F.linear, (input, weight, bias), {})


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    """``F.conv2d``, or its local reparameterization under the handler (any stride, padding,
    dilation and groups, depthwise included)."""
    return _effect(
        F.conv2d, (input, weight, bias),
        {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups},
    )
