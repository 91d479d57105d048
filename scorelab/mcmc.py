"""Faster Langevin-type samplers: preconditioning, momentum and tempering (section 4.4.3).

Plain Langevin (``scorelab.samplers.sample_langevin``, section 4.4.2) moves every direction
with the same step, so a target that is narrow in one direction and wide in another forces
a step small enough for the narrow one and then crawls along the wide one.  It also has
no memory, so it diffuses (distance ~ sqrt(time)) instead of travelling, and it cannot
cross a low-density valley between far-apart modes.  This module holds one remedy for each:

- ``sample_preconditioned_langevin``: a constant SPD matrix ``G`` rescales the drift and the
  noise, ``x <- x + eps G s(x) + sqrt(2 eps) G^{1/2} z``; with ``G`` close to the target's
  covariance every direction relaxes at the same rate.  An optional Metropolis correction
  (``log_prob_fn=``) makes it exact (preconditioned MALA).
- ``sample_kinetic_langevin``: underdamped Langevin dynamics with a momentum and a friction
  ``gamma``, integrated with the BAOAB (or OBABO) splitting.
- ``sample_hmc``: Hamiltonian Monte Carlo, leapfrog trajectories plus a Metropolis test
  (Duane et al., 1987; Neal, 2011).
- ``sample_parallel_tempering``: replica exchange between chains on the tempered targets
  ``p^{1/T}`` (Swendsen & Wang, 1986; Geyer, 1991).

Every sampler follows the contract of CONTRIBUTING.md ("Samplers"), as ``scorelab.samplers``::

    x = sample_<name>(score_fn, [log_prob_fn,] x, step_size, ..., *, generator=None, callback=None, stats=None)

``x`` is an (N, d) tensor of N independent chains (never modified); ``score_fn(x) -> (N, d)``;
``log_prob_fn(x) -> (N,)`` may omit the normalising constant; ``generator`` (a
``torch.Generator`` or an int seed) is the only source of randomness; ``callback`` gets one
dict after every step, with ``"i"``, ``"x"`` and the keys each sampler lists, the same at
every step; ``stats`` (a dict) receives ``"nfe"``, the number of score evaluations per chain,
and ``"acceptance_rate"`` where there is a Metropolis test.  Loops run under ``torch.no_grad()``.
"""

from __future__ import annotations

import math

import torch

from ._checks import (
    as_float_tensor,
    as_spd,
    check_bool,
    check_callable,
    check_callback_stats,
    check_choice,
    check_count,
    check_generator,
    check_levels,
    check_positive,
    check_positive_values,
    check_start,
    checked_log_prob,
    checked_score,
)
from ._random import gaussian_like, metropolis_accept, where_accepted

__all__ = [
    "sample_preconditioned_langevin",
    "sample_kinetic_langevin",
    "sample_hmc",
    "sample_parallel_tempering",
]


# -- evaluations and a constant SPD matrix -------------------------------------------

def _score(score_fn, x: torch.Tensor) -> torch.Tensor:
    return checked_score(score_fn(x), x)


def _log_prob(log_prob_fn, x: torch.Tensor) -> torch.Tensor:
    return checked_log_prob(log_prob_fn(x), x)


class _SPDMatrix:
    """A constant SPD matrix ``A`` given as a scalar, a (d,) diagonal or a (d, d) matrix.

    Provides ``A v``, ``A^{-1} v``, a square root ``L`` with ``A = L L^T`` (Cholesky, or the
    elementwise square root of a diagonal) and ``|L^{-1} v|^2``, all on row vectors (N, d).
    """

    def __init__(self, value, d: int, name: str, dtype: torch.dtype):
        a = as_spd(value, d, name)
        if a.ndim == 1:
            self.diag = a.to(dtype)
            self.sqrt = a.sqrt().to(dtype)
            self.matrix = torch.diag(a).to(dtype)
            return
        L = torch.linalg.cholesky(a)
        self.diag = None
        self.matrix = a.to(dtype)
        self.L = L.to(dtype)
        self.inverse = torch.cholesky_inverse(L).to(dtype)

    def mul(self, v: torch.Tensor) -> torch.Tensor:
        """``v A`` for rows v (N, d) (A is symmetric, so this is ``A v`` per row)."""
        return v * self.diag if self.diag is not None else v @ self.matrix

    def solve(self, v: torch.Tensor) -> torch.Tensor:
        """``A^{-1} v`` per row."""
        return v / self.diag if self.diag is not None else v @ self.inverse

    def sqrt_mul(self, z: torch.Tensor) -> torch.Tensor:
        """``L z`` per row, so that ``z ~ N(0, I)`` gives ``N(0, A)``."""
        return z * self.sqrt if self.diag is not None else z @ self.L.T

    def inv_sqrt_norm2(self, v: torch.Tensor) -> torch.Tensor:
        """``|L^{-1} v|^2 = v^T A^{-1} v`` per row: (N, d) -> (N,)."""
        return (v * self.solve(v)).sum(-1)


