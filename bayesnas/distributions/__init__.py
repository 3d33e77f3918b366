"""Distributions of bayesnas: the log-uniform prior and its analytic KL (vinnas2020)."""

from bayesnas.distributions.kl import (
    K1,
    K2,
    K3,
    LOG_ALPHA_MAX,
    LOG_ALPHA_MIN,
    kl_from_log_alpha,
    kl_normal_log_uniform,
    log_alpha,
)
from bayesnas.distributions.log_uniform import LogUniform

__all__ = [
    "K1",
    "K2",
    "K3",
    "LOG_ALPHA_MAX",
    "LOG_ALPHA_MIN",
    "LogUniform",
    "kl_from_log_alpha",
    "kl_normal_log_uniform",
    "log_alpha",
]
