"""Samplers for the score SDE: reverse SDE, predictor-corrector, probability-flow ODE (4.5.2-4.5.3).

Every sampler follows the contract of CONTRIBUTING.md ("Samplers")::

    x = sample_<name>(score_fn, x, sde, *, <grid arguments>, denoise=True,
                      generator=None, callback=None, stats=None)

- ``score_fn(x, t)`` is a time-conditional score, x (N, ...) and t (N,) -> shaped like x
  (``scorelab.sdes.exact_score_fn`` gives the exact one of a toy distribution).
- ``x`` is a batch drawn from the prior at ``t = T`` (``sde.prior_sampling``); it is not modified.
- Time runs from ``sde.T`` down to a small ``t_eps > 0``, where the score of the data
  distribution may be singular.  The grid is given either by ``n_steps`` and ``t_eps`` or by an
  explicit decreasing ``ts``, never both (that raises a ValueError).  ``denoise=True`` then
  applies one Tweedie step ``E[x_0 | x_t] = (x + sigma^2 s(x, t)) / alpha`` at the last time
  (one more score evaluation).
- ``callback`` receives one dict after every step with the same keys at every step:
  ``"i"``, ``"x"``, ``"t"`` (the time reached; 0 after the Tweedie step), ``"denoise"`` (True
  only for the Tweedie step) and, wherever the step evaluated the score, ``"denoised"``:
  Tweedie's estimate ``(x + sigma(t)^2 s(x, t)) / alpha(t)`` at the point and time of that
  evaluation (the first one of the step); each sampler lists its other keys.  That is all
  ``scorelab.plotting.TrajectoryRecorder`` needs.  ``stats["nfe"]`` counts score evaluations.

The loops cost NFE score evaluations and a handful of element-wise operations per step:
the time grid and every coefficient (``f``, ``g``, ``alpha``, ``sigma`` on the grid) are
computed once before the loop as Python floats, and the time passed to ``score_fn`` is one
number expanded to (N,) (a view, not an (N,) allocation).  Since all SDEs here have a linear
drift ``f(t) x``, a step is ``x <- c1 x + c2 s (+ c3 z)``; the tests check that this equals
one step of ``sde.reverse(score_fn).sde`` / ``.discretize``.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch

from ._checks import (
    check_batch,
    check_bool,
    check_callable,
    check_callback_stats,
    check_choice,
    check_count,
    check_generator,
    check_output,
    check_positive,
    check_start,
    check_t_eps,
    check_time_grid,
    check_type,
)
from ._ode import solve_ode
from ._random import gaussian_like
from .sdes import SDE

__all__ = [
    "simulate_forward",
    "time_grid",
    "karras_times",
    "langevin_step_size",
    "sample_euler_maruyama",
    "sample_reverse_diffusion",
    "sample_pc",
    "sample_probability_flow",
    "sample_probability_flow_adaptive",
    "sample_heun_karras",
    "sample_dpm_solver_2",
]

_SDE_TYPES = "a scorelab SDE (VESDE, VPSDE, SubVPSDE)"
_T_EPS = 1e-3  # the default last time of a grid


# -- set-up shared by every sampler ----------------------------------------------------

class _Scorer:
    """Calls ``score_fn`` with a broadcast (N,) time, checks the output once, counts evaluations."""

    def __init__(self, score_fn, x: torch.Tensor):
        check_callable(score_fn, "score_fn", "(x (N, ...), t (N,)) -> tensor shaped like x")
        self.fn, self.shape, self.n, self.nfe = score_fn, x.shape, x.shape[0], 0
        self.dtype, self.device = x.dtype, x.device
        self._checked = False

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.tensor(t, dtype=self.dtype, device=self.device).expand(self.n)
        s = self.fn(x, tt)
        self.nfe += 1
        if not self._checked:
            check_output(s, self.shape, "score_fn", " (same as x)")
            self._checked = True
        return s if s.dtype == self.dtype else s.to(self.dtype)


def _start(score_fn, x, sde, callback, stats):
    check_type(sde, SDE, "sde", _SDE_TYPES)
    x = check_start(x, images=True, copy=False)  # no copy: every update makes a new tensor, x is never written to
    check_callback_stats(callback, stats)
    return x, _Scorer(score_fn, x)


def _coef(fn, ts: torch.Tensor) -> list[float]:
    """Evaluate a coefficient function on the whole grid at once, as Python floats."""
    return fn(ts).tolist()


def time_grid(sde: SDE, n_steps: int, t_eps: float = _T_EPS) -> torch.Tensor:
    """Uniform decreasing grid ``T = t_0 > t_1 > ... > t_n = t_eps`` (section 4.5.2): (n_steps + 1,) float64."""
    n_steps = check_count(n_steps, "n_steps", minimum=1)
    return torch.linspace(sde.T, check_t_eps(t_eps, sde.T), n_steps + 1, dtype=torch.float64)


def karras_times(sde: SDE, n_steps: int, t_eps: float = _T_EPS, rho: float = 7.0) -> torch.Tensor:
    """Times whose noise levels follow Karras et al. (2022)'s spacing (section 4.5.3), (n_steps + 1,) float64.

    With ``r = sde.noise_ratio(t)`` (the sigma of the rescaled variable ``x / alpha``),
    ``r_i = (r_max^(1/rho) + i/n (r_min^(1/rho) - r_max^(1/rho)))^rho`` runs from ``r(T)`` to
    ``r(t_eps)``; ``rho = 7`` crowds the steps at low noise, where the ODE bends most.
    The times are ``sde.inverse_noise_ratio(r_i)``.
    """
    r, ends = _karras_ratios(sde, n_steps, t_eps, rho)
    t = sde.inverse_noise_ratio(r)
    t[0], t[-1] = ends[0], ends[1]  # exact end points despite round-off
    return t


def _karras_ratios(sde: SDE, n_steps, t_eps, rho) -> tuple[torch.Tensor, torch.Tensor]:
    """Karras et al.'s noise ratios ``r_0 = r(T) > ... > r_n = r(t_eps)`` and the end times ``(T, t_eps)``."""
    n_steps = check_count(n_steps, "n_steps", minimum=1)
    rho = check_positive(rho, "rho")
    ends = torch.tensor([sde.T, check_t_eps(t_eps, sde.T)], dtype=torch.float64)
    r_max, r_min = sde.noise_ratio(ends).tolist()
    ramp = torch.linspace(0, 1, n_steps + 1, dtype=torch.float64)
    return (r_max ** (1 / rho) + ramp * (r_min ** (1 / rho) - r_max ** (1 / rho))) ** rho, ends