# -- preconditioned Langevin ------------------------------------------------------

@torch.no_grad()
def sample_preconditioned_langevin(score_fn, x: torch.Tensor, step_size: float, n_steps: int, *,
                                   preconditioner, log_prob_fn=None, generator=None, callback=None,
                                   stats=None) -> torch.Tensor:
    """Preconditioned Langevin with a constant SPD matrix ``G`` (section 4.4.3, item 1).

    Euler–Maruyama step of ``dX = G grad log p(X) dt + sqrt(2 G) dW``::

        x <- x + eps * G s(x) + sqrt(2 eps) * L z,     G = L L^T (Cholesky), z ~ N(0, I).

    For any constant SPD ``G`` the continuous dynamics still leave ``p`` invariant (the
    Fokker–Planck flux ``G (p grad log p - grad p)`` vanishes at ``p``).  In the coordinates
    ``y = L^{-1} x`` the update is plain Langevin on a target whose covariance is
    ``L^{-1} Sigma L^{-T}``; with ``G = Sigma`` that is the identity, so one step size suits
    every direction.  On ``N(m, Sigma)`` with ``G = Sigma`` each step is the AR(1) map
    ``x - m <- (1 - eps)(x - m) + sqrt(2 eps) L z``; the stationary covariance of the
    discretised chain is ``scorelab.diagnostics.ula_stationary_variance(eps, Sigma, preconditioner=G)``.

    With ``log_prob_fn`` the step becomes a proposal with a Metropolis–Hastings test
    (preconditioned MALA), ``q(y | x) = N(y; x + eps G s(x), 2 eps G)``, which removes the
    discretisation bias.

    Args:
        score_fn: callable (N, d) -> (N, d).
        x: (N, d) starting points (not modified).
        step_size: eps > 0.
        n_steps: number of updates.
        preconditioner: ``G``: a positive number, a (d,) positive diagonal or a (d, d) SPD matrix.
        log_prob_fn: optional callable (N, d) -> (N,), unnormalised log-density; turns on the
            Metropolis correction.
        generator: ``torch.Generator`` or int seed.
        callback: called after each step with ``{"i", "x", "step_size"}`` (plus ``"accepted"``,
            an (N,) bool tensor, with the correction).
        stats: dict filled with ``"nfe"`` (``n_steps``, or ``n_steps + 1`` with the correction) and,
            with the correction, ``"n_log_prob"`` and ``"acceptance_rate"``.

    Returns:
        (N, d) tensor of the final points.
    """
    check_callable(score_fn, "score_fn", "mapping (N, d) points to (N, d) scores")
    if log_prob_fn is not None:
        check_callable(log_prob_fn, "log_prob_fn", "mapping (N, d) points to (N,) log-densities")
    x = check_start(x)
    eps = check_positive(step_size, "step_size")
    n_steps = check_count(n_steps, "n_steps")
    G = _SPDMatrix(preconditioner, x.shape[1], "preconditioner", x.dtype)
    g = check_generator(generator)
    check_callback_stats(callback, stats)
    noise_scale = math.sqrt(2.0 * eps)

    if log_prob_fn is None:
        for i in range(n_steps):
            x = x + eps * G.mul(_score(score_fn, x)) + noise_scale * G.sqrt_mul(gaussian_like(x, g))
            if callback is not None:
                callback({"i": i, "x": x, "step_size": eps})
        if stats is not None:
            stats["nfe"] = n_steps
        return x

    s_x, lp_x = _score(score_fn, x), _log_prob(log_prob_fn, x)
    n_acc = 0.0
    for i in range(n_steps):
        z = gaussian_like(x, g)
        y = x + eps * G.mul(s_x) + noise_scale * G.sqrt_mul(z)
        s_y, lp_y = _score(score_fn, y), _log_prob(log_prob_fn, y)
        # log q(y|x) = -|z|^2 / 2 (y - mean(x) = sqrt(2 eps) L z);
        # log q(x|y) = -|L^{-1}(x - y - eps G s(y))|^2 / (4 eps); constants cancel.
        back = x - y - eps * G.mul(s_y)
        log_alpha = lp_y - lp_x - G.inv_sqrt_norm2(back) / (4.0 * eps) + 0.5 * (z * z).sum(-1)
        accepted = metropolis_accept(log_alpha, g)  # NaN rejects
        x, s_x, lp_x = where_accepted(accepted, (y, s_y, lp_y), (x, s_x, lp_x))
        n_acc += float(accepted.double().mean())
        if callback is not None:
            callback({"i": i, "x": x, "step_size": eps, "accepted": accepted})
    if stats is not None:
        stats["nfe"] = n_steps + 1
        stats["n_log_prob"] = n_steps + 1
        stats["acceptance_rate"] = n_acc / n_steps if n_steps else float("nan")
    return x


