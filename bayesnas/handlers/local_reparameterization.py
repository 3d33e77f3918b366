"""The local reparameterization trick (LRT) as a Pyro effect (Kingma et al. 2015, §2.3).

For a layer that is linear in its weight — ``F.linear``, ``F.conv2d`` — and a mean-field
Normal weight ``w ~ N(μ, σ²)``, each output unit is a sum of independent Normals, so it is
itself Normal:

    mean = op(x, μ) + b,   var = op(x², σ²) (+ σ_b²),   out = mean + sqrt(var + tiny)·ε,

with ``ε ~ N(0, I)`` drawn per output element (and so per data point). Sampling the output
instead of the weight gives a gradient estimator with much lower variance, which is what
lets Molchanov et al. (2017) and vinnas2020 (§III-A, eq. 2) train the variational
posterior ``q(w) = N(μ, σ²)`` (vinnas2020 eq. 5) with an unbounded α = σ²/μ². For a dense
layer the output units use disjoint weight rows, so the LRT is exact per data point; for a
convolution the marginal of every output element is exact but the correlation between
positions that share a kernel is dropped, as in Molchanov et al. (2017).

Design: a registry of sampled weights plus an explicit Pyro effect
--------------------------------------------------------------------
* At an unobserved, not-yet-valued ``sample`` site whose distribution is a Normal (possibly
  wrapped in ``Independent`` / ``.to_event``, ``.mask`` or ``.expand``), the messenger draws
  the value itself and records ``value → (μ, σ)`` in a module-level, weakly keyed
  (``torch.utils.weak.WeakIdKeyDictionary``) registry. ``replay`` hands the model the very
  tensor the guide drew, so the model's layer recognises the guide's sample by identity:
  the LRT sees the guide's Normal even though the model site's own ``fn`` is the prior.
  The registry is module-level so that ``local_reparameterization(model)`` and
  ``local_reparameterization(guide)`` (two instances) cooperate as well as one ``with``
  around ``svi.step``; weak keys drop an entry as soon as its sample is freed.
* The layer helpers :func:`bayesnas.nn.lrt.linear` / :func:`bayesnas.nn.lrt.conv2d` are
  calls through Pyro's effect stack (``apply_stack`` with a message of type ``"lrt"``).
  This messenger answers such a message when the weight is a registered sample; under no
  handler, or for a plain weight, the default behaviour runs, which is exactly
  ``F.linear`` / ``F.conv2d``.

Why not the alternatives: a tensor subclass carrying (μ, σ) would route every torch op on
the weight through ``__torch_function__`` and is easily lost by ops that return plain
tensors; a ``TorchFunctionMode`` would intercept every op of the whole forward pass and
silently change layers the model author never marked. The explicit effect costs one
``apply_stack`` per layer, is a no-op outside handlers, composes with ``poutine`` like any
Pyro effect (``poutine.block`` hides it too), and needs no private Pyro state. A weight that
is transformed before the layer (reshaped, scaled, ...) is a different tensor; it simply
falls back to the sampled weight, which is still an unbiased (higher-variance) estimate.

Deterministic mode (``deterministic=True``) evaluates the network at the posterior means, as
vinnas2020 does after the search (§IV-B: "the variances are only considered to compute which
weights can be pruned"): such sites take the value ``μ``, with weights of
``log α ≥ threshold`` set to 0 when a ``threshold`` is given (Molchanov et al. 2017 use 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message
from torch.autograd.function import Function, once_differentiable
from torch.distributions import Independent, Normal
from torch.utils.weak import WeakIdKeyDictionary

from bayesnas.distributions.kl import log_alpha

#: added to the output variance before the square root, so that its gradient stays finite
#: where the variance is exactly 0 (zero inputs, zero padding, dead ReLUs).
TINY = 1e-8

#: sampled value → (μ, σ), both broadcast to the value's shape. Weakly keyed by identity:
#: tensors compare elementwise, so an ordinary weak dict cannot hold them.
_REGISTRY: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _normal_base(fn: torch.distributions.Distribution) -> Normal | None:
    # Only wrappers that leave the sampled value a draw of their base: a
    # TransformedDistribution (e.g. LogNormal) also has a ``base_dist`` but changes the value.
    base = fn
    while isinstance(base, Independent | MaskedDistribution | ExpandedDistribution):
        base = base.base_dist
    return base if isinstance(base, Normal) else None


def registered(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(μ, σ)`` if ``weight`` is a Normal sample drawn under this handler, else ``None``."""
    return _REGISTRY.get(weight) if isinstance(weight, torch.Tensor) else None