def _grid(sde, n_steps, t_eps, ts, default_steps: int) -> torch.Tensor:
    """The decreasing time grid: ``time_grid(sde, n_steps, t_eps)``, or the explicit ``ts``
    (then ``n_steps`` and ``t_eps`` must be left out, so that neither is silently ignored)."""
    if ts is None:
        return time_grid(sde, default_steps if n_steps is None else n_steps, _T_EPS if t_eps is None else t_eps)
    given = [name for name, v in (("n_steps", n_steps), ("t_eps", t_eps)) if v is not None]
    if given:
        raise ValueError(f"ts: expected either an explicit grid ts or n_steps and t_eps, got ts together with "
                         f"{' and '.join(given)}")
    return check_time_grid(ts, sde.T)


def _denoiser(sde: SDE, ts: torch.Tensor):
    """``denoised(x, s, k) = (x + sigma_k^2 s) / alpha_k``: Tweedie's estimate of ``x_0`` from the
    score s at x and time ``ts[k]`` (only built when a callback asks for it)."""
    alpha, sig2 = _coef(sde.alpha, ts), [v * v for v in _coef(sde.sigma, ts)]
    return lambda x, s, k: torch.add(x, s, alpha=sig2[k]).div_(alpha[k])


def _finish(scorer, x, sde, t_last, i, denoise, callback, stats, report):
    """The optional final Tweedie step ``E[x_0 | x_t] = (x + sigma(t)^2 s(x, t)) / alpha(t)`` at
    ``t_last`` (one score evaluation), reported to the callback with the sampler's other keys,
    ``report(x)`` (and ``"denoised"``, the result itself; ``report=None``: neither), and
    ``stats["nfe"]``."""
    check_bool(denoise, "denoise")
    if denoise:
        tt = torch.tensor([t_last], dtype=torch.float64)
        a, s = float(sde.alpha(tt)), float(sde.sigma(tt))
        x = (x + s * s * scorer(x, t_last)) / a
        if callback is not None:
            extra = {} if report is None else {"denoised": x, **report(x)}
            callback({"i": i, "x": x, "t": 0.0, **extra, "denoise": True})
    if stats is not None:
        stats["nfe"] = scorer.nfe
    return x


