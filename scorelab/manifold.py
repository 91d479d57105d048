"""Scores of data on a manifold: a von Mises density on a circle in R^2 (section 4.6.2).

Data on a circle of radius R, ``x = R u(theta)`` with ``u(theta) = (cos theta, sin theta)``
and the angle von Mises distributed, ``p(theta) = exp(kappa cos(theta - mu)) / (2 pi I0(kappa))``,
have no density in R^2, so no Euclidean score.  Adding noise gives one:
``p_sigma(x) = int p(theta) N(x; R u(theta), sigma^2 I) d theta``.  Near the circle, at radius
``r``, Laplace's method gives ::

    log p_sigma(x) ~ -(r - R)^2 / (2 sigma^2) + log p(theta) - log(r) / 2 + const,

so the *normal* (radial) component of the score is ``~ -(r - R) / sigma^2``, which blows up as
sigma -> 0 (at typical points ``r - R ~ sigma`` it grows like ``1 / sigma``), while the
*tangential* component tends to ``(1 / r) d/dtheta log p(theta)``: the intrinsic score per unit
arc length.  ``VonMisesCircle.noised`` evaluates ``p_sigma`` by the periodic trapezoidal rule
in theta, which is a Gaussian mixture with one component per node (spectrally accurate as long
as the node spacing ``2 pi R / n_quad`` is below the noise sigma).

``sample_projected_langevin`` runs Langevin dynamics *on* the circle: a tangential score step
plus tangential noise, then projection back to the circle.
"""

from __future__ import annotations

import math

import torch

from ._checks import (
    as_float_tensor,
    as_points,
    check_callable,
    check_callback_stats,
    check_count,
    check_finite,
    check_generator,
    check_positive,
    check_start,
    checked_score,
)
from ._random import gaussian_like
from .distributions import GaussianMixture

__all__ = ["VonMisesCircle", "tangent_normal", "sample_projected_langevin"]


def _angles(theta, name: str = "theta") -> torch.Tensor:
    t = as_float_tensor(theta, name, torch.float64) if not isinstance(theta, torch.Tensor) else theta
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected floating angles, got dtype {t.dtype}")
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1:
        raise ValueError(f"{name}: expected an (N,) tensor of angles, got shape {tuple(t.shape)}")
    return t