def split_draw(value: torch.Tensor, shapes: Sequence[torch.Size]) -> list[torch.Tensor]:
    """Views of a flat draw ``value`` (one dimension, ``Σ numel(shape)`` long), one per shape.

    A registered draw's views are registered too, with the matching views of its (μ, σ), so
    one Normal site can feed many layers and each layer still gets the LRT: one site and one
    vectorised KL for all the weights of a network instead of a site per tensor, whose
    tracing, replay and per-site KL are most of the Bayesian step's bookkeeping
    (``benchmarks/lrt_step_time.py``).
    """
    sizes = [math.prod(shape) for shape in shapes]
    if value.dim() != 1 or value.numel() != sum(sizes):
        raise ValueError(f"A flat draw of {sum(sizes)} elements was expected for the shapes, but got a "
                         f"tensor of shape {tuple(value.shape)}.")

    def views(t: torch.Tensor) -> list[torch.Tensor]:
        return [piece.view(shape) for piece, shape in zip(t.split(sizes), shapes, strict=True)]

    out = views(value)
    params = registered(value)
    if params is not None:
        for piece, loc, scale in zip(out, views(params[0]), views(params[1]), strict=True):
            _REGISTRY[piece] = (loc, scale)
    return out


def _check_threshold(threshold: float) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise ValueError(f"`threshold` must be a finite number, but got threshold={threshold!r}.")


def prune_mask(mu: torch.Tensor, log_sigma2: torch.Tensor, threshold: float = 3.0) -> torch.Tensor:
    """Boolean mask of the weights kept: ``log α < threshold`` with ``log α = log σ² − log μ²``.

    Molchanov et al. (2017) prune weights with ``log α ≥ 3`` (α = σ²/μ² ≥ e³ ≈ 20, a
    weight whose noise is over 4× its mean); vinnas2020 (§IV-B) prunes the same way after the
    search. log α is not clipped here, so any finite threshold is honoured.
    """
    _check_threshold(threshold)
    return log_alpha(mu, log_sigma2, clip=False) < threshold


def nonzero_after_pruning(mu: torch.Tensor, log_sigma2: torch.Tensor, threshold: float = 3.0) -> int:
    """Number of parameters that remain non-zero once :func:`prune_mask` is applied to ``mu``."""
    return int(((mu != 0) & prune_mask(mu, log_sigma2, threshold)).sum())