# -- section 4.5.2: the forward SDE ------------------------------------------------------

@torch.no_grad()
def simulate_forward(x0: torch.Tensor, sde: SDE, *, n_steps: int = 1000, t_end: float | None = None,
                     generator=None, callback=None) -> torch.Tensor:
    """Euler--Maruyama simulation of the forward SDE ``dx = f(t) x dt + g(t) dW`` from t = 0 (4.5.2).

    ``x <- x + f(t) x h + g(t) sqrt(h) z`` on a uniform grid of ``n_steps`` steps from 0 to
    ``t_end`` (default T).  No score is needed: this is how data are turned into noise, and
    its moments converge to ``sde.marginal_prob`` as ``h -> 0``.

    Args:
        x0: (N, ...) data at t = 0 (not modified).
        sde: the forward SDE.
        n_steps: number of steps.
        t_end: final time in (0, T].
        generator: ``torch.Generator`` or int seed.
        callback: ``{"i", "x", "t"}`` after each step (``t`` is the time reached).

    Returns:
        (N, ...) states at ``t_end``.
    """
    check_type(sde, SDE, "sde", _SDE_TYPES)
    x = check_batch(x0, "x0", images=True).detach().clone()
    n_steps = check_count(n_steps, "n_steps", minimum=1)
    t_end = sde.T if t_end is None else check_positive(t_end, "t_end")
    if t_end > sde.T:
        raise ValueError(f"t_end: expected a time in (0, T = {sde.T}], got {t_end}")
    check_callback_stats(callback, None)
    g = check_generator(generator)
    ts = torch.linspace(0, t_end, n_steps + 1, dtype=torch.float64)
    h = t_end / n_steps
    c_x = [1 + f * h for f in _coef(sde.drift_coef, ts[:-1])]
    c_z = [gi * math.sqrt(h) for gi in _coef(sde.diffusion_coef, ts[:-1])]
    tl = ts.tolist()
    for i in range(n_steps):
        x = (x * c_x[i]).add_(gaussian_like(x, g), alpha=c_z[i])
        if callback is not None:
            callback({"i": i, "x": x, "t": tl[i + 1]})
    return x


# -- section 4.5.2: the reverse SDE -----------------------------------------------------

def _mean_norm(v: torch.Tensor) -> float:
    """Batch mean of the per-example Euclidean norms of v (N, ...).

    The squared norms are a matrix-vector product with a ones vector: for few numbers per
    example (2-D points) this is about twice as fast as ``norm(dim=-1)``, whose reduction
    over a short last axis is slow.
    """
    flat = v.reshape(v.shape[0], -1)
    return float(torch.mv(flat.square(), flat.new_ones(flat.shape[1])).sqrt_().sum()) / flat.shape[0]


def langevin_step_size(score: torch.Tensor, noise: torch.Tensor, snr: float, corrector_alpha: float = 1.0) -> float:
    """Langevin corrector step ``eps = 2 alpha_i (snr |z| / |s|)^2`` (Song et al. 2021, Alg. 4/5; section 4.5.2).

    ``|z|`` and ``|s|`` are the per-example norms of the noise and of the score averaged over
    the batch, so the update ``eps s + sqrt(2 eps) z`` has a drift ``snr`` times the size of
    its noise.  ``corrector_alpha`` is the paper's ``alpha_i``, ``sde.corrector_alpha``
    (``1 - beta_i`` for VP, 1 for VE; not the signal scale ``sde.alpha(t)``).
    """
    s_norm, z_norm = _mean_norm(score), _mean_norm(noise)
    if s_norm == 0:
        raise ValueError("score: the score is zero at every point; the snr step size is undefined")
    return 2 * corrector_alpha * (snr * z_norm / s_norm) ** 2


_PREDICTORS = ("euler_maruyama", "reverse_diffusion", None)
_CORRECTORS = ("langevin", None)


