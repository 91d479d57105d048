"""How well does a Markov chain sample? Autocorrelation, effective sample size, ULA bias (4.4).

- ``autocorrelation``: normalised autocorrelation of a chain at lags ``0..max_lag`` (FFT).
- ``integrated_autocorrelation_time`` and ``effective_sample_size``: Geyer's initial
  positive (monotone) sequence estimator, per coordinate, summed over independent chains.
- ``ula_stationary_variance`` and ``ula_autocorrelation``: closed forms for the unadjusted
  Langevin algorithm on a Gaussian, i.e. the exact discretisation bias of section 4.4.2.
- ``distance_to_target_curve``: sliced Wasserstein distance to exact samples at every
  recorded iteration, the picture of "how long until the chain forgets its start".

Chains are laid out time first: a chain of T states is a (T,) tensor (one scalar series),
a (T, d) tensor (one chain in d dimensions), or a (T, N, d) tensor (N independent chains,
what ``scorelab.plotting.TrajectoryRecorder`` records from a sampler's callback).
"""

from __future__ import annotations

import torch

from ._checks import as_float_tensor, as_spd, check_cholesky, check_count, check_index, check_positive

__all__ = [
    "autocorrelation",
    "integrated_autocorrelation_time",
    "effective_sample_size",
    "ula_stationary_variance",
    "ula_autocorrelation",
    "distance_to_target_curve",
]


