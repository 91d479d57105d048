"""Forward SDEs of the score-SDE framework and their exact scores (section 4.5).

Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
Equations".  A forward SDE ``dx = f(x, t) dt + g(t) dW`` carries data at ``t = 0`` to a
simple prior at ``t = T``; running it backwards needs only the score of the marginals
``p_t`` (section 4.5.2), and the probability-flow ODE shares those marginals (4.5.3).

The three SDEs of the paper all have a *linear* drift ``f(x, t) = f(t) x``, so the law of
``x(t)`` given ``x(0)`` is Gaussian::

    x(t) = alpha(t) x(0) + sigma(t) eps,    eps ~ N(0, I)

Every class exposes the same small surface as ``sde_lib.py`` of the paper's code, so the
two can be read side by side: ``sde(x, t) -> (drift, diffusion)``, ``marginal_prob(x, t)
-> (mean, std)``, ``prior_sampling(shape)``, ``prior_logp(z)``, ``discretize(x, t)``,
``reverse(score_fn, probability_flow=False)``, ``T`` and ``N``.  What differs between
SDEs is asked from the object through scalar coefficient functions of ``t``
(``drift_coef``, ``diffusion_coef``, ``alpha``, ``sigma``, ``corrector_alpha``,
``noise_ratio``), never through ``isinstance`` chains; and tensors of any rank are
broadcast with ``append_dims``, so 1-D points (N, 1), 2-D points (N, 2) and images
(N, C, H, W) all work.

Shapes: ``x`` is (N, ...) with the batch first; ``t`` is an (N,) tensor (a number or a
0-d tensor is broadcast to the batch); coefficient functions map (N,) to (N,).

The module also holds the two bridges of section 4.5.1: ``eps_to_score`` / ``score_to_eps``
(DDPM's noise prediction is a rescaled score) and ``VPSDE.ddpm_schedule`` (DDPM's
discrete schedule is the VP SDE sampled on a grid).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from ._checks import (
    as_float_tensor,
    check_batch,
    check_bool,
    check_callable,
    check_count,
    check_generator,
    check_output,
    check_positive,
    check_positive_values,
    check_shared_time,
    check_times,
    check_type,
)
from .distributions import (
    EmpiricalDistribution,
    Gaussian,
    GaussianMixture,
    diffused_logits,
    isotropic_logits,
    softmax_components,
)

__all__ = [
    "append_dims",
    "SDE",
    "VESDE",
    "VPSDE",
    "SubVPSDE",
    "ReverseSDE",
    "exact_score_fn",
    "eps_to_score",
    "score_to_eps",
]

_LOG_2PI = math.log(2 * math.pi)
_SDE_TYPES = "a scorelab SDE (VESDE, VPSDE, SubVPSDE)"


# -- broadcasting ------------------------------------------------------------------------

def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton axes to ``v`` until it has ``ndim`` axes.

    ``append_dims(t, x.ndim)`` turns a per-example (N,) coefficient into (N, 1) for points
    (N, d) and into (N, 1, 1, 1) for images (N, C, H, W), so ``coef * x`` broadcasts.
    """
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"v: expected a torch.Tensor, got {type(v).__name__}")
    extra = ndim - v.ndim
    if extra < 0:
        raise ValueError(f"append_dims: v has {v.ndim} axes, more than the requested {ndim}")
    return v.reshape(v.shape + (1,) * extra)


# -- the common surface ------------------------------------------------------------