@torch.no_grad()
def sample_pc(score_fn, x: torch.Tensor, sde: SDE, *, n_steps: int | None = None,
              predictor: str | None = "reverse_diffusion", corrector: str | None = "langevin",
              snr: float = 0.16, n_corrector_steps: int = 1, t_eps: float | None = None, ts=None,
              denoise: bool = True, generator=None, callback=None, stats=None) -> torch.Tensor:
    """Predictor-corrector sampling of the reverse SDE, Song et al. (2021) Algorithm 1 (section 4.5.2).

    For each step ``t_i -> t_{i+1}`` of the decreasing grid, first the *predictor* moves the
    batch along the reverse-time SDE ``dx = [f(t) x - g(t)^2 s(x, t)] dt + g(t) dW``, then the
    *corrector* runs ``n_corrector_steps`` Langevin updates targeting ``p_{t_{i+1}}``:

    - ``"euler_maruyama"``: ``x <- x - (f x - g^2 s) h + g sqrt(h) z`` with ``h = t_i - t_{i+1}``;
    - ``"reverse_diffusion"``: undoes the exact forward step that lands at ``t_i``
      (``sde.discrete_coefs``: SMLD's step for VE, DDPM's for VP),
      ``x <- x - a x + G^2 s + G z`` (the paper's Algorithm 2/3 predictor);
    - ``"langevin"`` corrector: ``x <- x + eps s + sqrt(2 eps) z`` with ``eps`` from
      ``langevin_step_size(s, z, snr, sde.corrector_alpha(t, h))``.

    ``predictor=None`` leaves the corrector alone (annealed Langevin on the SDE's noise
    levels); ``corrector=None`` is the predictor alone.

    Args:
        score_fn: ``(x (N, ...), t (N,)) -> shaped like x``.
        x: (N, ...) prior samples at time T (not modified).
        sde: the forward SDE.
        n_steps, t_eps: the grid ``linspace(T, t_eps, n_steps + 1)`` (default 1000 steps down to
            ``t_eps = 1e-3``): ``n_steps`` predictor steps (grid intervals).
        ts: an explicit decreasing grid instead (e.g. ``karras_times``); it excludes
            ``n_steps`` and ``t_eps``.
        snr: the corrector's signal-to-noise ratio r (0.16 in the paper for VE on CIFAR-10).
        n_corrector_steps: Langevin steps per grid point (M).
        denoise: final Tweedie step at the last time of the grid.
        generator: ``torch.Generator`` or int seed.
        callback: called after each update with ``{"i", "x", "t", "denoised", "x_mean",
            "step_size", "kind", "denoise"}``: ``kind`` is ``"predictor"``, ``"corrector"`` or
            (the Tweedie step) ``"denoise"``; ``x_mean`` the update without its noise;
            ``step_size`` the time step ``h`` of a predictor update, the Langevin step ``eps``
            of a corrector update, ``t_eps`` for the Tweedie step; ``i`` counts all updates.
        stats: filled with ``"nfe" = n_steps * (1 + M)`` (+1 with ``denoise``).

    Returns:
        (N, ...) samples.
    """
    x, score = _start(score_fn, x, sde, callback, stats)
    check_choice(predictor, "predictor", _PREDICTORS)
    check_choice(corrector, "corrector", _CORRECTORS)
    if predictor is None and corrector is None:
        raise ValueError("predictor, corrector: at least one of them must be set")
    ts = _grid(sde, n_steps, t_eps, ts, default_steps=1000)
    snr = check_positive(snr, "snr")
    m = check_count(n_corrector_steps, "n_corrector_steps") if corrector is not None else 0
    check_bool(denoise, "denoise")
    g = check_generator(generator)

    t_now, t_next = ts[:-1], ts[1:]
    h_t = t_now - t_next
    h, tl, tn = h_t.tolist(), t_now.tolist(), t_next.tolist()
    if predictor == "euler_maruyama":
        f, gg = sde.drift_coef(t_now), sde.diffusion_coef(t_now)
        # x - (f x - g^2 s) h + g sqrt(h) z
        c_x, c_s, c_z = (1 - f * h_t).tolist(), (gg * gg * h_t).tolist(), (gg * h_t.sqrt()).tolist()
    elif predictor == "reverse_diffusion":
        a, G = sde.discrete_coefs(t_now, h_t)  # the forward step of length h_i that ends at t_i
        c_x, c_s, c_z = (1 - a).tolist(), (G * G).tolist(), G.tolist()
    if m:
        c_alpha = sde.corrector_alpha(t_next, h_t).tolist()
    denoised = _denoiser(sde, ts) if callback is not None else None

    # The loop does the least work the algorithm allows: one score evaluation and one
    # Gaussian draw per update, and fused (multiply-)adds, so that its time stays close to
    # that of the score evaluations and draws alone (benchmarks/bench_sde_samplers.py).
    step = 0
    for i in range(len(h)):
        if predictor is not None:
            s = score(x, tl[i])
            if c_x[i] == 1.0:
                x_mean = torch.add(x, s, alpha=c_s[i])
            else:
                x_mean = (x * c_x[i]).add_(s, alpha=c_s[i])
            x_new = torch.add(x_mean, gaussian_like(x, g), alpha=c_z[i])
            if callback is not None:
                callback({"i": step, "x": x_new, "t": tn[i], "denoised": denoised(x, s, i), "x_mean": x_mean,
                          "step_size": h[i], "kind": "predictor", "denoise": False})
            x = x_new
            step += 1
        for _ in range(m):
            s = score(x, tn[i])
            z = gaussian_like(x, g)
            eps = langevin_step_size(s, z, snr, c_alpha[i])
            x_mean = torch.add(x, s, alpha=eps)
            x_new = torch.add(x_mean, z, alpha=math.sqrt(2 * eps))
            if callback is not None:
                callback({"i": step, "x": x_new, "t": tn[i], "denoised": denoised(x, s, i + 1), "x_mean": x_mean,
                          "step_size": eps, "kind": "corrector", "denoise": False})
            x = x_new
            step += 1
    return _finish(score, x, sde, tn[-1], step, denoise, callback, stats,
                   report=lambda x: {"x_mean": x, "step_size": tn[-1], "kind": "denoise"})


