"""Inference: losses over sampled architectures, the search step, prediction."""

from bayesnas.infer.alternating import AlternatingArchitectureSearch
from bayesnas.infer.batchnorm import batchnorm_layers, frozen_batchnorm_statistics, recalibrated_batchnorm
from bayesnas.infer.losses import ExpectedLoss, RankingNaturalGradientLoss, per_architecture_loss
from bayesnas.infer.nes import NESArchitectureSearch, NESLoss
from bayesnas.infer.predict import predict_deterministic, predict_stochastic
from bayesnas.infer.schedules import cosine_lr, linear_decay, linear_ramp
from bayesnas.infer.search import ArchitectureSearch
from bayesnas.infer.utility import baseline_difference_utility, ranking_utility
from bayesnas.infer.variational import (
    VariationalArchitectureSearch,
    VariationalSearchELBO,
)

__all__ = [
    "AlternatingArchitectureSearch",
    "ArchitectureSearch",
    "ExpectedLoss",
    "NESArchitectureSearch",
    "NESLoss",
    "RankingNaturalGradientLoss",
    "VariationalArchitectureSearch",
    "VariationalSearchELBO",
    "baseline_difference_utility",
    "batchnorm_layers",
    "cosine_lr",
    "frozen_batchnorm_statistics",
    "linear_decay",
    "linear_ramp",
    "per_architecture_loss",
    "predict_deterministic",
    "predict_stochastic",
    "ranking_utility",
    "recalibrated_batchnorm",
]
