"""scorelab: the runnable companion to Chapter 4, score-based generative models.

Modules, one concept each:

- ``scorelab.distributions``: toy distributions with exact scores (4.1)
- ``scorelab.metrics``: sample and score quality (sliced Wasserstein, MMD, mode weights, Fisher divergence)
- ``scorelab.plotting``: densities, score fields, particles and animations
"""

from . import distributions
from .distributions import (
    EmpiricalDistribution,
    EnergyModel,
    Gaussian,
    GaussianMixture,
    IsingRelaxation,
    concentric_rings,
    eight_gaussians,
    ring,
    song_ermon_mixture,
    standard_gaussian,
    two_mode_1d,
    noised_score,
)
from .utils import fast_mode, fast_or_full

__version__ = "0.1.0"