# -- underdamped (kinetic) Langevin ----------------------------------------------

@torch.no_grad()
def sample_kinetic_langevin(score_fn, x: torch.Tensor, step_size: float, n_steps: int, *,
                            friction: float = 1.0, mass=None, p0: torch.Tensor | None = None,
                            scheme: str = "BAOAB", return_momentum: bool = False, generator=None,
                            callback=None, stats=None):
    """Underdamped (kinetic) Langevin dynamics with a splitting integrator (section 4.4.3, item 2).

    The state is a position ``x`` and a momentum ``p`` with mass matrix ``M``::

        dx = M^{-1} p dt,    dp = grad log p(x) dt - gamma p dt + sqrt(2 gamma) M^{1/2} dW,

    whose stationary law is ``p(x) N(p; 0, M)``.  The position moves with inertia, so for a
    moderate friction ``gamma`` it travels ballistically instead of diffusing; ``gamma -> inf``
    (with time rescaled) gives back overdamped Langevin, ``gamma -> 0`` Hamiltonian dynamics.

    One step of size ``h`` composes three exactly solvable pieces (Leimkuhler & Matthews, 2013):
    B, the kick ``p += (h/2) s(x)``; A, the drift ``x += (h/2) M^{-1} p``; O, the exact
    Ornstein–Uhlenbeck update ``p <- c p + sqrt(1 - c^2) M^{1/2} z`` with ``c = exp(-gamma h)``.
    ``scheme="BAOAB"`` runs B A O A B (for a Gaussian target its position marginal is exact
    for every stable ``h``, a known property of this splitting, while the momentum read after
    the last kick has variance ``1 - h^2 omega^2 / 4`` per normal mode of frequency omega);
    ``"OBABO"`` runs O(h/2) B A A B O(h/2), i.e. velocity Verlet wrapped in two half-thermostats,
    whose positions are too wide on a Gaussian by ``1 / (1 - h^2 omega^2 / 4)``.  Both reuse the
    last score, so each step costs one score evaluation.

    Args:
        score_fn: callable (N, d) -> (N, d).
        x: (N, d) starting positions (not modified).
        step_size: h > 0.
        n_steps: number of steps.
        friction: gamma >= 0 (0 gives energy-conserving Hamiltonian flow, no noise).
        mass: ``M``: None (identity), a positive number, a (d,) diagonal or a (d, d) SPD matrix.
        p0: (N, d) initial momenta; drawn from ``N(0, M)`` if omitted.
        scheme: ``"BAOAB"`` or ``"OBABO"``.
        return_momentum: also return the final momenta.
        generator: ``torch.Generator`` or int seed.
        callback: called after each step with ``{"i", "x", "p", "step_size", "friction"}``.
        stats: dict filled with ``"nfe"`` (``n_steps + 1``).

    Returns:
        (N, d) final positions, or ``(x, p)`` with ``return_momentum=True``.
    """
    check_callable(score_fn, "score_fn", "mapping (N, d) points to (N, d) scores")
    x = check_start(x)
    h = check_positive(step_size, "step_size")
    n_steps = check_count(n_steps, "n_steps")
    gamma = check_positive(friction, "friction", allow_zero=True)
    check_choice(scheme, "scheme", ("BAOAB", "OBABO"))
    check_bool(return_momentum, "return_momentum")
    M = _SPDMatrix(1.0 if mass is None else mass, x.shape[1], "mass", x.dtype)
    g = check_generator(generator)
    check_callback_stats(callback, stats)
    if p0 is None:
        p = M.sqrt_mul(gaussian_like(x, g))
    else:
        if not isinstance(p0, torch.Tensor) or p0.shape != x.shape or not p0.is_floating_point():
            got = tuple(p0.shape) if isinstance(p0, torch.Tensor) else type(p0).__name__
            raise ValueError(f"p0: expected a floating tensor of shape {tuple(x.shape)} like x, got {got}")
        p = p0.detach().to(x.dtype).clone()

    def ou(p: torch.Tensor, dt: float) -> torch.Tensor:
        c = math.exp(-gamma * dt)
        return c * p + math.sqrt(max(0.0, 1.0 - c * c)) * M.sqrt_mul(gaussian_like(p, g))

    s = _score(score_fn, x)
    for i in range(n_steps):
        if scheme == "BAOAB":
            p = p + 0.5 * h * s
            x = x + 0.5 * h * M.solve(p)
            p = ou(p, h)
            x = x + 0.5 * h * M.solve(p)
            s = _score(score_fn, x)
            p = p + 0.5 * h * s
        else:  # OBABO
            p = ou(p, 0.5 * h)
            p = p + 0.5 * h * s
            x = x + h * M.solve(p)
            s = _score(score_fn, x)
            p = p + 0.5 * h * s
            p = ou(p, 0.5 * h)
        if callback is not None:
            callback({"i": i, "x": x, "p": p, "step_size": h, "friction": gamma})
    if stats is not None:
        stats["nfe"] = n_steps + 1
    return (x, p) if return_momentum else x


