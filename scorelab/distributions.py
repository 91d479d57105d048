"""Distributions with exact scores: the ground truth every chapter measures against.

Every class follows ``torch.distributions`` where it can (``sample``, ``log_prob``,
``event_shape``) and adds ``score(x) = grad_x log p(x)`` (section 4.1.1) and
``perturbed(sigma, scale)``: the exact law of ``scale * x0 + sigma * noise`` with
``x0 ~ p`` and standard normal noise.  Since a Gaussian convolved with a Gaussian is
a Gaussian, ``perturbed`` keeps the type, which is what gives exact noised scores at
every noise level for NCSN (4.3) and for the VE/VP SDEs (4.5).

Shapes: points are ``(N, d)`` tensors; ``log_prob`` returns ``(N,)``, ``score``
returns ``(N, d)``.  Parameters are kept in float64 and cast to the dtype of the
input, so float32 and float64 inputs both work; ``sample`` returns ``self.dtype``.
"""

from __future__ import annotations

import math

import torch

from ._checks import (
    as_float_tensor,
    as_points,
    as_spd,
    check_callable,
    check_cholesky,
    check_count,
    check_finite,
    check_generator,
    check_output,
    check_positive,
    check_positive_values,
)

__all__ = [
    "Distribution",
    "Gaussian",
    "GaussianMixture",
    "EmpiricalDistribution",
    "EnergyModel",
    "IsingRelaxation",
    "standard_gaussian",
    "two_mode_1d",
    "song_ermon_mixture",
    "eight_gaussians",
    "ring",
    "concentric_rings",
    "noised_score",
]

_LOG_2PI = math.log(2 * math.pi)


# exp(-60) ~ 1e-26: weights smaller than this relative to the largest change no score in float32
_WEIGHT_FLOOR = {torch.float32: 60.0, torch.bfloat16: 60.0}


def softmax_components(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the components axis (dim 0) of (K, N) logits, without subnormal weights.

    A point far from a component gets a logit 87-104 below the largest one, and in float32
    ``exp`` of that is a subnormal number, on which the CPU is many times slower (a mixture
    score near t = 0 took twice as long).  Logits more than 60 below the largest of their
    column are raised to that floor first: those weights become ``e^-60`` instead of
    something smaller still, which changes no float32 score.  Other dtypes are left as they are
    (float64 reaches subnormals only 708 below the largest logit).
    """
    floor = _WEIGHT_FLOOR.get(logits.dtype)
    if floor is not None and logits.shape[0] > 1:
        logits = torch.clamp_min(logits, logits.amax(0) - floor)
    return torch.softmax(logits, dim=0)


def isotropic_logits(x: torch.Tensor, const: torch.Tensor, lin: torch.Tensor,
                     extra_prec: torch.Tensor | None = None) -> torch.Tensor:
    """Component logits of an isotropic Gaussian mixture at points x (N, d), components first: (K, N).

    ``logit_k(x) = const_k + <lin_k, x> - extra_prec_k |x|^2 / 2``: with ``lin_k = m_k / v_k`` and
    ``extra_prec_k = 1 / v_k - 1 / v_ref`` this is ``log w_k N(x; m_k, v_k I)`` up to a term common
    to all k (which a softmax over k ignores): one matrix product, plus one rank-one term when
    the variances differ (``extra_prec=None`` when they are all equal).  Used by
    ``GaussianMixture`` and by the exact SDE scores (``scorelab.sdes.exact_score_fn``).
    """
    logits = torch.addmm(const[:, None], lin, x.T)
    if extra_prec is not None:
        logits = logits - 0.5 * extra_prec[:, None] * (x * x).sum(-1)
    return logits


def diffused_logits(x: torch.Tensor, log_weights: torch.Tensor, means: torch.Tensor, sq_means: torch.Tensor,
                    var: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example component logits of an isotropic mixture diffused to ``a x0 + s eps``: (N, K).

    Component k becomes ``N(a m_k, (a^2 var_k + s^2) I)``; with one ``(a, s)`` per example (N,)
    the logits are ``log w_k + log N(x_n; a_n m_k, v_nk I) + d log(2 pi) / 2`` (the constant,
    common to all k, is left out), written with ``|x - a m|^2 = |x|^2 - 2 a <x, m> + a^2 |m|^2``
    so no (N, K, d) tensor is formed.  ``sq_means`` is ``|m_k|^2`` (K,).  Returns
    ``(logits, v)`` with the variances ``v`` (N, K).  Used by the exact SDE scores at
    per-example times and by ``scorelab.conditional``.
    """
    a2 = (a * a)[:, None]
    v = a2 * var + (s * s)[:, None]  # (N, K)
    sq = (x * x).sum(-1, keepdim=True) - 2 * a[:, None] * (x @ means.T) + a2 * sq_means
    return log_weights - 0.5 * x.shape[1] * torch.log(v) - 0.5 * sq / v, v


class Distribution:
    """Common surface: ``dim``, ``event_shape``, ``log_prob``, ``score``, ``sample``, ``perturbed``."""

    dim: int
    dtype: torch.dtype

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.dim])

    def _points(self, x) -> torch.Tensor:
        return as_points(x, self.dim)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def score(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, n: int, generator=None) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def perturbed(self, sigma: float, scale: float = 1.0) -> Distribution:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """A distribution is itself a score function: ``p(x)`` returns ``p.score(x)``."""
        return self.score(x)


