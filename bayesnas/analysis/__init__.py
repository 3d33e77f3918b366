"""Posterior analysis over architecture choices: one API for every guide family.

- :class:`Posterior` — per-site marginals (probabilities, entropy; μ, σ, positive SNR and
  the Monte-Carlo winner probability for Normal op strengths), the most likely architecture
  and the ranked credible set (:func:`credible_set`).
- :func:`convergence_stats` / :func:`convergence_curve` — mean max-probability, undecided
  variables, entropy over training; :func:`collapse_report` / :func:`check_collapse` — the
  collapse warning.
- :func:`model_averaging` — accuracy, NLL and ECE of the posterior average beside the single
  most likely architecture.
- :mod:`bayesnas.analysis.plots` — the figures; :mod:`bayesnas.analysis.report` — the run
  report (``bayesnas report``) and the comparison of runs (``bayesnas compare``).
- :func:`plot_genotype` — the chosen cells of the cell space (``genotype.json``) or of a VINNAS run
  (``genotype_snr.json``, ``genotype_magnitude.json``, with :func:`vinnas_strengths`), each edge
  with the posterior probability of its choices (:func:`choice_probabilities`).
- :func:`plot_cae_genotype` — the chosen symmetric autoencoder of the inpainting space (its
  active chain and mirrored decoder), with :func:`cae_choice_probabilities`.
"""

from bayesnas.analysis.cae_plot import cae_choice_probabilities, draw_cae_genotype, plot_cae_genotype
from bayesnas.analysis.calibration import (
    classification_metrics,
    expected_calibration_error,
    model_averaging,
)
from bayesnas.analysis.convergence import (
    DECIDED,
    PARAMETER_FREE,
    CollapseReport,
    CollapseWarning,
    check_collapse,
    collapse_report,
    convergence_curve,
    convergence_stats,
)
from bayesnas.analysis.credible import CredibleArchitecture, credible_set
from bayesnas.analysis.genotype_plot import (
    choice_probabilities,
    draw_genotype,
    plot_genotype,
    vinnas_strengths,
)
from bayesnas.analysis.history import HISTORY_FILE, PosteriorHistory
from bayesnas.analysis.marginals import (
    BernoulliMarginal,
    CategoricalMarginal,
    FixedMarginal,
    GaussianIntegerMarginal,
    NormalStrengthMarginal,
    SharedBernoulliMarginal,
    SiteMarginal,
    marginal_from_summary,
)
from bayesnas.analysis.posterior import Posterior, as_posterior
from bayesnas.analysis.winner import two_normal_winner_probability, winner_probabilities

__all__ = [
    "DECIDED",
    "HISTORY_FILE",
    "PARAMETER_FREE",
    "BernoulliMarginal",
    "CategoricalMarginal",
    "CollapseReport",
    "CollapseWarning",
    "CredibleArchitecture",
    "FixedMarginal",
    "GaussianIntegerMarginal",
    "NormalStrengthMarginal",
    "Posterior",
    "PosteriorHistory",
    "SharedBernoulliMarginal",
    "SiteMarginal",
    "as_posterior",
    "cae_choice_probabilities",
    "check_collapse",
    "choice_probabilities",
    "classification_metrics",
    "collapse_report",
    "convergence_curve",
    "convergence_stats",
    "credible_set",
    "draw_cae_genotype",
    "draw_genotype",
    "expected_calibration_error",
    "marginal_from_summary",
    "model_averaging",
    "plot_cae_genotype",
    "plot_genotype",
    "vinnas_strengths",
    "two_normal_winner_probability",
    "winner_probabilities",
]