def sample_euler_maruyama(score_fn, x: torch.Tensor, sde: SDE, *, n_steps: int | None = None,
                          t_eps: float | None = None, ts=None, denoise: bool = True, generator=None, callback=None,
                          stats=None) -> torch.Tensor:
    """Euler--Maruyama on the reverse-time SDE ``dx = [f x - g^2 s] dt + g dW`` (section 4.5.2).

    ``x <- x - (f(t) x - g(t)^2 s(x, t)) h + g(t) sqrt(h) z`` with ``h = t_i - t_{i+1}``; one score
    evaluation per step.  Same as ``sample_pc(..., predictor="euler_maruyama", corrector=None)``:
    the same grid arguments (``n_steps`` default 1000, ``t_eps`` default 1e-3, or ``ts``), callback
    keys (``{"i", "x", "t", "denoised", "x_mean", "step_size", "kind", "denoise"}``) and NFE
    (``n_steps``, +1 with ``denoise``).
    """
    return sample_pc(score_fn, x, sde, n_steps=n_steps, predictor="euler_maruyama", corrector=None, t_eps=t_eps,
                     ts=ts, denoise=denoise, generator=generator, callback=callback, stats=stats)


def sample_reverse_diffusion(score_fn, x: torch.Tensor, sde: SDE, *, n_steps: int | None = None,
                             t_eps: float | None = None, ts=None, denoise: bool = True, generator=None,
                             callback=None, stats=None) -> torch.Tensor:
    """Reverse-diffusion predictor alone (Song et al. 2021, section 4.2 and Appendix E; our 4.5.2).

    Reverses the forward discretisation step by step: ``x <- x - a x + G^2 s + G z``, which for
    the VP SDE is DDPM's ancestral sampler to first order in ``beta_i`` and for VE is SMLD's.  Same as
    ``sample_pc(..., predictor="reverse_diffusion", corrector=None)``: the same grid arguments,
    callback keys (``{"i", "x", "t", "denoised", "x_mean", "step_size", "kind", "denoise"}``) and
    NFE (``n_steps``, +1 with ``denoise``).
    """
    return sample_pc(score_fn, x, sde, n_steps=n_steps, predictor="reverse_diffusion", corrector=None,
                     t_eps=t_eps, ts=ts, denoise=denoise, generator=generator, callback=callback, stats=stats)


# -- section 4.5.3: the probability-flow ODE ------------------------------------------