def _dtype_of(*tensors) -> torch.dtype:
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


class _ParamCache:
    """Float64 master parameters with lazily cast copies per (dtype, device)."""

    def __init__(self, **params: torch.Tensor):
        self.master = params
        self._copies: dict = {}

    def get(self, like: torch.Tensor) -> dict:
        key = (like.dtype, like.device)
        if key not in self._copies:
            self._copies[key] = {k: v.to(dtype=like.dtype, device=like.device) for k, v in self.master.items()}
        return self._copies[key]


class Gaussian(Distribution):
    """Multivariate normal ``N(mean, cov)`` in any dimension, full covariance (4.1.1).

    Args:
        mean: (d,) mean vector (a number gives a 1-D Gaussian).
        cov: (d, d) covariance, (d,) diagonal, or a scalar variance; identity if omitted.
    """

    def __init__(self, mean, cov=None):
        self.dtype = _dtype_of(mean, cov)
        mu = as_float_tensor(mean, "mean", torch.float64).reshape(-1)
        d = mu.numel()
        if d == 0:
            raise ValueError("mean: expected at least one dimension")
        if cov is None:
            cov_m = torch.eye(d, dtype=torch.float64)
        else:
            cov_m = as_spd(cov, d, "cov")
            cov_m = torch.diag(cov_m) if cov_m.ndim == 1 else cov_m
        L = check_cholesky(cov_m, "cov", "covariance")
        self.dim = d
        self._p = _ParamCache(
            mean=mu, cov=cov_m, L=L, precision=torch.cholesky_inverse(L),
            logdet=2 * torch.log(torch.diagonal(L)).sum(),
        )

    @property
    def mean(self) -> torch.Tensor:
        return self._p.master["mean"].to(self.dtype)

    @property
    def covariance_matrix(self) -> torch.Tensor:
        return self._p.master["cov"].to(self.dtype)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density at x: (N, d) -> (N,)."""
        x = self._points(x)
        p = self._p.get(x)
        diff = x - p["mean"]
        quad = ((diff @ p["precision"]) * diff).sum(-1)
        return -0.5 * (quad + p["logdet"] + self.dim * _LOG_2PI)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Score ``-cov^{-1} (x - mean)``: (N, d) -> (N, d)."""
        x = self._points(x)
        p = self._p.get(x)
        return -(x - p["mean"]) @ p["precision"]

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """Draw ``n`` exact samples, shape (n, d)."""
        n = check_count(n, "n")
        g = check_generator(generator)
        z = torch.randn(n, self.dim, generator=g, dtype=torch.float64)
        m = self._p.master
        return (m["mean"] + z @ m["L"].T).to(self.dtype)

    def perturbed(self, sigma: float, scale: float = 1.0) -> Gaussian:
        """Law of ``scale * x0 + sigma * eps``: ``N(scale * mean, scale^2 cov + sigma^2 I)``."""
        sigma, scale = check_positive(sigma, "sigma", allow_zero=True), check_finite(scale, "scale")
        m = self._p.master
        g = Gaussian(scale * m["mean"], scale**2 * m["cov"] + sigma**2 * torch.eye(self.dim, dtype=torch.float64))
        g.dtype = self.dtype
        return g

    def __repr__(self) -> str:
        m = self._p.master
        if self.dim <= 3:
            return f"Gaussian(mean={m['mean'].tolist()}, cov={m['cov'].tolist()})"
        return f"Gaussian(dim={self.dim})"