class SDE:
    """A forward SDE ``dx = f(t) x dt + g(t) dW`` on ``[0, T]`` with Gaussian transitions.

    Subclasses define the scalar coefficient functions; everything else (``sde``,
    ``marginal_prob``, ``prior_sampling``, ``prior_logp``, ``discretize``, ``reverse``,
    ``perturb``, ``marginal``) is shared.  ``N`` is the number of discretisation steps used
    by ``discretize`` when no ``dt`` is given (the number of DDPM/SMLD noise levels).
    """

    T: float = 1.0
    prior_std: float = 1.0

    def __init__(self, N: int = 1000):
        self.N = check_count(N, "N", minimum=1)

    # -- scalar coefficients, (N,) -> (N,); overridden by subclasses ----------------
    def drift_coef(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """``f(t)`` with drift ``f(x, t) = f(t) x``."""
        raise NotImplementedError

    def diffusion_coef(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """``g(t)``."""
        raise NotImplementedError

    def alpha(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """Signal scale of the marginal: ``E[x(t) | x(0)] = alpha(t) x(0)``."""
        raise NotImplementedError

    def sigma(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """Noise standard deviation of the marginal: ``Std[x(t) | x(0)] = sigma(t)``."""
        raise NotImplementedError

    def corrector_alpha(self, t: torch.Tensor, dt) -> torch.Tensor:
        """``alpha_i`` of the Langevin corrector step ``2 alpha_i (snr |z| / |s|)^2`` (paper, Alg. 4/5).

        1 for VE; ``1 - beta_i = alpha(t)^2 / alpha(t - dt)^2`` for the VP family, the DDPM
        factor of the step of length ``dt`` (a number or (N,)) that ends at t.  (N,) -> (N,).
        """
        return torch.ones_like(t)

    def noise_ratio(self, t: torch.Tensor) -> torch.Tensor:
        """``sigma(t) / alpha(t)``: the noise level of ``x / alpha(t)`` (the sigma of Karras et al. 2022)."""
        return self.sigma(t) / self.alpha(t)

    def inverse_noise_ratio(self, r: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """The time ``t`` at which ``noise_ratio(t) == r``; (M,) -> (M,)."""
        raise NotImplementedError

    # -- time handling ---------------------------------------------------------------
    def _time(self, t, x: torch.Tensor) -> torch.Tensor:
        """``t`` as an (N,) tensor of ``x``'s dtype and device, each in ``[0, T]`` (``_checks.check_times``)."""
        return check_times(t, x, self.T)

    def _dt(self, dt) -> float:
        return self.T / self.N if dt is None else check_positive(dt, "dt")

    # -- the score-SDE surface -------------------------------------------------------
    def sde(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift ``f(t) x`` (shape of x) and diffusion ``g(t)`` ((N,)) of the forward SDE."""
        x = check_batch(x, images=True)
        t = self._time(t, x)
        return append_dims(self.drift_coef(t), x.ndim) * x, self.diffusion_coef(t)

    def marginal_prob(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``alpha(t) x`` (shape of x) and std ``sigma(t)`` ((N,)) of ``p_0t(x(t) | x(0) = x)``."""
        x = check_batch(x, images=True)
        t = self._time(t, x)
        return append_dims(self.alpha(t), x.ndim) * x, self.sigma(t)

    def perturb(self, x0: torch.Tensor, t, *, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``x(t) = alpha(t) x0 + sigma(t) eps`` exactly; returns ``(x_t, eps)``, both shaped like x0."""
        mean, std = self.marginal_prob(x0, t)
        eps = torch.randn(x0.shape, generator=check_generator(generator), dtype=x0.dtype, device=x0.device)
        return mean + append_dims(std, x0.ndim) * eps, eps

    def prior_sampling(self, shape, *, generator=None, dtype: torch.dtype | None = None,
                       device=None) -> torch.Tensor:
        """Draw from the prior ``N(0, prior_std^2 I)`` that stands in for ``p_T``; ``shape = (N, ...)``."""
        shape = torch.Size(shape)
        if len(shape) < 2:
            raise ValueError(f"shape: expected (N, d) or (N, C, H, W), got {tuple(shape)}")
        z = torch.randn(shape, generator=check_generator(generator), dtype=dtype or torch.get_default_dtype(),
                        device=device)
        return self.prior_std * z

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density of the prior ``N(0, prior_std^2 I)`` at z (N, ...), summed over non-batch axes: (N,)."""
        z = check_batch(z, "z", images=True)
        d = z[0].numel()
        var = self.prior_std**2
        return -0.5 * d * (_LOG_2PI + math.log(var)) - z.reshape(z.shape[0], -1).pow(2).sum(-1) / (2 * var)

    def discrete_coefs(self, t: torch.Tensor, dt) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients ``(a, G)`` of the one-step rule ``x_t = x_s + a x_s + G z`` from ``s = t - dt`` to t; (N,) each.

        ``dt`` is a number or an (N,) tensor (one step length per time, for non-uniform grids).

        The exact Gaussian transition of a linear SDE: ``1 + a = alpha(t) / alpha(s)`` and
        ``G^2 = sigma(t)^2 - (1 + a)^2 sigma(s)^2`` (with ``s`` clipped at 0).  For the VE SDE this
        is SMLD's step ``G^2 = sigma_i^2 - sigma_{i-1}^2``; for the VP SDE it is DDPM's step
        ``sqrt(1 - beta_i) x + sqrt(beta_i) z`` with ``beta_i = 1 - alpha_bar_i / alpha_bar_{i-1}``
        (``~ beta(t) dt``; the paper's code uses ``beta(t) dt`` itself, which breaks down for
        coarse steps).  Valid for any step size, so coarse grids stay well defined.
        """
        s = (t - dt).clamp_min(0)
        ratio = self.alpha(t) / self.alpha(s)
        var = self.sigma(t) ** 2 - ratio**2 * self.sigma(s) ** 2
        return ratio - 1, torch.sqrt(var.clamp_min(0))

    def discretize(self, x: torch.Tensor, t, dt: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The discrete forward step of length dt that ends at time t, ``x_i = x_{i-1} + f + G z``: ``(f, G)``.

        ``f = a(t) x`` has the shape of x, ``G`` is (N,); see ``discrete_coefs``.  ``dt``
        defaults to ``T / N``.  The reverse-diffusion predictor undoes this step from x at t.
        """
        x = check_batch(x, images=True)
        t = self._time(t, x)
        a, G = self.discrete_coefs(t, self._dt(dt))
        return append_dims(a, x.ndim) * x, G

    def reverse(self, score_fn, probability_flow: bool = False) -> ReverseSDE:
        """The reverse-time SDE (drift ``f - g^2 s``) or, with ``probability_flow=True``, the
        probability-flow ODE (drift ``f - g^2 s / 2``, zero diffusion) of sections 4.5.2-4.5.3."""
        return ReverseSDE(self, score_fn, probability_flow)

    def marginal(self, dist, t: float):
        """The exact marginal ``p_t`` of data ``dist``: ``dist.perturbed(sigma(t), alpha(t))`` (a number t)."""
        tt = self._time(float(t), torch.zeros(1, 1, dtype=torch.float64))
        return dist.perturbed(float(self.sigma(tt)), float(self.alpha(tt)))


class VESDE(SDE):
    """Variance-exploding SDE, the continuous limit of NCSN/SMLD (section 4.5.2).

    ``dx = sqrt(d[s(t)^2]/dt) dW`` with the geometric noise scale
    ``s(t) = sigma_min (sigma_max / sigma_min)^t`` (``noise_scale``).  There is no drift, so
    ``alpha(t) = 1`` and the noise added since ``t = 0`` has variance
    ``sigma(t)^2 = s(t)^2 - sigma_min^2`` (paper, eq. 29).  The paper's code rounds this to
    ``s(t)``; we keep the exact value, so ``marginal_prob`` matches simulation at every t.
    The prior is ``N(0, sigma_max^2 I)``.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, N: int = 1000):
        super().__init__(N)
        self.sigma_min = check_positive(sigma_min, "sigma_min")
        self.sigma_max = check_positive(sigma_max, "sigma_max")
        if not self.sigma_max > self.sigma_min:
            raise ValueError(f"sigma_max: expected sigma_max > sigma_min = {sigma_min}, got {sigma_max}")
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)
        self.prior_std = self.sigma_max

    def noise_scale(self, t: torch.Tensor) -> torch.Tensor:
        """The geometric schedule ``s(t) = sigma_min (sigma_max / sigma_min)^t`` of NCSN."""
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def drift_coef(self, t):
        return torch.zeros_like(t)

    def diffusion_coef(self, t):
        return self.noise_scale(t) * math.sqrt(2 * self._log_ratio)

    def alpha(self, t):
        return torch.ones_like(t)

    def sigma(self, t):
        # s(t)^2 - s(0)^2 = sigma_min^2 (exp(2 t log r) - 1), written with expm1 for small t
        return self.sigma_min * torch.sqrt(torch.expm1(2 * t * self._log_ratio))

    def inverse_noise_ratio(self, r):
        return 0.5 * torch.log1p((r / self.sigma_min) ** 2) / self._log_ratio

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, N={self.N})"


class _LinearBeta(SDE):
    """The VP family: ``beta(t) = beta_min + t (beta_max - beta_min)`` and ``B(t) = int_0^t beta``."""

    def __init__(self, beta_min: float, beta_max: float, N: int):
        super().__init__(N)
        self.beta_min = check_positive(beta_min, "beta_min")
        self.beta_max = check_positive(beta_max, "beta_max")
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max: expected beta_max >= beta_min = {beta_min}, got {beta_max}")

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def int_beta(self, t):
        """``B(t) = beta_min t + (beta_max - beta_min) t^2 / 2``."""
        return t * (self.beta_min + 0.5 * t * (self.beta_max - self.beta_min))

    def _t_from_int_beta(self, b):
        # root of (db/2) t^2 + beta_min t - b = 0, in the cancellation-free form
        db = self.beta_max - self.beta_min
        return 2 * b / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * db * b))

    def drift_coef(self, t):
        return -0.5 * self.beta(t)

    def alpha(self, t):
        return torch.exp(-0.5 * self.int_beta(t))

    def corrector_alpha(self, t, dt):
        # 1 - beta_i = alpha_bar_i / alpha_bar_{i-1} for the step of length dt ending at t
        s = (t - dt).clamp_min(0)
        return torch.exp(-(self.int_beta(t) - self.int_beta(s)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_min}, beta_max={self.beta_max}, N={self.N})"


class VPSDE(_LinearBeta):
    """Variance-preserving SDE, the continuous limit of DDPM (sections 4.5.1-4.5.2).

    ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW`` with a linear ``beta(t)``.  The marginal is
    ``alpha(t) = exp(-B(t)/2)``, ``sigma(t)^2 = 1 - alpha(t)^2``: the variance of data with unit
    variance stays one.  Prior ``N(0, I)``.  With ``beta_min = 0.1``, ``beta_max = 20`` and
    ``N = 1000`` the discrete steps ``beta(t)/N`` are exactly DDPM's 1e-4 ... 0.02.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000):
        super().__init__(beta_min, beta_max, N)

    def diffusion_coef(self, t):
        return torch.sqrt(self.beta(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(-self.int_beta(t)))

    def inverse_noise_ratio(self, r):
        # r^2 = 1/alpha^2 - 1 = exp(B) - 1
        return self._t_from_int_beta(torch.log1p(r**2))

    def ddpm_schedule(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """DDPM's discrete schedule next to this SDE (section 4.5.1), each an (N,) tensor.

        Returns ``(betas, alphas_cumprod, t)``: Ho et al.'s linear ``beta_i`` from
        ``beta_min / N`` to ``beta_max / N``, ``alpha_bar_i = prod_{j <= i} (1 - beta_j)``, and
        the matching continuous times ``t_i = (i + 1) / N``, at which
        ``alpha_bar_i ~= alpha(t_i)^2`` up to O(1/N).
        """
        betas = torch.linspace(self.beta_min / self.N, self.beta_max / self.N, self.N, dtype=dtype)
        alphas_cumprod = torch.cumprod(1 - betas, 0)
        t = torch.arange(1, self.N + 1, dtype=dtype) * (self.T / self.N)
        return betas, alphas_cumprod, t


class SubVPSDE(_LinearBeta):
    """The sub-VP SDE of Song et al. (2021), section 4.5.2: VP's drift with a smaller diffusion.

    ``dx = -beta(t) x / 2 dt + sqrt(beta(t) (1 - exp(-2 B(t)))) dW``.  Same mean scale
    ``alpha(t)`` as VP, but the noise *standard deviation* is ``sigma(t) = 1 - alpha(t)^2``,
    always below VP's ``sqrt(1 - alpha(t)^2)``; the paper reports better likelihoods with it.
    Prior ``N(0, I)``.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000):
        super().__init__(beta_min, beta_max, N)

    def diffusion_coef(self, t):
        return torch.sqrt(self.beta(t) * -torch.expm1(-2 * self.int_beta(t)))

    def sigma(self, t):
        return -torch.expm1(-self.int_beta(t))

    def inverse_noise_ratio(self, r):
        # r = (1 - a^2) / a  =>  a = 2 / (r + sqrt(r^2 + 4)),  B = -2 log a
        a = 2 / (r + torch.sqrt(r**2 + 4))
        return self._t_from_int_beta(-2 * torch.log(a))


class ReverseSDE:
    """The reverse-time SDE or the probability-flow ODE of a forward ``SDE`` (4.5.2-4.5.3).

    Built by ``sde.reverse(score_fn, probability_flow)``, with the same surface::

        sde(x, t)        -> (f(t) x - c g(t)^2 s(x, t),  g(t) or 0)
        discretize(x, t) -> (f_i - c G_i^2 s(x, t),     G_i or 0)

    with ``c = 1`` for the reverse SDE (Anderson 1982) and ``c = 1/2`` for the ODE.  The
    drift is for time running backwards: a step from t to ``t - dt`` is
    ``x + drift * (-dt) + diffusion * sqrt(dt) z``, and the reverse-diffusion predictor is
    ``x - rev_f + rev_G z``.
    """

    def __init__(self, forward: SDE, score_fn, probability_flow: bool = False):
        check_type(forward, SDE, "forward", _SDE_TYPES)
        check_callable(score_fn, "score_fn", "(x (N, ...), t (N,)) -> score shaped like x")
        check_bool(probability_flow, "probability_flow")
        self.forward, self.score_fn, self.probability_flow = forward, score_fn, probability_flow
        self._c = 0.5 if probability_flow else 1.0

    @property
    def T(self) -> float:
        return self.forward.T

    @property
    def N(self) -> int:
        return self.forward.N

    def _score(self, x, t):
        return check_output(self.score_fn(x, t), x.shape, "score_fn", " (same as x)")

    def sde(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Reverse drift (shape of x) and diffusion ((N,), zeros for the ODE)."""
        x = check_batch(x, images=True)
        t = self.forward._time(t, x)
        drift, g = self.forward.sde(x, t)
        drift = drift - self._c * append_dims(g * g, x.ndim) * self._score(x, t)
        return drift, torch.zeros_like(g) if self.probability_flow else g

    def discretize(self, x: torch.Tensor, t, dt: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Discrete reverse step: ``(rev_f, rev_G)`` with ``x_{i-1} = x_i - rev_f + rev_G z``."""
        x = check_batch(x, images=True)
        t = self.forward._time(t, x)
        f, G = self.forward.discretize(x, t, dt)
        rev_f = f - self._c * append_dims(G * G, x.ndim) * self._score(x, t)
        return rev_f, torch.zeros_like(G) if self.probability_flow else G

    def __repr__(self) -> str:
        kind = "probability-flow ODE" if self.probability_flow else "reverse SDE"
        return f"ReverseSDE({kind} of {self.forward!r})"


# -- exact time-conditional scores -------------------------------------------------

def _gaussian_parts(dist):
    """(log_weights (K,), means (K, d), variances (K,) or None, eigen (Q (K,d,d), lam (K,d)) or None), float64."""
    # the float64 master parameters (the public properties are cast to dist.dtype)
    if isinstance(dist, GaussianMixture):
        m = dist._p.master
        logw, means, covs = m["log_weights"], m["means"], m["covs"]
    elif isinstance(dist, Gaussian):
        m = dist._p.master
        logw = torch.zeros(1, dtype=torch.float64)
        means, covs = m["mean"][None], m["cov"][None]
    elif isinstance(dist, EmpiricalDistribution):
        n, d = dist.data.shape
        logw = torch.full((n,), -math.log(n), dtype=torch.float64)
        return logw, dist.data.double(), torch.zeros(n, dtype=torch.float64), None
    else:
        raise TypeError(
            f"dist: expected a Gaussian, GaussianMixture or EmpiricalDistribution (whose noised laws stay "
            f"Gaussian mixtures), got {type(dist).__name__}"
        )
    d = means.shape[1]
    diag = torch.diagonal(covs, dim1=-2, dim2=-1).mean(-1)
    eye = torch.eye(d, dtype=torch.float64)
    if torch.allclose(covs, diag[:, None, None] * eye, rtol=0, atol=1e-12 * float(diag.max())):
        return logw, means, diag, None
    lam, Q = torch.linalg.eigh(covs)
    return logw, means, None, (Q, lam)


def exact_score_fn(sde: SDE, dist, cache_size: int = 8):
    """Exact time-conditional score ``score_fn(x, t) = grad_x log p_t(x)`` of data ``dist`` under ``sde``.

    ``p_t`` is the law of ``alpha(t) x0 + sigma(t) eps`` with ``x0 ~ dist``, i.e.
    ``dist.perturbed(sigma(t), scale=alpha(t))``: a Gaussian mixture whose component k is
    ``N(alpha m_k, alpha^2 C_k + sigma^2 I)``.  The score is computed in closed form from the
    mixture parameters, for any SDE (sub-VP included, whose ``sigma`` is not
    ``sqrt(1 - alpha^2)``), with no autograd:

    - isotropic components: a few (N, K) matrix products; when every example shares one
      time (the usual sampler call) the per-time constants are (K,) vectors and the cost is
      that of ``GaussianMixture.score``;
    - full covariances: ``C_k = Q_k diag(lam_k) Q_k^T`` is diagonalised once, so
      ``alpha^2 C_k + sigma^2 I`` is inverted per time in O(K N d^2).

    Args:
        sde: a scorelab ``SDE``.
        dist: ``Gaussian``, ``GaussianMixture`` or ``EmpiricalDistribution`` (the last needs t > 0).
        cache_size: how many (dtype, device) parameter copies to keep.

    Returns:
        ``score_fn(x, t)`` mapping x (N, d), or (N, C, H, W) with ``C*H*W == dist.dim``, and t
        (N,) (or a number) to a score shaped like x.
    """
    check_type(sde, SDE, "sde", _SDE_TYPES)
    logw, means, var, eig = _gaussian_parts(dist)
    dim = means.shape[1]
    master = dict(logw=logw, means=means, msq=(means**2).sum(-1))
    if var is not None:
        master["var"] = var
        equal_var = bool((var == var[0]).all())
    else:
        Q, lam = eig
        master.update(Q=Q, lam=lam, mQ=torch.einsum("kd,kde->ke", means, Q))

    @lru_cache(maxsize=cache_size)
    def params(dtype, device):
        out = {k: v.to(dtype=dtype, device=device) for k, v in master.items()}
        out["equal_var"] = var is not None and equal_var
        out["var0"] = float(var[0]) if var is not None else None
        return out

    @lru_cache(maxsize=4096)
    def coefs_at(t: float) -> tuple[float, float]:
        tt = torch.tensor([t], dtype=torch.float64)
        return float(sde.alpha(tt)), float(sde.sigma(tt))

    def _iso_same_t(xf, p, a: float, s: float):
        # one time for the whole batch: (K,) constants, components-first (K, N) logits from one
        # addmm and a softmax over the leading axis (the layout of GaussianMixture.score)
        if p["equal_var"]:
            # one variance v for all components: -d/2 log v is common to every logit and drops
            # out of the softmax, and the constants cost two small ops
            prec = 1.0 / (a * a * p["var0"] + s * s)
            b = p["means"] * (a * prec)  # (K, d)
            c = torch.add(p["logw"], p["msq"], alpha=-0.5 * a * a * prec)
            r = softmax_components(isotropic_logits(xf, c, b))  # (K, N)
            return torch.addmm(xf, r.T, b, beta=-prec)
        v = a * a * p["var"] + s * s  # (K,)
        prec = 1.0 / v
        c = p["logw"] - 0.5 * dim * torch.log(v) - 0.5 * a * a * prec * p["msq"]
        b = (a * prec)[:, None] * p["means"]  # (K, d)
        r = softmax_components(isotropic_logits(xf, c, b, prec - prec.min()))  # (K, N)
        return r.T @ b - xf * (r.T @ prec)[:, None]

    def _iso_per_example(xf, p, a, s):
        logits, v = diffused_logits(xf, p["logw"], p["means"], p["msq"], p["var"], a, s)  # (N, K)
        rv = torch.softmax(logits, dim=-1) / v  # (N, K)
        return a[:, None] * (rv @ p["means"]) - xf * rv.sum(-1, keepdim=True)

    def _full(xf, p, a, s):
        # y_k = Q_k^T (x - a m_k): (K, N, d); variances along the eigen-directions (K, N, d)
        y = torch.einsum("nd,kde->kne", xf, p["Q"]) - a[None, :, None] * p["mQ"][:, None, :]
        v = (a * a)[None, :, None] * p["lam"][:, None, :] + (s * s)[None, :, None]
        logits = p["logw"][:, None] - 0.5 * (torch.log(v) + y * y / v).sum(-1)  # (K, N)
        r = softmax_components(logits)
        w = r[..., None] * y / v  # (K, N, d)
        return -torch.einsum("kne,kde->nd", w, p["Q"])

    def score_fn(x: torch.Tensor, t) -> torch.Tensor:
        x = check_batch(x, images=True)
        n = x.shape[0]
        xf = x.reshape(n, -1)
        if xf.shape[1] != dim:
            raise ValueError(f"x: expected {dim} numbers per example to match {dist!r}, got shape {tuple(x.shape)}")
        p = params(x.dtype, x.device)
        t_one = check_shared_time(t, n, sde.T) if var is not None else None
        if t_one is None:
            t = sde._time(t, x)
            if var is not None and n and bool((t == t[0]).all()):
                t_one = float(t[0])
        if t_one is not None:
            out = _iso_same_t(xf, p, *coefs_at(t_one))
        elif var is not None:
            out = _iso_per_example(xf, p, sde.alpha(t), sde.sigma(t))
        else:
            out = _full(xf, p, sde.alpha(t), sde.sigma(t))
        return out.reshape(x.shape)

    score_fn.sde, score_fn.dist = sde, dist
    score_fn.__doc__ = f"Exact score of {dist!r} diffused by {sde!r}: (x (N, ...), t (N,)) -> shape of x."
    return score_fn


# -- section 4.5.1: noise prediction is a rescaled score -------------------------------

def _std_like(std, x: torch.Tensor) -> torch.Tensor:
    if isinstance(std, (int, float)) and not isinstance(std, bool):
        s = torch.tensor(float(std), dtype=x.dtype, device=x.device)  # keep a Python float's full precision
    else:
        s = as_float_tensor(std, "std").to(dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(f"std: expected a number or an ({x.shape[0]},) tensor, got shape {tuple(s.shape)}")
    check_positive_values(s, "std", "noise standard deviations")
    return append_dims(s, x.ndim)


def eps_to_score(eps: torch.Tensor, std) -> torch.Tensor:
    """Score from a noise prediction, ``s = -eps / sigma_t`` (section 4.5.1).

    DDPM trains ``eps_theta(x_t, t)`` to predict the noise in ``x_t = alpha_t x_0 + sigma_t eps``
    (``sigma_t = sqrt(1 - alpha_bar_t)``); its optimum is ``E[eps | x_t] = -sigma_t grad log p_t(x_t)``.
    ``eps`` is (N, ...); ``std`` a positive number or (N,) tensor.
    """
    eps = check_batch(eps, "eps", images=True)
    return -eps / _std_like(std, eps)


def score_to_eps(score: torch.Tensor, std) -> torch.Tensor:
    """Noise prediction from a score, ``eps = -sigma_t s`` (inverse of ``eps_to_score``)."""
    score = check_batch(score, "score", images=True)
    return -score * _std_like(std, score)