@torch.no_grad()
def sample_probability_flow(score_fn, x: torch.Tensor, sde: SDE, *, n_steps: int | None = None,
                            method: str = "heun", t_eps: float | None = None, ts=None, denoise: bool = True,
                            callback=None, stats=None) -> torch.Tensor:
    """Fixed-step integration of the probability-flow ODE ``dx/dt = f(t) x - g(t)^2 s(x, t) / 2`` (4.5.3).

    Deterministic: the same prior sample always maps to the same output, and the marginals
    at every t are those of the SDE.  ``method="euler"`` (first order, 1 evaluation per
    step) or ``"heun"`` (explicit trapezoid, second order, 2 per step).

    Args:
        score_fn, x, sde: as in ``sample_pc``.
        n_steps, t_eps: the grid ``linspace(T, t_eps, n_steps + 1)`` (default 100 steps, 1e-3).
        ts: an explicit decreasing grid instead (e.g. ``karras_times``), without ``n_steps``, ``t_eps``.
        method: ``"euler"`` or ``"heun"``.
        denoise: final Tweedie step at the last time of the grid.
        callback: ``{"i", "x", "t", "denoised", "step_size", "denoise"}`` after each step
            (``step_size`` the time step; ``t_eps`` for the Tweedie step).
        stats: ``"nfe"``: ``n_steps`` (Euler) or ``2 n_steps`` (Heun), +1 with ``denoise``.
    """
    x, score = _start(score_fn, x, sde, callback, stats)
    check_choice(method, "method", ("euler", "heun"))
    ts = _grid(sde, n_steps, t_eps, ts, default_steps=100)
    check_bool(denoise, "denoise")
    tl = ts.tolist()
    f = _coef(sde.drift_coef, ts)
    half_g2 = [0.5 * v * v for v in _coef(sde.diffusion_coef, ts)]
    denoised = _denoiser(sde, ts) if callback is not None else None

    def velocity(x, s, i):  # f x - (g^2 / 2) s, as a fresh tensor
        return s * -half_g2[i] if f[i] == 0.0 else (x * f[i]).sub_(s, alpha=half_g2[i])

    for i in range(len(tl) - 1):
        dt = tl[i + 1] - tl[i]  # negative: time runs backwards
        s = score(x, tl[i])
        v = velocity(x, s, i)
        if method == "euler":
            x_new = torch.add(x, v, alpha=dt)
        else:
            x_pred = torch.add(x, v, alpha=dt)
            v2 = velocity(x_pred, score(x_pred, tl[i + 1]), i + 1)
            x_new = torch.add(x, v.add_(v2), alpha=0.5 * dt)
        if callback is not None:
            callback({"i": i, "x": x_new, "t": tl[i + 1], "denoised": denoised(x, s, i), "step_size": -dt,
                      "denoise": False})
        x = x_new
    return _finish(score, x, sde, tl[-1], len(tl) - 1, denoise, callback, stats, report=lambda x: {"step_size": tl[-1]})


def sample_probability_flow_adaptive(score_fn, x: torch.Tensor, sde: SDE, *, solver: str = "scipy",
                                     method: str | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                                     t_eps: float = _T_EPS, t_eval=None, options: dict | None = None,
                                     denoise: bool = True, callback=None, stats=None) -> torch.Tensor:
    """Probability-flow ODE with an adaptive black-box solver (section 4.5.3).

    - ``solver="scipy"``: ``scipy.integrate.solve_ivp`` on the flattened float64 state, as in
      the paper's code; ``method`` one of RK45 (default), RK23, DOP853, Radau, BDF, LSODA.
    - ``solver="torchdiffeq"``: ``torchdiffeq.odeint`` in torch; ``method`` any of its
      methods (``"dopri5"`` default, ``"bosh3"``, ``"rk4"``, ...; fixed-step methods take
      ``options={"step_size": h}``).

    The whole batch is one ODE system, so the solver's step is set by the hardest
    example.  ``t_eval`` (decreasing times in ``(t_eps, T)``) adds dense-output frames, without
    changing the solution.  The solver picks its own steps, so the grid is ``t_eps`` (and
    ``rtol``, ``atol``) alone.

    ``callback`` gets ``{"i", "x", "t", "denoise"}`` at each time of ``t_eval`` and at ``t_eps``
    (the frames are interpolated, no score is evaluated there, so there is no ``"denoised"``).
    Returns (N, ...) samples; ``stats`` gets ``"nfe"`` (function evaluations of the solver,
    +1 with ``denoise``).
    """
    x, score = _start(score_fn, x, sde, callback, stats)
    t_eps = check_t_eps(t_eps, sde.T)
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    check_bool(denoise, "denoise")
    times = [sde.T] + ([] if t_eval is None else [float(v) for v in t_eval]) + [t_eps]
    if any(b >= a for a, b in pairwise(times)):
        raise ValueError(f"t_eval: expected times strictly decreasing inside (t_eps, T) = ({t_eps}, {sde.T})")

    def velocity(t: float, xt: torch.Tensor) -> torch.Tensor:
        t = min(max(t, t_eps), sde.T)  # guard against round-off at the ends of the interval
        tt = torch.tensor([t], dtype=torch.float64)
        f, g = float(sde.drift_coef(tt)), float(sde.diffusion_coef(tt))
        return f * xt - (0.5 * g * g) * score(xt, t)

    frames = solve_ode(velocity, x, sde.T, t_eps, t_eval=times[1:], solver=solver, method=method, rtol=rtol,
                       atol=atol, options=options)
    frames = [xk.to(dtype=x.dtype, device=x.device) for xk in frames]
    if callback is not None:
        for k, (t, xk) in enumerate(zip(times[1:], frames, strict=True)):
            callback({"i": k, "x": xk, "t": t, "denoise": False})
    with torch.no_grad():
        return _finish(score, frames[-1], sde, t_eps, len(frames), denoise, callback, stats, report=None)