class GaussianMixture(Distribution):
    """Mixture ``sum_k w_k N(mean_k, cov_k)`` in any dimension (4.1.1, exercise 4.1).

    Args:
        weights: (K,) non-negative weights; normalised to sum to one.
        means: (K, d) component means ((K,) for a 1-D mixture).
        covs: (K, d, d) covariances, or (K,) isotropic variances, or one scalar variance
            shared by all components; identity if omitted.

    When every covariance is a multiple of the identity the score is computed in a
    components-first layout, ``logits`` of shape (K, N) with a softmax over the leading
    axis, which costs a few matrix products and is several times faster than the general
    (K, N, d) path used for full covariances.  Both are stable far from the data
    (log-sum-exp), so scores stay finite and correct at ``|x| = 1e3`` in float32.
    """

    def __init__(self, weights, means, covs=None):
        self.dtype = _dtype_of(means, covs, weights)
        w = as_float_tensor(weights, "weights", torch.float64).reshape(-1)
        mu = as_float_tensor(means, "means", torch.float64)
        if mu.ndim == 1:
            mu = mu.unsqueeze(-1)
        if mu.ndim != 2:
            raise ValueError(f"means: expected shape (K, d), got {tuple(mu.shape)}")
        K, d = mu.shape
        if w.shape != (K,):
            raise ValueError(f"weights: expected shape ({K},) to match means of shape {tuple(mu.shape)}, "
                             f"got {tuple(w.shape)}")
        check_positive_values(w, "weights", "numbers", allow_zero=True)
        if not bool(w.sum() > 0):
            raise ValueError("weights: expected non-negative numbers with a positive sum, got all zeros")
        w = w / w.sum()
        if covs is None:
            covs = torch.ones(K, dtype=torch.float64)
        c = as_float_tensor(covs, "covs", torch.float64)
        if c.ndim == 0:
            c = c.expand(K).clone()
        self.dim, self.n_components = d, K
        if c.ndim == 1:  # isotropic variances
            if c.shape != (K,):
                raise ValueError(f"covs: expected ({K},) variances or ({K}, {d}, {d}) matrices, got {tuple(c.shape)}")
            check_positive_values(c, "covs", "variances")
            var, full = c, c[:, None, None] * torch.eye(d, dtype=torch.float64)
        else:
            if c.shape != (K, d, d):
                raise ValueError(f"covs: expected shape ({K}, {d}, {d}), got {tuple(c.shape)}")
            full = c
            eye = torch.eye(d, dtype=torch.float64)
            diag_mean = torch.diagonal(c, dim1=-2, dim2=-1).mean(-1)
            iso = torch.allclose(c, diag_mean[:, None, None] * eye, rtol=0, atol=1e-12 * float(diag_mean.max()))
            var = diag_mean if iso else None
        L = check_cholesky(full, "covs", "covariance")
        self._isotropic = var is not None
        params = dict(weights=w, log_weights=torch.log(w), means=mu, covs=full, L=L)
        if self._isotropic:
            prec = 1.0 / var
            params.update(
                var=var,
                # logits_k(x) = a_k + <b_k, x> - 0.5 (c_k - c_ref) |x|^2 - 0.5 c_ref |x|^2
                a=torch.log(w) - 0.5 * d * (_LOG_2PI + torch.log(var)) - 0.5 * prec * (mu**2).sum(-1),
                b=mu * prec[:, None],
                c_extra=prec - prec.min(),
                c_ref=prec.min(),
            )
            self._equal_var = bool((params["c_extra"] == 0).all())
        else:
            params.update(
                precision=torch.cholesky_inverse(L),
                const=torch.log(w) - 0.5 * (2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1) + d * _LOG_2PI),
            )
        self._p = _ParamCache(**params)

    # -- construction helpers -------------------------------------------------
    @classmethod
    def isotropic(cls, weights, means, stds) -> GaussianMixture:
        """Mixture with covariances ``std_k^2 I``; ``stds`` is a scalar or (K,)."""
        means_t = as_float_tensor(means, "means")
        K = means_t.shape[0]
        s = as_float_tensor(stds, "stds", torch.float64)
        if s.ndim == 0:
            s = s.expand(K)
        check_positive_values(s, "stds", "standard deviations")
        return cls(weights, means, s**2)

    # -- moments ---------------------------------------------------------------
    @property
    def weights(self) -> torch.Tensor:
        return self._p.master["weights"].to(self.dtype)

    @property
    def means(self) -> torch.Tensor:
        return self._p.master["means"].to(self.dtype)

    @property
    def covs(self) -> torch.Tensor:
        return self._p.master["covs"].to(self.dtype)

    @property
    def mean(self) -> torch.Tensor:
        m = self._p.master
        return (m["weights"] @ m["means"]).to(self.dtype)

    @property
    def covariance_matrix(self) -> torch.Tensor:
        m = self._p.master
        w, mu = m["weights"], m["means"]
        second = (w[:, None, None] * (m["covs"] + mu[:, :, None] * mu[:, None, :])).sum(0)
        mean = w @ mu
        return (second - mean[:, None] * mean[None, :]).to(self.dtype)

    def component(self, k: int) -> Gaussian:
        m = self._p.master
        g = Gaussian(m["means"][k], m["covs"][k])
        g.dtype = self.dtype
        return g

    # -- density and score -----------------------------------------------------
    def _logits(self, x: torch.Tensor):
        """Per-component joint log-densities, components first: (K, N), plus a (N,) common term."""
        p = self._p.get(x)
        if self._isotropic:
            return isotropic_logits(x, p["a"], p["b"], None if self._equal_var else p["c_extra"]), p, None
        diff = x.unsqueeze(0) - p["means"][:, None, :]  # (K, N, d)
        pdiff = diff @ p["precision"]  # (K, N, d)
        logits = p["const"][:, None] - 0.5 * (diff * pdiff).sum(-1)
        return logits, p, pdiff

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density (log-sum-exp over components): (N, d) -> (N,)."""
        x = self._points(x)
        logits, p, extra = self._logits(x)
        out = torch.logsumexp(logits, dim=0)
        if self._isotropic:
            out = out - 0.5 * p["c_ref"] * (x * x).sum(-1)
        return out

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities ``p(k | x)``: (N, d) -> (N, K)."""
        x = self._points(x)
        logits, _, _ = self._logits(x)
        return torch.softmax(logits, dim=0).T

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Exact score ``sum_k p(k|x) cov_k^{-1} (mean_k - x)``: (N, d) -> (N, d)."""
        x = self._points(x)
        logits, p, extra = self._logits(x)
        r = softmax_components(logits)  # (K, N)
        if self._isotropic:
            if self._equal_var:
                c = float(p["c_ref"])
                return torch.addmm(x, r.T, p["b"], beta=-c)
            prec = p["c_extra"] + p["c_ref"]
            return r.T @ p["b"] - x * (r.T @ prec)[:, None]
        return -(r.unsqueeze(-1) * extra).sum(0)

    # -- sampling and noise ----------------------------------------------------
    def sample(self, n: int, generator=None) -> torch.Tensor:
        """Draw ``n`` exact samples, shape (n, d): pick a component, then draw from it."""
        n = check_count(n, "n")
        g = check_generator(generator)
        m = self._p.master
        k = torch.multinomial(m["weights"], n, replacement=True, generator=g) if n else torch.zeros(0, dtype=torch.long)
        z = torch.randn(n, self.dim, generator=g, dtype=torch.float64)
        x = m["means"][k] + (m["L"][k] @ z.unsqueeze(-1)).squeeze(-1)
        return x.to(self.dtype)

    def sample_with_labels(self, n: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``sample`` but also returns the (n,) component index of every point."""
        n = check_count(n, "n")
        g = check_generator(generator)
        m = self._p.master
        k = torch.multinomial(m["weights"], n, replacement=True, generator=g)
        z = torch.randn(n, self.dim, generator=g, dtype=torch.float64)
        x = m["means"][k] + (m["L"][k] @ z.unsqueeze(-1)).squeeze(-1)
        return x.to(self.dtype), k

    def perturbed(self, sigma: float, scale: float = 1.0) -> GaussianMixture:
        """Law of ``scale * x0 + sigma * eps``: each component becomes ``N(scale m_k, scale^2 C_k + sigma^2 I)``."""
        sigma, scale = check_positive(sigma, "sigma", allow_zero=True), check_finite(scale, "scale")
        m = self._p.master
        if self._isotropic:
            covs = scale**2 * m["var"] + sigma**2
        else:
            covs = scale**2 * m["covs"] + sigma**2 * torch.eye(self.dim, dtype=torch.float64)
        out = GaussianMixture(m["weights"], scale * m["means"], covs)
        out.dtype = self.dtype
        return out

    def __repr__(self) -> str:
        kind = "isotropic" if self._isotropic else "full"
        return f"GaussianMixture(n_components={self.n_components}, dim={self.dim}, covs={kind})"