# -- Hamiltonian Monte Carlo -------------------------------------------------------

@torch.no_grad()
def sample_hmc(score_fn, log_prob_fn, x: torch.Tensor, step_size: float, n_leapfrog: int, n_steps: int, *,
               mass=None, step_jitter: float = 0.0, generator=None, callback=None, stats=None) -> torch.Tensor:
    """Hamiltonian Monte Carlo with leapfrog and a Metropolis test (section 4.4.3, item 2).

    Duane, Kennedy, Pendleton & Roweth (1987); Neal (2011), "MCMC using Hamiltonian dynamics".
    Each iteration draws a fresh momentum ``p ~ N(0, M)``, follows the Hamiltonian
    ``H(x, p) = -log p(x) + p^T M^{-1} p / 2`` for ``n_leapfrog`` leapfrog steps::

        p += (h/2) s(x);  x += h M^{-1} p;  p += (h/2) s(x)      (repeated L times)

    and accepts the end point with probability ``min(1, exp(H_old - H_new))``.  Leapfrog is
    volume-preserving and reversible, so the test makes ``p(x)`` exactly invariant; because
    it nearly conserves ``H``, long moves (about ``L h``) are still accepted.  The score at the
    current point is cached, so an iteration costs ``n_leapfrog`` score evaluations.

    With a fixed ``h`` and ``L`` a trajectory can return almost to its start in some direction
    (its length is close to a period of the local oscillation), so that direction never mixes;
    ``step_jitter = j`` draws each chain's step uniformly from ``h [1 - j, 1 + j]`` at every
    iteration, independently of the state, which breaks such resonances and keeps ``p`` invariant.

    Args:
        score_fn: callable (N, d) -> (N, d), the gradient of ``log_prob_fn``.
        log_prob_fn: callable (N, d) -> (N,), log-density up to a constant.
        x: (N, d) starting points (not modified).
        step_size: leapfrog step h > 0.
        n_leapfrog: leapfrog steps per iteration, L >= 1.
        n_steps: number of HMC iterations.
        mass: ``M``: None (identity), a positive number, a (d,) diagonal or a (d, d) SPD matrix
            (``M = Sigma^{-1}`` is the HMC analogue of the preconditioner ``G = Sigma``).
        step_jitter: j in [0, 1): relative half-width of the random step (0: fixed step).
        generator: ``torch.Generator`` or int seed.
        callback: called after each iteration with ``{"i", "x", "step_size", "accepted", "path"}``;
            ``path`` is the (L + 1, N, d) leapfrog trajectory of the proposal (for drawing).
        stats: dict filled with ``"nfe"`` (``1 + n_steps * n_leapfrog``), ``"n_log_prob"``,
            ``"acceptance_rate"`` (float) and ``"acceptance_per_step"`` ((n_steps,) tensor).

    Returns:
        (N, d) tensor of the final points.
    """
    check_callable(score_fn, "score_fn", "mapping (N, d) points to (N, d) scores")
    check_callable(log_prob_fn, "log_prob_fn", "mapping (N, d) points to (N,) log-densities")
    x = check_start(x)
    h = h0 = check_positive(step_size, "step_size")
    n_leapfrog = check_count(n_leapfrog, "n_leapfrog", minimum=1)
    n_steps = check_count(n_steps, "n_steps")
    M = _SPDMatrix(1.0 if mass is None else mass, x.shape[1], "mass", x.dtype)
    jitter = check_positive(step_jitter, "step_jitter", allow_zero=True)
    if not jitter < 1.0:
        raise ValueError(f"step_jitter: expected a number in [0, 1), got {step_jitter!r}")
    g = check_generator(generator)
    check_callback_stats(callback, stats)

    s_x, lp_x = _score(score_fn, x), _log_prob(log_prob_fn, x)
    per_step = torch.zeros(n_steps, dtype=torch.float64)
    for i in range(n_steps):
        p = M.sqrt_mul(gaussian_like(x, g))
        if jitter:
            u = torch.rand(x.shape[0], 1, generator=g, dtype=x.dtype, device=x.device)
            h = h0 * (1.0 + jitter * (2.0 * u - 1.0))    # (N, 1): one step per chain
        H_old = -lp_x + 0.5 * M.inv_sqrt_norm2(p)
        y, s_y = x, s_x
        path = [y] if callback is not None else None
        for _ in range(n_leapfrog):
            p = p + 0.5 * h * s_y
            y = y + h * M.solve(p)
            s_y = _score(score_fn, y)
            p = p + 0.5 * h * s_y
            if path is not None:
                path.append(y)
        lp_y = _log_prob(log_prob_fn, y)
        H_new = -lp_y + 0.5 * M.inv_sqrt_norm2(p)
        accepted = metropolis_accept(H_old - H_new, g)  # NaN (diverged) rejects
        x, s_x, lp_x = where_accepted(accepted, (y, s_y, lp_y), (x, s_x, lp_x))
        per_step[i] = accepted.double().mean()
        if callback is not None:
            callback({"i": i, "x": x, "step_size": h0, "accepted": accepted, "path": torch.stack(path)})
    if stats is not None:
        stats["nfe"] = 1 + n_steps * n_leapfrog
        stats["n_log_prob"] = 1 + n_steps
        stats["acceptance_per_step"] = per_step
        stats["acceptance_rate"] = float(per_step.mean()) if n_steps else float("nan")
    return x