# -- few-step solvers: quality at 10-25 evaluations ---------------------------------------

@torch.no_grad()
def sample_heun_karras(score_fn, x: torch.Tensor, sde: SDE, *, n_steps: int = 10, rho: float = 7.0,
                       t_eps: float = _T_EPS, denoise: bool = True, callback=None, stats=None) -> torch.Tensor:
    """Karras et al. (2022), "Elucidating the Design Space...", Algorithm 1: Heun on the
    probability-flow ODE in the rescaled variables of that paper (section 4.5.3).

    Writing ``x = alpha(t) y`` and ``r = sigma(t) / alpha(t)`` (``sde.noise_ratio``), the ODE of
    any of our SDEs becomes ``dy/dr = (y - D(x, t)) / r`` with the Tweedie denoiser
    ``D = (x + sigma^2 s(x, t)) / alpha``.  In these coordinates the solution curves are
    nearly straight, so Heun steps on the ``rho = 7`` noise spacing of ``karras_times``
    reach a good sample in 10-25 evaluations.  The optional denoising step is the Euler
    step from ``r(t_eps)`` to ``r = 0`` (it returns ``D``).

    The grid is ``karras_times(sde, n_steps, t_eps, rho)``.  NFE: ``2 n_steps`` (+1 with
    ``denoise``).  ``callback`` gets ``{"i", "x", "t", "denoised", "noise_ratio", "denoise"}``,
    with ``noise_ratio`` the r reached (0 after the Tweedie step) and ``denoised`` the ``D``
    of the step's first evaluation.
    """
    x, score = _start(score_fn, x, sde, callback, stats)
    ts = karras_times(sde, n_steps, t_eps, rho)
    check_bool(denoise, "denoise")
    tl = ts.tolist()
    alpha, sigma = _coef(sde.alpha, ts), _coef(sde.sigma, ts)
    r = [s / a for s, a in zip(sigma, alpha, strict=True)]
    denoised = _denoiser(sde, ts) if callback is not None else None

    # In y = x / alpha the slope is dy/dr = (y - D) / r with D = y + (sigma^2 / alpha) s and
    # r = sigma / alpha, which is just -sigma s(x, t).  The Heun step in y, written back in x:
    #   x_pred  = (alpha_{i+1} / alpha_i) x - alpha_{i+1} dr sigma_i s(x, t_i)
    #   x_{i+1} = (alpha_{i+1} / alpha_i) x - alpha_{i+1} (dr / 2) (sigma_i s_i + sigma_{i+1} s(x_pred, t_{i+1}))
    for i in range(len(tl) - 1):
        dr, c = r[i + 1] - r[i], alpha[i + 1] / alpha[i]
        k = -alpha[i + 1] * dr
        s1 = score(x, tl[i])
        x_c = x if c == 1.0 else x * c
        x_pred = torch.add(x_c, s1, alpha=k * sigma[i])
        s2 = score(x_pred, tl[i + 1])
        x_new = torch.add(x_c, s1, alpha=0.5 * k * sigma[i]).add_(s2, alpha=0.5 * k * sigma[i + 1])
        if callback is not None:
            callback({"i": i, "x": x_new, "t": tl[i + 1], "denoised": denoised(x, s1, i), "noise_ratio": r[i + 1],
                      "denoise": False})
        x = x_new
    return _finish(score, x, sde, tl[-1], len(tl) - 1, denoise, callback, stats, report=lambda x: {"noise_ratio": 0.0})