class EmpiricalDistribution(Distribution):
    """The uniform distribution over a fixed data set of shape (N, d).

    It has no density, so ``log_prob`` and ``score`` raise; ``perturbed(sigma)`` is the
    Gaussian-smoothed data set, a mixture with one component per data point, whose
    exact score is the *memorising* score: the optimum of denoising score matching on
    this finite data set, which only ever reproduces training points (principles text,
    "overfitting and memorisation").
    """

    def __init__(self, data):
        if not isinstance(data, torch.Tensor):
            data = as_float_tensor(data, "data")
        if data.ndim == 1:
            data = data.unsqueeze(-1)
        if data.ndim != 2 or data.shape[0] == 0:
            raise ValueError(f"data: expected a non-empty tensor of shape (N, d), got {tuple(data.shape)}")
        if not data.is_floating_point():
            data = data.to(torch.get_default_dtype())
        self.data = data
        self.dtype = data.dtype
        self.dim = data.shape[1]

    def __len__(self) -> int:
        return self.data.shape[0]

    def _no_density(self):
        raise NotImplementedError(
            "an empirical distribution has no density or score; use .perturbed(sigma) for the smoothed data set"
        )

    def log_prob(self, x):
        self._no_density()

    def score(self, x):
        self._no_density()

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """Resample ``n`` data points with replacement, shape (n, d)."""
        n = check_count(n, "n")
        idx = torch.randint(0, len(self), (n,), generator=check_generator(generator))
        return self.data[idx]

    def perturbed(self, sigma: float, scale: float = 1.0) -> GaussianMixture:
        """The smoothed data set ``scale * x_i + sigma * eps``: an equal-weight isotropic mixture."""
        sigma, scale = check_positive(sigma, "sigma", allow_zero=True), check_finite(scale, "scale")
        if sigma == 0:
            raise ValueError("sigma: the empirical distribution needs sigma > 0 to have a density")
        n = len(self)
        mix = GaussianMixture(torch.full((n,), 1.0 / n, dtype=torch.float64), scale * self.data.double(),
                              torch.full((n,), sigma**2, dtype=torch.float64))
        mix.dtype = self.dtype
        return mix

    def __repr__(self) -> str:
        return f"EmpiricalDistribution(n={len(self)}, dim={self.dim})"


