"""Shared test references: the sliced-Wasserstein floor criterion used by the sampler tests.

A sampler driven by an exact score should produce samples as close to the target as a
second set of fresh exact samples is.  ``sliced_wasserstein_floor`` gives the mean and std
of the SW distance between two exact sets of the same size; ``near_floor`` accepts a
sampler whose SW to the target is within 3 std above that mean (a ~0.1% one-sided false
alarm under a Gaussian approximation).  Each test file also has a negative control showing
that the criterion rejects a sampler that is off.
"""

from __future__ import annotations

import torch

from scorelab.metrics import sliced_wasserstein_to_target


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sw_to_target(x: torch.Tensor, target, seed: int) -> float:
    """SW between x and fresh exact samples of ``target`` (averaged over 3 draws)."""
    return sliced_wasserstein_to_target(x, target, n_repeats=3, generator=gen(seed))


def near_floor(value: float, floor: tuple[float, float]) -> bool:
    """True when ``value`` is within 3 std above the mean of the floor ``(mean, std)``."""
    return value < floor[0] + 3 * floor[1]