@torch.no_grad()
def sample_dpm_solver_2(score_fn, x: torch.Tensor, sde: SDE, *, n_steps: int = 10, t_eps: float = _T_EPS,
                        spacing: str = "logsnr", rho: float | None = None, denoise: bool = True, callback=None,
                        stats=None) -> torch.Tensor:
    """DPM-Solver-2 (Lu et al. 2022, Algorithm 1, midpoint form) on the probability-flow ODE (4.5.3).

    In ``lambda = log(alpha / sigma)`` the ODE for ``x_t = alpha x_0 + sigma eps`` is solved exactly
    in its linear part; only the noise prediction ``eps = -sigma s`` is approximated, by its
    value at the midpoint ``lambda_i + h_i/2`` of each step ``h_i = lambda_{i+1} - lambda_i``::

        u       = (alpha_m / alpha_i) x - sigma_m (e^{h_i/2} - 1) eps(x, t_i)
        x_{i+1} = (alpha_{i+1} / alpha_i) x - sigma_{i+1} (e^{h_i} - 1) eps(u, t_m)

    ``spacing`` places the ``n_steps`` steps between ``t = T`` and ``t_eps``: ``"logsnr"``
    (uniform in ``lambda``, the paper's choice) or ``"karras"`` (the ``rho``-spaced noise levels
    of ``karras_times``, ``rho = 7`` by default, as k-diffusion's ``sample_dpm_2`` uses); ``rho``
    with ``"logsnr"`` is an error, since it would be ignored.  NFE ``2 n_steps`` (+1).
    ``callback`` gets ``{"i", "x", "t", "denoised", "denoise"}``, ``denoised`` from the score at
    the start of the step.
    """
    x, score = _start(score_fn, x, sde, callback, stats)
    n_steps = check_count(n_steps, "n_steps", minimum=1)
    check_choice(spacing, "spacing", ("logsnr", "karras"))
    check_bool(denoise, "denoise")
    if spacing == "logsnr":
        if rho is not None:
            raise ValueError(f"rho: expected no rho with spacing='logsnr' (rho shapes the 'karras' spacing), "
                             f"got {rho!r}")
        ends = torch.tensor([sde.T, check_t_eps(t_eps, sde.T)], dtype=torch.float64)
        grid = torch.linspace(*(-torch.log(sde.noise_ratio(ends))).tolist(), n_steps + 1, dtype=torch.float64)
    else:
        r, ends = _karras_ratios(sde, n_steps, t_eps, 7.0 if rho is None else rho)
        grid = -torch.log(r)
    lam = torch.empty(2 * n_steps + 1, dtype=torch.float64)
    lam[0::2], lam[1::2] = grid, 0.5 * (grid[:-1] + grid[1:])  # grid points and midpoints, interleaved
    ts = sde.inverse_noise_ratio(torch.exp(-lam))
    ts[0], ts[-1] = ends[0], ends[1]
    tl, alpha, sigma = ts.tolist(), _coef(sde.alpha, ts), _coef(sde.sigma, ts)
    h = (grid[1:] - grid[:-1]).tolist()
    denoised = _denoiser(sde, ts) if callback is not None else None

    # with eps = -sigma s, each update is one fused multiply-add on the score:
    # c x - sigma_m (e^{h/2} - 1) eps(x, t_j) = c x + sigma_m (e^{h/2} - 1) sigma_j s(x, t_j)
    for i in range(n_steps):
        j, mid, k = 2 * i, 2 * i + 1, 2 * i + 2
        s1 = score(x, tl[j])
        u = (x * (alpha[mid] / alpha[j])).add_(s1, alpha=sigma[mid] * math.expm1(h[i] / 2) * sigma[j])
        x_new = (x * (alpha[k] / alpha[j])).add_(score(u, tl[mid]), alpha=sigma[k] * math.expm1(h[i]) * sigma[mid])
        if callback is not None:
            callback({"i": i, "x": x_new, "t": tl[k], "denoised": denoised(x, s1, j), "denoise": False})
        x = x_new
    return _finish(score, x, sde, tl[-1], n_steps, denoise, callback, stats, report=lambda x: {})