class EnergyModel(Distribution):
    """``p(x) = exp(-E(x)) / Z`` known only through its energy (section 4.1.2).

    The score ``-grad E`` comes from autograd and never needs ``Z``; ``log_prob`` is
    therefore unavailable, but ``unnormalized_log_prob = -E`` is.

    Args:
        energy_fn: maps (N, d) points to (N,) energies; must be differentiable in torch.
        dim: the dimension d.
    """

    def __init__(self, energy_fn, dim: int):
        check_callable(energy_fn, "energy_fn", "mapping (N, d) points to (N,) energies")
        dim = check_count(dim, "dim", minimum=1)
        self.energy_fn, self.dim, self.dtype = energy_fn, dim, torch.get_default_dtype()

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        x = self._points(x)
        return check_output(self.energy_fn(x), (x.shape[0],), "energy_fn")

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``-E(x)``: the log-density up to the unknown constant ``-log Z``. (N, d) -> (N,)."""
        return -self.energy(x)

    def log_prob(self, x):
        raise NotImplementedError(
            "the normalising constant Z of an energy model is unknown; use unnormalized_log_prob(x) or score(x)"
        )

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``-grad_x E(x)`` by autograd: (N, d) -> (N, d)."""
        x = self._points(x)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(xg).sum(), xg)
        return -grad

    def sample(self, n, generator=None):
        raise NotImplementedError("an energy model has no exact sampler; use scorelab's Langevin samplers on .score")

    def perturbed(self, sigma, scale=1.0):
        raise NotImplementedError("the noised law of an energy model has no closed form")

    def __repr__(self) -> str:
        return f"EnergyModel(dim={self.dim}, energy_fn={getattr(self.energy_fn, '__name__', 'fn')})"