def _as_chain(chain, name: str = "chain", min_length: int = 4) -> torch.Tensor:
    if not isinstance(chain, torch.Tensor):
        try:
            chain = torch.as_tensor(chain)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{name}: expected a tensor or array of shape (T,), (T, d) or (T, N, d), "
                            f"got {type(chain).__name__}") from exc
    if chain.is_complex() or chain.dtype == torch.bool:
        raise TypeError(f"{name}: expected real numbers, got dtype {chain.dtype}")
    if chain.ndim not in (1, 2, 3):
        raise ValueError(f"{name}: expected shape (T,), (T, d) or (T, N, d) with time first, got {tuple(chain.shape)}")
    if chain.shape[0] < min_length:
        raise ValueError(f"{name}: expected at least {min_length} time steps along axis 0, got {chain.shape[0]}")
    if chain.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty chain, got shape {tuple(chain.shape)}")
    chain = chain.detach().to(torch.float64)
    if not bool(torch.isfinite(chain).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or inf (did the sampler diverge?)")
    return chain


def _acf(x: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Autocorrelation along axis 0 of a float64 (T, ...) tensor, lags 0..max_lag."""
    T = x.shape[0]
    xc = x - x.mean(0, keepdim=True)
    n_fft = 1 << (2 * T - 1).bit_length()            # zero-pad: linear, not circular, correlation
    f = torch.fft.rfft(xc, n=n_fft, dim=0)
    acov = torch.fft.irfft(f * f.conj(), n=n_fft, dim=0)[: max_lag + 1] / T
    var = acov[:1]
    # A constant series carries no information: report perfect correlation rather than 0/0.
    return torch.where(var > 0, acov / torch.where(var > 0, var, torch.ones_like(var)), torch.ones_like(acov))


def autocorrelation(chain, max_lag: int | None = None) -> torch.Tensor:
    """Normalised autocorrelation ``rho_k`` of each series of a chain, via the FFT.

    ``rho_k = gamma_k / gamma_0`` with ``gamma_k = (1/T) sum_{t<T-k} (x_t - m)(x_{t+k} - m)`` and
    ``m`` the series' own mean (the standard biased, positive-definite estimator).  Computed
    for all lags at once by zero-padded FFT in O(T log T).  Section 4.4: a sampler whose
    ``rho_k`` decays slowly needs many steps per independent sample.

    Args:
        chain: (T,), (T, d) or (T, N, d), time first; every other entry is a separate series.
        max_lag: largest lag (default ``T - 1``, at most ``T - 1``).

    Returns:
        float64 tensor of shape ``(max_lag + 1,) + chain.shape[1:]``; entry 0 is 1.
    """
    x = _as_chain(chain, min_length=2)
    T = x.shape[0]
    if max_lag is None:
        max_lag = T - 1
    max_lag = check_index(max_lag, T, "max_lag", f"a lag of a chain of length T = {T}, an int")
    return _acf(x, max_lag)


def integrated_autocorrelation_time(chain, *, monotone: bool = True) -> torch.Tensor:
    """Integrated autocorrelation time ``tau = 1 + 2 sum_{k>=1} rho_k`` of each series.

    Geyer (1992), "Practical Markov chain Monte Carlo": the sums of adjacent pairs
    ``Gamma_m = rho_{2m} + rho_{2m+1}`` are positive for a reversible chain, so the sum is
    truncated at the first non-positive ``Gamma_m`` (initial positive sequence), and with
    ``monotone=True`` each ``Gamma_m`` is also capped by its predecessor (initial monotone
    sequence), which damps the noise in the tail.  ``tau = -1 + 2 sum_m Gamma_m``.

    Args:
        chain: (T,), (T, d) or (T, N, d), time first.
        monotone: apply Geyer's monotone correction.

    Returns:
        float64 tensor of shape ``chain.shape[1:]`` (a 0-d tensor for a (T,) chain).
    """
    x = _as_chain(chain)
    T = x.shape[0]
    n_pairs = T // 2
    rho = _acf(x, 2 * n_pairs - 1)
    pairs = rho.reshape((n_pairs, 2) + rho.shape[1:]).sum(1)     # Gamma_m, (M, ...)
    positive = torch.cumprod((pairs > 0).to(torch.float64), dim=0)  # 1 until the first Gamma_m <= 0
    if monotone:
        pairs = torch.cummin(pairs, dim=0).values
    tau = -1.0 + 2.0 * (pairs * positive).sum(0)
    return tau.clamp_min(1.0 / T)


def effective_sample_size(chain, *, monotone: bool = True) -> torch.Tensor:
    """Effective sample size ``T / tau`` per coordinate, summed over independent chains.

    The number of independent draws that would estimate a mean as precisely as the chain
    does (Geyer's initial positive / monotone sequence, ``integrated_autocorrelation_time``).
    For an AR(1) series ``x_{t+1} = rho x_t + noise`` it tends to ``T (1 - rho) / (1 + rho)``;
    antithetic chains (``rho < 0``) give more than T.

    Args:
        chain: (T,) one scalar chain; (T, d) one chain in d dimensions; (T, N, d) N independent
            chains, whose sample sizes add up.
        monotone: apply Geyer's monotone correction.

    Returns:
        float64 tensor: 0-d for (T,), (d,) for (T, d) and (T, N, d).
    """
    x = _as_chain(chain)
    ess = x.shape[0] / integrated_autocorrelation_time(x, monotone=monotone)
    return ess.sum(0) if x.ndim == 3 else ess


def _ula_f(step: float, lam: torch.Tensor, name: str) -> torch.Tensor:
    """Stationary variance ``lam / (1 - step / (2 lam))`` of the scalar ULA recursion."""
    if not bool((lam > 0).all()):
        raise ValueError(f"{name}: expected positive variances / eigenvalues, got {lam.tolist()}")
    limit = 2.0 * float(lam.min())
    if not step < limit:
        raise ValueError(
            f"step_size: ULA on this Gaussian is unstable (its variance diverges) unless step_size < 2 * "
            f"smallest variance = {limit:.6g}, got {step:.6g}")
    return lam / (1.0 - step / (2.0 * lam))


def ula_stationary_variance(step_size: float, target_variance, *, preconditioner=None):
    """Exact stationary (co)variance of unadjusted Langevin on a Gaussian target (section 4.4.2).

    On ``N(0, s^2)`` the ULA step ``x' = x + eps (-x / s^2) + sqrt(2 eps) z`` is the AR(1) map
    ``x' = a x + sqrt(2 eps) z`` with ``a = 1 - eps / s^2``.  Its variance ``v`` solves
    ``v = a^2 v + 2 eps``, so::

        v = 2 eps / (1 - a^2) = s^2 / (1 - eps / (2 s^2)),      stable iff 0 < eps < 2 s^2.

    The bias ``v / s^2 - 1 ≈ eps / (2 s^2)`` is first order in the step: the Euler–Maruyama
    chain samples a slightly wider law than the target.  For ``N(m, Sigma)`` the same holds
    along each eigenvector of ``Sigma``: ``V diag(f(lambda_i)) V^T`` with ``f`` as above.  With a
    constant preconditioner ``G = L L^T`` (``scorelab.mcmc.sample_preconditioned_langevin``) the
    chain in ``y = L^{-1} x`` is plain ULA on covariance ``L^{-1} Sigma L^{-T}``, so the answer is
    ``L f(L^{-1} Sigma L^{-T}) L^T``.

    Args:
        step_size: eps > 0.
        target_variance: a number ``s^2`` (returns a float); a (d,) tensor of variances along
            independent axes (returns (d,)); or a (d, d) covariance matrix (returns (d, d)).
        preconditioner: optional ``G``: a number, (d,) diagonal or (d, d) SPD matrix.

    Returns:
        float, or float64 tensor shaped like ``target_variance``.

    Raises:
        ValueError if the step is unstable (``eps >= 2 * smallest eigenvalue`` of the
        preconditioned covariance), where no stationary law exists.
    """
    eps = check_positive(step_size, "step_size")
    v = as_float_tensor(target_variance, "target_variance", torch.float64)
    if v.ndim > 2 or (v.ndim == 2 and v.shape[0] != v.shape[1]):
        raise ValueError(f"target_variance: expected a number, a (d,) vector or a (d, d) matrix, got {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("target_variance: expected finite values")
    d = 1 if v.ndim == 0 else v.shape[0]
    if preconditioner is None:
        G = None
    else:
        G = as_spd(preconditioner, d, "preconditioner")
        if v.ndim == 0:
            G = G.reshape(1)                                 # d = 1: a (1, 1) matrix is a number

    if v.ndim <= 1 and (G is None or G.ndim == 1):          # independent axes: elementwise
        scale = torch.ones_like(v) if G is None else (G if v.ndim else G.reshape(()))
        out = scale * _ula_f(eps, v / scale, "target_variance")
        return float(out) if v.ndim == 0 else out

    S = torch.diag(v) if v.ndim == 1 else v
    if not torch.allclose(S, S.T, rtol=1e-8, atol=1e-12):
        raise ValueError("target_variance: expected a symmetric covariance matrix")
    if G is None:
        L = torch.eye(d, dtype=torch.float64)
    else:
        L = check_cholesky(torch.diag(G) if G.ndim == 1 else G, "preconditioner")
    Li = torch.linalg.inv(L)
    S_tilde = Li @ S @ Li.T
    lam, V = torch.linalg.eigh(0.5 * (S_tilde + S_tilde.T))
    inner = V @ torch.diag(_ula_f(eps, lam, "target_variance")) @ V.T
    out = L @ inner @ L.T
    return torch.diagonal(out) if v.ndim == 1 else out


def ula_autocorrelation(step_size: float, target_variance: float, lags) -> torch.Tensor:
    """Exact lag-k autocorrelation ``(1 - eps / s^2)^k`` of ULA on ``N(m, s^2)`` (section 4.4.2).

    The stationary ULA chain on a Gaussian is AR(1) with coefficient ``a = 1 - eps / s^2``, so
    its autocorrelation is ``a^k``; along an eigen-direction of variance ``s^2`` the same holds
    in d dimensions.  A tiny step (``a`` near 1) means strongly correlated, slowly mixing states.

    Args:
        step_size: eps in (0, 2 s^2).
        target_variance: the variance s^2 along the direction of interest.
        lags: an int or a 1-D sequence of non-negative ints.

    Returns:
        float64 tensor shaped like ``lags``.
    """
    eps = check_positive(step_size, "step_size")
    s2 = check_positive(target_variance, "target_variance")
    if not eps < 2 * s2:
        raise ValueError(f"step_size: expected step_size < 2 * target_variance = {2 * s2:.6g} (stable ULA), got {eps}")
    k = torch.as_tensor(lags)
    if k.is_floating_point() or k.dtype == torch.bool or bool((k < 0).any()):
        raise ValueError(f"lags: expected non-negative ints, got {lags!r}")
    return (1.0 - eps / s2) ** k.to(torch.float64)


def _frames(states) -> list[torch.Tensor]:
    if hasattr(states, "trajectory"):                       # a TrajectoryRecorder
        states = states.trajectory
    if isinstance(states, torch.Tensor):
        if states.ndim != 3:
            raise ValueError(f"states: expected a (T, N, d) tensor of recorded frames, got shape {tuple(states.shape)}")
        return list(states.unbind(0))
    if isinstance(states, (list, tuple)):
        frames = []
        for k, s in enumerate(states):
            if isinstance(s, dict):
                if "x" not in s:
                    raise ValueError(f"states[{k}]: a callback dict must hold the particles under 'x'")
                s = s["x"]
            if not isinstance(s, torch.Tensor) or s.ndim != 2:
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ValueError(f"states[{k}]: expected an (N, d) tensor or a callback dict, got {got}")
            frames.append(s)
        return frames
    raise TypeError("states: expected a (T, N, d) tensor, a list of (N, d) tensors or callback dicts, "
                    f"or a TrajectoryRecorder, got {type(states).__name__}")


def distance_to_target_curve(states, exact_samples: torch.Tensor, *, every: int = 1, n_projections: int = 256,
                             seed: int = 0) -> torch.Tensor:
    """Sliced Wasserstein distance to exact samples at every recorded iteration (section 4.4.2).

    Uses ``scorelab.metrics.sliced_wasserstein`` with the same random projections for every
    frame (common random numbers), so the curve is smooth and only the particles change.
    The curve falls while the chain forgets its start and then flattens at a plateau: the
    sampler's discretisation bias plus the Monte Carlo floor of N particles (compare with
    ``scorelab.metrics.sliced_wasserstein_floor``).

    Args:
        states: the particles over time: a (T, N, d) tensor, a list of (N, d) tensors, a list of
            callback dicts holding ``"x"``, or a ``TrajectoryRecorder``.
        exact_samples: (M, d) exact draws from the target.
        every: use every ``every``-th frame.
        n_projections: projection directions of the sliced distance.
        seed: seed of the projection directions (the same for all frames).

    Returns:
        float64 tensor (ceil(T / every),) of distances, entry k for frame ``k * every``.
    """
    from .metrics import sliced_wasserstein

    frames = _frames(states)
    if not frames:
        raise ValueError("states: expected at least one recorded frame, got none")
    every = check_count(every, "every", minimum=1)
    if not isinstance(exact_samples, torch.Tensor) or exact_samples.ndim != 2:
        raise ValueError("exact_samples: expected an (M, d) tensor of exact draws")
    if exact_samples.shape[1] != frames[0].shape[1]:
        raise ValueError(f"exact_samples: expected dimension d={frames[0].shape[1]} like the states, "
                         f"got {exact_samples.shape[1]}")
    out = [sliced_wasserstein(f, exact_samples, n_projections=n_projections,
                              generator=torch.Generator().manual_seed(int(seed)))
           for f in frames[::every]]
    return torch.tensor(out, dtype=torch.float64)
