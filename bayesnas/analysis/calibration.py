"""Model averaging over the posterior, and the metrics that show what it buys.

The most likely architecture is one network; the posterior is many. Averaging the predictive
probabilities of S architectures drawn from it (shirakawa2018's "stochastic prediction")
usually lowers the error and, more visibly, the negative log-likelihood and the calibration
error. :func:`model_averaging` reports both side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from bayesnas.infer.predict import predict_deterministic, predict_stochastic

__all__ = ["classification_metrics", "expected_calibration_error", "model_averaging"]


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, *, num_bins: int = 15) -> float:
    """ECE: Σ_b (n_b / N) |accuracy_b − confidence_b| over ``num_bins`` equal-width bins of the
    top-class probability (Guo et al., 2017)."""
    if num_bins < 1:
        raise ValueError(f"`num_bins` must be >= 1, but got num_bins={num_bins}.")
    conf, pred = probs.max(-1)
    correct = (pred == y).to(probs.dtype)
    # Bin b holds confidences in (b/B, (b+1)/B]; a confidence of exactly 0 joins bin 0.
    bins = (conf * num_bins).ceil().long().clamp(1, num_bins) - 1
    total = torch.zeros((), dtype=torch.float64)
    for b in range(num_bins):
        inside = bins == b
        if bool(inside.any()):
            gap = (correct[inside].mean() - conf[inside].mean()).abs().double()
            total += inside.double().mean() * gap
    return float(total)


def classification_metrics(probs: torch.Tensor, y: torch.Tensor, *, num_bins: int = 15) -> dict[str, float]:
    """Accuracy, error, mean negative log-likelihood (nats) and ECE of class probabilities ``(N, C)``."""
    if probs.dim() != 2 or y.shape != probs.shape[:1]:
        raise ValueError(
            f"Expected probs of shape (N, C) and labels of shape (N,), but got "
            f"{tuple(probs.shape)} and {tuple(y.shape)}."
        )
    probs = probs.detach().double().cpu()
    y = y.detach().long().cpu()
    accuracy = float((probs.argmax(-1) == y).double().mean())
    nll = float(-probs.gather(-1, y[:, None]).clamp_min(1e-12).log().mean())
    return {
        "accuracy": accuracy,
        "error": 1.0 - accuracy,
        "nll": nll,
        "ece": expected_calibration_error(probs, y, num_bins=num_bins),
    }


@torch.no_grad()
def model_averaging(
    model: Callable[..., Any],
    guide: Any,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_samples: int = 100,
    generator: torch.Generator,
    num_bins: int = 15,
) -> dict[str, Any]:
    """Metrics of the most likely architecture and of the posterior average over
    ``num_samples`` architectures drawn with ``generator``, on ``batches`` of ``(x, y)``."""
    single, averaged, labels = [], [], []
    for x, y in batches:
        single.append(predict_deterministic(model, guide, x).softmax(-1).cpu())
        averaged.append(
            predict_stochastic(model, guide, x, num_samples=num_samples, generator=generator).cpu()
        )
        labels.append(y.cpu())
    if not labels:
        raise ValueError("model_averaging needs at least one batch of data, but got none.")
    y = torch.cat(labels)
    return {
        "most_likely": classification_metrics(torch.cat(single), y, num_bins=num_bins),
        "averaged": classification_metrics(torch.cat(averaged), y, num_bins=num_bins),
        "num_samples": num_samples,
    }