class IsingRelaxation(EnergyModel):
    """Continuous relaxation of the Ising model on a periodic ``side x side`` lattice (4.1.2).

    Discrete energy ``E(s) = -J sum_<ij> s_i s_j - h sum_i s_i`` with ``s_i = +-1`` has a
    partition function that sums ``2^(side^2)`` states.  Relaxing spins to real
    ``x_i`` and adding a double-well ``barrier * (x_i^2 - 1)^2`` that pins them near
    +-1 gives a smooth energy whose score is local and cheap::

        score_i(x) = J * sum_{j ~ i} x_j + h - 4 * barrier * x_i (x_i^2 - 1)

    Points are flattened lattices of shape (N, side * side).
    """

    def __init__(self, side: int = 8, J: float = 1.0, h: float = 0.0, barrier: float = 1.0):
        side = check_count(side, "side", minimum=2)
        self.side, self.J, self.h = side, float(J), float(h)
        self.barrier = check_positive(barrier, "barrier", allow_zero=True)
        super().__init__(self._relaxed_energy, side * side)

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, self.side, self.side)

    def discrete_energy(self, s: torch.Tensor) -> torch.Tensor:
        """Ising energy of spins (N, side*side) with entries +-1 (no barrier): (N,)."""
        s = self._points(s)
        g = self._grid(s)
        pairs = g * torch.roll(g, 1, dims=-1) + g * torch.roll(g, 1, dims=-2)
        return -self.J * pairs.sum((-1, -2)) - self.h * g.sum((-1, -2))

    def _relaxed_energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.discrete_energy(x) + self.barrier * ((x * x - 1) ** 2).sum(-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Analytic score (no autograd): (N, side*side) -> (N, side*side)."""
        x = self._points(x)
        g = self._grid(x)
        nb = (torch.roll(g, 1, -1) + torch.roll(g, -1, -1) + torch.roll(g, 1, -2) + torch.roll(g, -1, -2))
        return (self.J * nb + self.h).reshape(x.shape) - 4 * self.barrier * x * (x * x - 1)

    def magnetisation(self, x: torch.Tensor) -> torch.Tensor:
        """Mean spin ``sign(x)`` per configuration: (N,)."""
        return torch.sign(self._points(x)).mean(-1)

    def __repr__(self) -> str:
        return f"IsingRelaxation(side={self.side}, J={self.J}, h={self.h}, barrier={self.barrier})"


# -- the standard toys ---------------------------------------------------------

def standard_gaussian(dim: int = 1) -> Gaussian:
    """``N(0, I_dim)``, whose score is ``-x`` (4.1.1)."""
    return Gaussian(torch.zeros(dim))


def two_mode_1d(weights=(0.3, 0.7), means=(-2.0, 2.0), stds=(0.5, 0.5)) -> GaussianMixture:
    """A 1-D mixture of two Gaussians (4.1.1, exercise 4.1)."""
    return GaussianMixture.isotropic(torch.tensor(weights), torch.tensor(means).reshape(-1, 1), torch.tensor(stds))


def song_ermon_mixture() -> GaussianMixture:
    """Song & Ermon (2019)'s toy: weight 0.2 at (-5, -5), 0.8 at (5, 5), identity covariances (4.3)."""
    return GaussianMixture(torch.tensor([0.2, 0.8]), torch.tensor([[-5.0, -5.0], [5.0, 5.0]]), torch.ones(2))


def eight_gaussians(radius: float = 4.0, std: float = 0.35) -> GaussianMixture:
    """Eight equal Gaussians evenly spaced on a circle of the given radius."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    return GaussianMixture.isotropic(torch.ones(8) / 8, means, std)


def ring(n_components: int = 64, radius: float = 3.0, std: float = 0.15) -> GaussianMixture:
    """A ring made of many small Gaussians on a circle, so its score stays exact."""
    angles = torch.arange(n_components) * (2 * math.pi / n_components)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    return GaussianMixture.isotropic(torch.ones(n_components) / n_components, means, std)


def concentric_rings(radii=(1.5, 3.5), n_per_unit_length: float = 4.0, std: float = 0.12) -> GaussianMixture:
    """Several rings, each with mass proportional to its circumference."""
    means, weights = [], []
    for r in radii:
        k = max(8, int(round(2 * math.pi * r * n_per_unit_length)))
        a = torch.arange(k) * (2 * math.pi / k)
        means.append(r * torch.stack([torch.cos(a), torch.sin(a)], -1))
        weights.append(torch.full((k,), r / k))
    return GaussianMixture.isotropic(torch.cat(weights), torch.cat(means), std)


def noised_score(dist: Distribution, scale: float = 1.0, cache_size: int = 256):
    """Exact noise-conditional score ``score_fn(x, sigma) = grad log p_sigma(x)`` of ``dist``.

    ``p_sigma`` is the law of ``scale * x0 + sigma * eps`` (``dist.perturbed(sigma, scale)``).
    ``sigma`` is a number or an (N,) tensor of per-point noise levels (as ``ncsn_loss`` draws
    them, 4.3.1); points are grouped by level.  Perturbed distributions are cached per sigma.
    """
    from functools import lru_cache

    @lru_cache(maxsize=cache_size)
    def _at(s: float):
        return dist.perturbed(s, scale)

    def score_fn(x: torch.Tensor, sigma) -> torch.Tensor:
        if isinstance(sigma, torch.Tensor) and sigma.numel() > 1:
            sig = sigma.reshape(-1)
            if sig.shape[0] != x.shape[0]:
                raise ValueError(f"sigma: expected a number or a ({x.shape[0]},) tensor, "
                                 f"got shape {tuple(sigma.shape)}")
            levels = torch.unique(sig)
            if len(levels) == 1:
                return _at(float(levels[0])).score(x)
            out = torch.empty_like(x)
            for level in levels.tolist():  # one exact evaluation per distinct noise level
                idx = sig == level
                out[idx] = _at(level).score(x[idx])
            return out
        if isinstance(sigma, torch.Tensor):
            sigma = float(sigma.reshape(-1)[0])
        return _at(float(sigma)).score(x)

    score_fn.__doc__ = f"Exact score of {dist!r} perturbed by N(0, sigma^2 I): (x (N, d), sigma) -> (N, d)."
    return score_fn