class VonMisesCircle:
    """Von Mises angles embedded on a circle of radius R in R^2 (section 4.6.2).

    Args:
        mu: mean angle (radians).
        kappa: concentration, > 0 (``kappa -> 0`` is uniform; large kappa ~ N(mu, 1/kappa)).
        radius: R > 0.
    """

    dim = 2

    def __init__(self, mu: float = 0.0, kappa: float = 2.0, radius: float = 1.0):
        self.mu = check_finite(mu, "mu", "an angle (a number)")
        self.kappa = check_positive(kappa, "kappa")
        self.radius = check_positive(radius, "radius")
        # log(2 pi I0(kappa)) with the exponentially scaled Bessel function: no overflow
        i0e = float(torch.special.i0e(torch.tensor(self.kappa, dtype=torch.float64)))
        self._log_norm = math.log(2 * math.pi * i0e) + self.kappa

    # -- the intrinsic density ------------------------------------------------------
    def log_prob_angle(self, theta) -> torch.Tensor:
        """``log p(theta)`` w.r.t. d theta: (N,) -> (N,)."""
        theta = _angles(theta)
        return self.kappa * torch.cos(theta - self.mu) - self._log_norm

    def intrinsic_score(self, theta) -> torch.Tensor:
        """``d/dtheta log p(theta) = -kappa sin(theta - mu)``: (N,) -> (N,).  Divide by R for the
        score per unit arc length."""
        theta = _angles(theta)
        return -self.kappa * torch.sin(theta - self.mu)

    def mean_resultant_length(self) -> float:
        """``E cos(theta - mu) = I1(kappa) / I0(kappa)``."""
        k = torch.tensor(self.kappa, dtype=torch.float64)
        return float(torch.special.i1e(k) / torch.special.i0e(k))

    def sample_angle(self, n: int, generator=None) -> torch.Tensor:
        """``n`` exact angles in ``[mu - pi, mu + pi)`` by rejection from the uniform law
        (acceptance ``exp(kappa (cos(theta - mu) - 1))``, on average ``I0(kappa) e^-kappa``): (n,) float64."""
        n = check_count(n, "n")
        g = check_generator(generator)
        out, have = torch.empty(n, dtype=torch.float64), 0
        while have < n:
            m = max(64, int(1.3 * (n - have) * math.exp(self.kappa - self._log_norm + math.log(2 * math.pi))) + 64)
            m = min(m, 10_000_000)
            th = (torch.rand(m, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
            keep = th[torch.rand(m, generator=g, dtype=torch.float64) < torch.exp(self.kappa * (torch.cos(th) - 1))]
            take = keep[: n - have]
            out[have:have + len(take)] = take
            have += len(take)
        return out + self.mu

    def embed(self, theta) -> torch.Tensor:
        """``R (cos theta, sin theta)``: (N,) -> (N, 2)."""
        theta = _angles(theta)
        return self.radius * torch.stack([torch.cos(theta), torch.sin(theta)], -1)

    def angle_of(self, x: torch.Tensor) -> torch.Tensor:
        """Angle of points x (N, 2), wrapped to ``[mu - pi, mu + pi)``: (N,)."""
        x = as_points(x, 2)
        return torch.remainder(torch.atan2(x[:, 1], x[:, 0]) - self.mu + math.pi, 2 * math.pi) - math.pi + self.mu

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """``n`` exact points on the circle: (n, 2) float64."""
        return self.embed(self.sample_angle(n, generator))

    # -- the noised law in R^2 -------------------------------------------------------
    def noised(self, sigma: float, n_quad: int = 2048) -> GaussianMixture:
        """``p_sigma = p * N(0, sigma^2 I)`` by the periodic trapezoidal rule in theta: a mixture
        of ``n_quad`` components ``N(R u(theta_j), sigma^2 I)`` with weights ``~ p(theta_j)``.

        Accurate when the node spacing ``2 pi R / n_quad`` is a fraction of sigma; raises otherwise.
        """
        sigma = check_positive(sigma, "sigma")
        n_quad = check_count(n_quad, "n_quad", minimum=8)
        spacing = 2 * math.pi * self.radius / n_quad
        if spacing > sigma / 2:
            raise ValueError(f"n_quad: node spacing 2 pi R / n_quad = {spacing:.3g} is too coarse for "
                             f"sigma = {sigma:.3g}; use n_quad >= {math.ceil(4 * math.pi * self.radius / sigma)}")
        theta = torch.arange(n_quad, dtype=torch.float64) * (2 * math.pi / n_quad)
        w = torch.exp(self.log_prob_angle(theta) - self.kappa + self._log_norm)  # scaled, max 1
        return GaussianMixture(w, self.embed(theta), torch.full((n_quad,), sigma**2, dtype=torch.float64))

    def __repr__(self) -> str:
        return f"VonMisesCircle(mu={self.mu:.4g}, kappa={self.kappa:.4g}, radius={self.radius:.4g})"


def tangent_normal(x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split vectors v (N, 2) at points x (N, 2) into components along the circle's unit tangent
    ``(-sin theta, cos theta)`` and outward normal ``x / |x|``: returns two (N,) tensors."""
    x = as_points(x, 2)
    v = as_points(v, 2, "v")
    if v.shape != x.shape:
        raise ValueError(f"v: expected shape {tuple(x.shape)} like x, got {tuple(v.shape)}")
    r = x.norm(dim=-1, keepdim=True)
    if bool((r == 0).any()):
        raise ValueError("x: the origin has no tangent direction")
    n_hat = x / r
    t_hat = torch.stack([-n_hat[:, 1], n_hat[:, 0]], -1)
    return (v * t_hat).sum(-1), (v * n_hat).sum(-1)


@torch.no_grad()
def sample_projected_langevin(tangent_score_fn, x: torch.Tensor, step_size: float, n_steps: int, *,
                              radius: float = 1.0, generator=None, callback=None, stats=None) -> torch.Tensor:
    """Projected Langevin dynamics on the circle of radius R (section 4.6.2).

    Each step moves along the tangent plane and projects back::

        x' = x + eps * P s(x) + sqrt(2 eps) * P z,      x <- R x' / |x'|,

    with ``P`` the projection on the tangent line at x.  In arc length this is the Langevin
    update on the circle, up to O(eps^{3/2}) from the projection; its stationary law is the
    density whose score per unit arc length is the tangential part of ``s``.  Only that part of
    ``tangent_score_fn``'s output is used, so a Euclidean score (e.g. of ``p_sigma``) can be
    passed as it is.

    Args:
        tangent_score_fn: ``x (N, 2) -> (N, 2)``.
        x: (N, 2) starting points (projected onto the circle first; not modified).
        step_size: eps > 0.
        n_steps: number of updates.
        radius: R.
        generator: ``torch.Generator`` or int seed.
        callback: called after each step with ``{"i", "x", "step_size"}``.
        stats: dict filled with ``"nfe"`` (``n_steps``).
    """
    check_callable(tangent_score_fn, "tangent_score_fn", "x (N, 2) -> (N, 2)")
    x = check_start(x, shape="(N, 2)")
    if x.shape[1] != 2:
        raise ValueError(f"x: expected points in the plane, shape (N, 2), got {tuple(x.shape)}")
    eps = check_positive(step_size, "step_size")
    n_steps = check_count(n_steps, "n_steps")
    R = check_positive(radius, "radius")
    g = check_generator(generator)
    check_callback_stats(callback, stats)
    r = x.norm(dim=-1, keepdim=True)
    if bool((r == 0).any()):
        raise ValueError("x: a starting point at the origin cannot be projected onto the circle")
    x = R * x / r
    for i in range(n_steps):
        n_hat = x / R
        t_hat = torch.stack([-n_hat[:, 1], n_hat[:, 0]], -1)
        s = checked_score(tangent_score_fn(x), x, "tangent_score_fn")
        z = gaussian_like(x, g, x.shape[:1])
        move = eps * (s * t_hat).sum(-1) + math.sqrt(2 * eps) * z
        x = x + move[:, None] * t_hat
        x = R * x / x.norm(dim=-1, keepdim=True)
        if callback is not None:
            callback({"i": i, "x": x, "step_size": eps})
    if stats is not None:
        stats["nfe"] = n_steps
    return x