def lrt_moments(
    op: Callable[..., torch.Tensor],
    input: torch.Tensor,
    weight_loc: torch.Tensor,
    weight_scale: torch.Tensor,
    bias_loc: torch.Tensor | None = None,
    bias_scale: torch.Tensor | None = None,
    **op_kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``op(input, w, b, **op_kwargs)`` for ``w ~ N(loc, scale²)`` (Kingma
    et al. 2015, §2.3). ``op`` must be linear in ``(weight, bias)`` with the signature of
    ``F.linear`` / ``F.conv*d``: ``mean = op(x, μ, μ_b)``, ``var = op(x², σ², σ_b²)``. A
    ``bias_scale`` of ``None`` means the bias is fixed.
    """
    return _lrt_moments(op, input, _Square.apply(input), weight_loc, weight_scale, bias_loc, bias_scale,
                        **op_kwargs)


def _lrt_moments(op, input, input_squared, weight_loc, weight_scale, bias_loc, bias_scale, **op_kwargs):
    mean = op(input, weight_loc, bias_loc, **op_kwargs)
    var = op(input_squared, weight_scale * weight_scale,
             None if bias_scale is None else bias_scale * bias_scale, **op_kwargs)
    return mean, var


# The LRT's elementwise work runs on every output element of every layer, twice per search
# step (W and α), so the two autograd functions below trim it: the same values and gradients
# as the plain expressions (up to rounding), with fewer full-size temporaries and passes.


class _Square(Function):
    """``x * x`` with the backward ``2·x·g`` in one product (autograd's ``x * x`` forms
    ``g·x`` twice and adds the two)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return torch.mul(grad, x).mul_(2.0)


class _LrtSample(Function):
    """``mean + sqrt(var + TINY)·ε``, ``ε ~ N(0, I)`` drawn here (``randn_like``, the same
    draws as the plain expression). Saves only ``ε / (2·sqrt(var + TINY))``, the derivative
    in ``var``, so the backward is one product (the plain expression saves ε and the root and
    back-propagates through a product, a doubling and a division)."""

    @staticmethod
    def forward(ctx, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        std = torch.add(var, TINY).sqrt_()
        eps = torch.randn_like(std)
        out = torch.addcmul(mean, std, eps)
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(eps.div_(std.mul_(2.0)))  # in place: both are temporaries
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        grad_var = None
        if ctx.needs_input_grad[1]:
            (d_var,) = ctx.saved_tensors
            grad_var = grad * d_var
        return (grad if ctx.needs_input_grad[0] else None), grad_var


def lrt_sample(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``mean + sqrt(var + TINY)·ε`` with fresh ``ε ~ N(0, I)`` per element (the LRT's output)."""
    return _LrtSample.apply(mean, var)


class LocalReparameterizationMessenger(Messenger):
    """Applies the local reparameterization trick (or posterior-mean evaluation); see module.

    ``Message`` fields used, at ``sample`` sites: ``is_observed``, ``done`` and ``value``
    (sites already valued by ``replay``/``condition`` or observed are left alone); ``fn``,
    whose Normal base gives ``(μ, σ)``; ``args``/``kwargs``, passed to ``fn`` when drawing.
    ``value`` is set here (a registered draw, or the pruned mean in deterministic mode).
    At ``lrt`` messages (sent by :mod:`bayesnas.nn.lrt`): ``fn`` is the plain op,
    ``args = (input, weight, bias)``, ``kwargs`` its other arguments; ``value`` is set here
    and ``done`` marked when the weight is a registered sample (its mean in deterministic mode).

    :param deterministic: evaluate at the means instead of sampling.
    :param threshold: in deterministic mode, zero the weights with ``log α ≥ threshold``.
    """

    def __init__(self, *, deterministic: bool = False, threshold: float | None = None) -> None:
        if threshold is not None:
            _check_threshold(threshold)
            if not deterministic:
                raise ValueError(
                    "`threshold` prunes only when evaluating at the means, but got "
                    f"threshold={threshold!r} with deterministic=False."
                )
        super().__init__()
        self.deterministic = deterministic
        self.threshold = threshold
        #: deterministic mode: site name → (non-zero count after pruning, total count).
        self.pruning: dict[str, tuple[int, int]] = {}
        # input → (its version, x²): the ops of a mixed edge all read the same input, so its
        # square is computed (and back-propagated) once, not once per op.
        self._squares: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def _square(self, input: torch.Tensor) -> torch.Tensor:
        cached = self._squares.get(input)
        if cached is not None and cached[0] == input._version:
            return cached[1]
        squared = _Square.apply(input)
        self._squares[input] = (input._version, squared)
        return squared

    def nonzero_count(self) -> int:
        """Non-zero parameters over the Normal sites seen in deterministic mode, after pruning."""
        return sum(kept for kept, _ in self.pruning.values())

    def _pyro_sample(self, msg: Message) -> None:
        if msg["is_observed"] or msg["done"] or msg["value"] is not None:
            return
        base = _normal_base(msg["fn"])
        if base is None:
            return
        loc, scale = torch.broadcast_tensors(base.loc, base.scale)
        if self.deterministic:
            value = loc
            if self.threshold is not None:
                value = torch.where(prune_mask(loc, 2.0 * scale.log(), self.threshold), loc, 0.0)
            self.pruning[msg["name"]] = (int((value != 0).sum()), value.numel())
            msg["value"] = value.expand(msg["fn"].shape())
            return
        value = msg["fn"](*msg["args"], **msg["kwargs"])
        try:
            _REGISTRY[value] = (loc.expand(value.shape), scale.expand(value.shape))
        except RuntimeError:
            pass  # a draw with extra sample dims that (μ, σ) do not cover: no LRT for it
        msg["value"] = value

    def _pyro_lrt(self, msg: Message) -> None:
        if msg["value"] is not None:
            return  # an inner handler answered
        input, weight, bias = msg["args"]
        params = registered(weight)
        if params is None:
            return  # a plain weight: the default, the op itself, runs
        loc, scale = params
        bias_params = registered(bias)
        bias_loc, bias_scale = bias_params if bias_params is not None else (bias, None)
        if self.deterministic:  # a draw registered earlier, e.g. by a guide run in sampling mode
            if self.threshold is not None:
                loc = torch.where(prune_mask(loc, 2.0 * scale.log(), self.threshold), loc, 0.0)
            msg["value"] = msg["fn"](input, loc, bias_loc, **msg["kwargs"])
        else:
            mean, var = _lrt_moments(msg["fn"], input, self._square(input), loc, scale, bias_loc, bias_scale,
                                     **msg["kwargs"])
            msg["value"] = lrt_sample(mean, var)
        msg["done"] = True


def local_reparameterization(fn=None, *, deterministic: bool = False, threshold: float | None = None):
    """Handler: layers called through :mod:`bayesnas.nn.lrt` use the LRT for Normal weight sites.

    Wrap both the guide and the model (e.g. ``with local_reparameterization(): svi.step(...)``)
    so the guide's draws are registered before the model's layers use them.
    """
    msngr = LocalReparameterizationMessenger(deterministic=deterministic, threshold=threshold)
    return msngr(fn) if fn is not None else msngr