# -- parallel tempering --------------------------------------------------------------

@torch.no_grad()
def sample_parallel_tempering(score_fn, log_prob_fn, x: torch.Tensor, temperatures, step_size, n_steps: int, *,
                              swap_every: int = 1, local: str = "mala", return_all: bool = False,
                              generator=None, callback=None, stats=None) -> torch.Tensor:
    """Parallel tempering (replica exchange) with Langevin/MALA local moves (section 4.4.3, item 3).

    Swendsen & Wang (1986); Geyer (1991).  K replicas run side by side on the tempered targets
    ``p_k ∝ p^{1/T_k}`` with ``1 = T_1 < T_2 < ... < T_K``, whose score is ``s(x) / T_k`` and
    log-density ``log p(x) / T_k``.  Hot replicas see flattened barriers and wander between
    modes; every ``swap_every`` steps neighbouring replicas ``(k, k+1)`` propose to exchange
    states, accepted with probability::

        min(1, exp((1/T_k - 1/T_{k+1}) (log p(x_{k+1}) - log p(x_k))))

    which keeps the product of all tempered targets invariant, so the ``T = 1`` replica still
    samples ``p`` exactly (with ``local="mala"``) while inheriting the hot replicas' mode hops.
    Swaps alternate between the even pairs (0,1), (2,3), ... and the odd pairs (1,2), (3,4), ...
    (the deterministic even–odd scheme), so a state can climb the ladder in consecutive rounds.
    Each of the N columns of ``x`` is an independent tempering system.

    Args:
        score_fn: callable (M, d) -> (M, d), the score of the target (T = 1).
        log_prob_fn: callable (M, d) -> (M,), its log-density up to a constant.
        x: (N, d) starting points shared by every replica, or (K, N, d) one set per replica.
        temperatures: (K,) strictly increasing, starting at exactly 1.0.
        step_size: local step: a number for every replica, or a (K,) sequence, one per temperature
            (a tempered Gaussian of variance ``T s^2`` tolerates a step ``T`` times larger).
        n_steps: local steps per replica.
        swap_every: propose swaps after every ``swap_every`` local steps.
        local: ``"mala"`` (Metropolis-adjusted, exact) or ``"langevin"`` (unadjusted, biased by
            the step size as in section 4.4.2).
        return_all: return all replicas (K, N, d) instead of the T = 1 chain (N, d).
        generator: ``torch.Generator`` or int seed.
        callback: called after each step with ``{"i", "x", "x_all", "step_size", "temperatures",
            "swapped"}``: ``x`` the T = 1 replica (N, d), ``x_all`` all replicas (K, N, d), ``swapped``
            a (K - 1, N) bool tensor of the swaps made at this step (all False between rounds).
        stats: dict filled with ``"nfe"`` (``K (n_steps + 1)`` score evaluations per chain: every
            replica costs one), ``"acceptance_rate"`` (local MALA acceptance of the T = 1 replica),
            ``"acceptance_per_temperature"`` ((K,) tensor), ``"swap_acceptance"`` ((K - 1,) tensor of
            the accepted fraction of proposed swaps per adjacent pair) and ``"n_swap_rounds"``.

    Returns:
        (N, d) final states of the T = 1 replica, or (K, N, d) with ``return_all=True``.
    """
    check_callable(score_fn, "score_fn", "mapping (M, d) points to (M, d) scores")
    check_callable(log_prob_fn, "log_prob_fn", "mapping (M, d) points to (M,) log-densities")
    temps = check_levels(temperatures, "temperatures", order="increasing", dtype=torch.float64,
                         what="temperatures")
    if float(temps[0]) != 1.0:
        raise ValueError(f"temperatures: expected values starting at exactly 1.0 (the target), got {temps.tolist()}")
    K = temps.numel()
    start = "(N, d) or (K, N, d)"
    if isinstance(x, torch.Tensor) and x.ndim == 3:
        if x.shape[0] != K:
            raise ValueError(f"x: expected (N, d) or ({K}, N, d) for {K} temperatures, got {tuple(x.shape)}")
        x = torch.stack([check_start(x[k], shape=start) for k in range(K)])
    else:
        x = check_start(x, shape=start).unsqueeze(0).repeat(K, 1, 1)
    _, N, d = x.shape
    eps = as_float_tensor(step_size, "step_size", torch.float64)
    if eps.ndim == 0:
        eps = eps.expand(K)
    if eps.shape != (K,):
        raise ValueError(f"step_size: expected a number or a ({K},) sequence (one per temperature), "
                         f"got shape {tuple(eps.shape)}")
    check_positive_values(eps, "step_size")
    n_steps = check_count(n_steps, "n_steps")
    swap_every = check_count(swap_every, "swap_every", minimum=1)
    check_choice(local, "local", ("mala", "langevin"))
    check_bool(return_all, "return_all")
    g = check_generator(generator)
    check_callback_stats(callback, stats)

    dtype = x.dtype
    beta = (1.0 / temps).to(dtype)                       # (K,) inverse temperatures
    eps_k = eps.to(dtype).view(K, 1, 1)                  # (K, 1, 1) per-replica step
    noise_k = torch.sqrt(2.0 * eps_k)
    b3 = beta.view(K, 1, 1)

    def evaluate(z: torch.Tensor):
        """Untempered score (K, N, d) and log-density (K, N) of all replicas in one call."""
        flat = z.reshape(K * N, d)
        return _score(score_fn, flat).view(K, N, d), _log_prob(log_prob_fn, flat).view(K, N)

    s, lp = evaluate(x)
    acc = torch.zeros(K, dtype=torch.float64)
    swap_acc = torch.zeros(max(K - 1, 0), dtype=torch.float64)
    swap_tried = torch.zeros(max(K - 1, 0), dtype=torch.float64)
    n_rounds = 0
    no_swap = torch.zeros(max(K - 1, 0), N, dtype=torch.bool)

    for i in range(n_steps):
        # local move on every replica, tempered score s / T
        z = gaussian_like(x, g)
        y = x + eps_k * b3 * s + noise_k * z
        s_y, lp_y = evaluate(y)
        if local == "mala":
            back = x - y - eps_k * b3 * s_y
            log_alpha = beta[:, None] * (lp_y - lp) - (back * back).sum(-1) / (4.0 * eps_k[:, :, 0]) \
                + 0.5 * (z * z).sum(-1)
            accepted = metropolis_accept(log_alpha, g)
            x, s, lp = where_accepted(accepted, (y, s_y, lp_y), (x, s, lp))
            acc += accepted.double().mean(-1)
        else:
            x, s, lp = y, s_y, lp_y
            acc += 1.0

        swapped = no_swap
        if K > 1 and (i + 1) % swap_every == 0:
            first = n_rounds % 2                         # even pairs, then odd pairs
            lo = torch.arange(first, K - 1, 2)
            if lo.numel():
                hi = lo + 1
                log_r = (beta[lo] - beta[hi])[:, None] * (lp[hi] - lp[lo])     # (P, N)
                ok = metropolis_accept(log_r, g)
                swapped = no_swap.clone()
                swapped[lo] = ok
                swap_acc[lo] += ok.double().mean(-1)
                swap_tried[lo] += 1
                # exchange states (and cached score / log-density) of accepted pairs
                perm = torch.arange(K).unsqueeze(-1).repeat(1, N)              # (K, N) source replica
                perm[lo] = torch.where(ok, hi[:, None], lo[:, None])
                perm[hi] = torch.where(ok, lo[:, None], hi[:, None])
                cols = torch.arange(N).unsqueeze(0).expand(K, N)
                x, s, lp = x[perm, cols], s[perm, cols], lp[perm, cols]
            n_rounds += 1
        if callback is not None:
            callback({"i": i, "x": x[0], "x_all": x, "step_size": float(eps[0]), "temperatures": temps,
                      "swapped": swapped})

    if stats is not None:
        stats["nfe"] = K * (n_steps + 1)
        stats["n_log_prob"] = K * (n_steps + 1)
        per_t = acc / n_steps if n_steps else torch.full((K,), float("nan"), dtype=torch.float64)
        stats["acceptance_per_temperature"] = per_t
        stats["acceptance_rate"] = float(per_t[0])
        stats["swap_acceptance"] = torch.where(swap_tried > 0, swap_acc / swap_tried.clamp_min(1),
                                               torch.full_like(swap_acc, float("nan")))
        stats["n_swap_rounds"] = n_rounds
    return x if return_all else x[0]
