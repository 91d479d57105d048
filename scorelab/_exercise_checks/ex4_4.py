"""Checks of exercise 4.4 (Langevin sampling in depth): parts A1, A2, A3, B1, B2, C1.

References: ``scorelab.diagnostics.ula_stationary_variance`` and ``ula_autocorrelation``
(the closed forms of section 4.4.2, each cross-checked here against the AR(1) fixed point),
a float64 Metropolis-Hastings ratio from ``torch.distributions.Normal`` proposal densities,
a float64 leapfrog loop plus reversibility and energy-error tests, and
``scorelab.diagnostics.effective_sample_size`` on seeded AR(1) chains.
"""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_number, as_output, call, register, relative_error
from .._exercise_kit import close as _close
from ..diagnostics import effective_sample_size, ula_autocorrelation, ula_stationary_variance
from ..distributions import GaussianMixture


def _scalar(value, name: str) -> float:
    """A number that may be +inf (A1 returns math.inf beyond the stability limit)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.reshape(())
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise Mismatch(f"{name} should return a number, got {type(value).__name__}") from None
    if math.isnan(out):
        raise Mismatch(f"{name} returned NaN")
    return out


def _rel(a: float, b: float) -> float:
    if math.isinf(a) or math.isinf(b):
        return 0.0 if a == b else math.inf
    return abs(a - b) / max(abs(b), 1e-300)


def _near(a: float, b: float, tol: float = 1e-9) -> bool:
    return _rel(a, b) < tol


# -- A: closed forms of ULA on a Gaussian ---------------------------------------------------

def _ula_variance_ref(eps: float, s2: float) -> float:
    """Stationary variance of ULA on N(0, s2); inf where |a| >= 1 (no stationary law)."""
    a = 1.0 - eps / s2
    if abs(a) >= 1.0:
        return math.inf
    fixed_point = 2.0 * eps / (1.0 - a * a)          # v = a^2 v + 2 eps
    lib = ula_stationary_variance(eps, s2)
    assert _near(fixed_point, lib, 1e-12), (fixed_point, lib)
    return lib


def _ula_tau_ref(eps: float, s2: float) -> float:
    """1 + 2 sum_k rho_k with rho_k from ula_autocorrelation, summed until a^k < 1e-18."""
    a = 1.0 - eps / s2
    n_lags = 1 if a == 0 else max(10, math.ceil(math.log(1e-18) / math.log(abs(a))))
    rho = ula_autocorrelation(eps, s2, torch.arange(1, n_lags + 1))
    tau = 1.0 + 2.0 * float(rho.sum())
    assert _near(tau, (1 + a) / (1 - a), 1e-9), (tau, (1 + a) / (1 - a))
    return tau


@register("4.4.A1", "stationary variance of ULA on a Gaussian", answers=('ula_variance',), hidden=False)
def _ula_variance(fn):
    stable = ((0.1, 1.0), (0.5, 1.0), (1.9, 1.0), (0.05, 0.16), (0.3, 0.16), (1.5, 4.0))
    for eps, s2 in stable:
        ref = _ula_variance_ref(eps, s2)
        v = _scalar(call(fn, eps, s2, name="ula_variance"), "ula_variance(eps, s2)")
        if _near(v, ref):
            continue
        where = f"at eps = {eps:g}, s2 = {s2:g}"
        if _near(v, s2):
            raise Mismatch(f"{where} you return the target's variance s2 itself, but ULA with a finite step is "
                           f"biased: its chain settles at a wider law (here {ref:.4g}). Solve the fixed point of "
                           "the AR(1) recursion x' = a x + sqrt(2 eps) z.")
        if _near(v, ref / 2):
            raise Mismatch(f"{where} your variance is half the right one: the noise of one step is sqrt(2 eps) z, "
                           "whose variance is 2 eps, not eps (v = a^2 v + 2 eps).")
        if _near(v, s2 + eps / 2):
            raise Mismatch(f"{where} s2 + eps/2 is only the first-order expansion of the bias; the exact fixed "
                           "point of v = a^2 v + 2 eps is 2 eps / (1 - a^2).")
        if _near(v, s2 / (1 + eps / (2 * s2))):
            raise Mismatch(f"{where} your variance is smaller than s2, but ULA overshoots: the chain is wider "
                           "than the target. Check the sign in 1 - a^2 = (eps/s2)(2 - eps/s2).")
        a_wrong = 1 - eps * s2
        if s2 != 1.0 and abs(a_wrong) < 1 and _near(v, 2 * eps / (1 - a_wrong**2)):
            raise Mismatch(f"{where} you used a = 1 - eps * s2; the score of N(0, s2) is -x / s2, so one step "
                           "multiplies x by a = 1 - eps / s2.")
        raise Mismatch(f"{where} you return {v:.6g}, the stationary variance is {ref:.6g}. One ULA step on "
                       "N(0, s2) is x' = (1 - eps/s2) x + sqrt(2 eps) z; take the variance of both sides.")
    for eps, s2 in ((2.5, 1.0), (0.4, 0.16), (2.0, 1.0)):
        v = _scalar(call(fn, eps, s2, name="ula_variance"), "ula_variance(eps, s2)")
        if v != math.inf:
            edge = " (exactly the limit: a = -1, the variance grows by 2 eps every step)" if eps == 2 * s2 else ""
            raise Mismatch(f"at eps = {eps:g} >= 2 s2 = {2 * s2:g}{edge} |a| = |1 - eps/s2| >= 1, so the recursion "
                           f"blows up and there is no stationary variance; return math.inf there (you return {v:.4g}).")
    return ("exact at six stable (eps, s2) and inf from eps = 2 s2 on: the relative bias eps / (2 s2 - eps) is first "
            "order in the step, and the narrowest direction of a target sets the stability limit.")


@register("4.4.A2", "integrated autocorrelation time of ULA", answers=('ula_tau',), hidden=False)
def _ula_tau(fn):
    cases = ((0.2, 1.0), (0.01, 4.0), (0.16, 4.0), (1.0, 1.0), (1.5, 1.0), (0.3, 0.16))
    for eps, s2 in cases:
        ref = _ula_tau_ref(eps, s2)
        t = as_number(call(fn, eps, s2, name="ula_tau"), "ula_tau(eps, s2)")
        if _near(t, ref):
            continue
        a = 1 - eps / s2
        where = f"at eps = {eps:g}, s2 = {s2:g} (a = {a:g})"
        if _near(t, 1 / (1 - a)):
            raise Mismatch(f"{where} 1 / (1 - a) = sum over k >= 0 of a^k counts each lag once; tau = 1 + 2 "
                           "sum_{k>=1} rho_k counts the lags on both sides of 0, which gives (1 + a) / (1 - a).")
        if _near(t, 2 * a / (1 - a)):
            raise Mismatch(f"{where} the lag-0 term is missing: tau = 1 + 2 sum_{{k>=1}} a^k (rho_0 = 1).")
        if a < 0 and _near(t, (1 + abs(a)) / (1 - abs(a))):
            raise Mismatch(f"{where} for eps > s2 the coefficient a is negative: the chain flips sign every "
                           "step (antithetic), rho_k = a^k alternates, and tau = (1 + a)/(1 - a) < 1.")
        if _near(t, 1 / ref):
            raise Mismatch(f"{where} that is 1 / tau, the effective samples per step; tau itself is the number "
                           "of steps per effective sample.")
        a1 = 1 - eps
        if s2 != 1.0 and abs(a1) < 1 and _near(t, (1 + a1) / (1 - a1)):
            raise Mismatch(f"{where} you used a = 1 - eps, which holds only for s2 = 1; on N(0, s2) the "
                           "coefficient is a = 1 - eps / s2.")
        raise Mismatch(f"{where} you return {t:.6g}, tau is {ref:.6g}: sum rho_k = a^k with a = 1 - eps/s2.")
    return ("tau = (1 + a)/(1 - a) = (2 s2 - eps)/eps at six (eps, s2): about 2 s2/eps steps per effective sample for "
            "small eps, and below 1 (antithetic) for s2 < eps < 2 s2.")


def _bias_limited_step(variances: torch.Tensor, delta: float) -> float:
    """The largest eps whose relative variance bias is <= delta on every axis, by bisection."""
    lo, hi = 0.0, 2.0 * float(variances.min())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        bias = float((ula_stationary_variance(mid, variances) / variances - 1).max())
        lo, hi = (mid, hi) if bias <= delta else (lo, mid)
    return lo


def _efficiency_ref(variances: torch.Tensor, delta: float):
    eps = _bias_limited_step(variances, delta)
    taus = [_ula_tau_ref(eps, float(v)) for v in variances]
    return eps, 1000.0 / max(taus), taus


def _pair(value, name: str):
    if isinstance(value, torch.Tensor) and value.numel() == 2:
        value = value.reshape(-1).tolist()
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Mismatch(f"{name} should return a pair (eps, ess_per_1000), got {type(value).__name__}"
                       + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))
    return as_number(value[0], f"{name}[0] (eps)"), as_number(value[1], f"{name}[1] (ess_per_1000)")


@register("4.4.A3", "ULA's efficiency at a given bias", points=2.0, answers=('ula_efficiency',), hidden=False)
def _ula_efficiency(fn):
    cases = ((torch.tensor([0.16, 4.0], dtype=F64), 0.1), (torch.tensor([1.0, 1.0, 1.0], dtype=F64), 0.05),
             (torch.tensor([2.0, 0.5, 8.0, 1.0], dtype=F64), 0.2))
    for variances, delta in cases:
        eps_ref, ess_ref, taus = _efficiency_ref(variances, delta)
        eps, ess = _pair(call(fn, variances.clone(), delta, name="ula_efficiency"), "ula_efficiency(variances, delta)")
        lam_min, lam_max = float(variances.min()), float(variances.max())
        where = f"for variances {[round(v, 3) for v in variances.tolist()]} and delta = {delta:g}"
        if not _near(eps, eps_ref, 1e-6):
            if _near(eps, 2 * lam_min * delta, 1e-6):
                raise Mismatch(f"{where} eps = 2 lambda_min delta uses the first-order bias eps / (2 lambda); the "
                               "exact relative bias is eps / (2 lambda - eps), so eps = 2 lambda delta / (1 + delta).")
            if lam_max > lam_min and _near(eps, 2 * lam_max * delta / (1 + delta), 1e-6):
                raise Mismatch(f"{where} you sized the step on the widest axis; the relative bias eps / (2 lambda - "
                               "eps) is largest on the narrowest axis, so lambda_min sets the step.")
            raise Mismatch(f"{where} your step is {eps:.6g}, the largest step with bias <= delta on every axis is "
                           f"{eps_ref:.6g}.")
        if _near(ess, ess_ref, 1e-6):
            continue
        tau_min, tau_max = min(taus), max(taus)
        a_wide = 1 - eps_ref / lam_max
        if tau_max > tau_min and _near(ess, 1000 / tau_min, 1e-6):
            raise Mismatch(f"{where} that is the ESS of the narrowest axis, the best one; the worst coordinate is "
                           "the widest axis, which forgets its past slowest (a = 1 - eps / lambda_max).")
        if _near(ess, 1 / tau_max, 1e-6):
            raise Mismatch(f"{where} that is the ESS per score evaluation; the question asks per 1000 evaluations.")
        if _near(ess, tau_max, 1e-6) or _near(ess, 1000 * tau_max, 1e-6):
            raise Mismatch(f"{where} that is (a multiple of) tau, steps per effective sample; ESS per 1000 steps is "
                           "1000 / tau.")
        if _near(ess, 1000 * (1 - a_wide), 1e-6):
            raise Mismatch(f"{where} 1000 (1 - a) uses tau = 1 / (1 - a); the integrated autocorrelation time is "
                           "(1 + a) / (1 - a) (exercise A2).")
        raise Mismatch(f"{where} the step is right ({eps_ref:.6g}) but the ESS per 1000 evaluations is {ess_ref:.6g}, "
                       f"you return {ess:.6g}: 1000 / tau of the worst axis.")
    eps0, ess0, _ = _efficiency_ref(cases[0][0], 0.1)
    _, ess_iso, _ = _efficiency_ref(torch.ones(2, dtype=F64), 0.1)
    return (f"right on three targets. On variances (0.16, 4) with 10% bias ULA may only take eps = {eps0:.4f} and "
            f"gets {ess0:.2f} effective samples per 1000 evaluations; preconditioned with G = Sigma (all variances 1) "
            f"it gets {ess_iso:.0f}, {ess_iso / ess0:.0f} times more.")


# -- B: the exact variants: MALA's ratio and HMC's leapfrog ----------------------------------

def _tilted_mixture() -> GaussianMixture:
    """Chapter 4.4's two tilted, overlapping components (float64)."""
    return GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-1.5, 0.0], [1.0, 1.0]], dtype=F64),
                           torch.tensor([[[0.5, 0.3], [0.3, 0.6]], [[1.0, -0.4], [-0.4, 0.5]]], dtype=F64))


def _two_mode_1d() -> GaussianMixture:
    return GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-2.0], [2.0]], dtype=F64),
                           torch.tensor([0.25, 0.25], dtype=F64))


def _log_q(to: torch.Tensor, frm: torch.Tensor, score_frm: torch.Tensor, eps: float, var: float) -> torch.Tensor:
    """log N(to; frm + eps s(frm), var I), summed over coordinates."""
    return torch.distributions.Normal(frm + eps * score_frm, math.sqrt(var)).log_prob(to).sum(-1)


def _mala_cases():
    g = torch.Generator().manual_seed(44)
    for target, eps in ((_tilted_mixture(), 0.1), (_tilted_mixture(), 0.5), (_two_mode_1d(), 0.05)):
        x = target.sample(48, generator=g)
        z = torch.randn(x.shape, generator=g, dtype=F64)
        y = x + eps * target.score(x) + math.sqrt(2 * eps) * z       # MALA proposals from x ...
        y[:16] = x[:16] + 1.5 * torch.randn(16, x.shape[1], generator=g, dtype=F64)  # ... and some far points
        log_prob = lambda z, t=target: t.log_prob(z) + 3.7  # noqa: E731  an unnormalised log-density
        yield target, log_prob, x, y, eps


@register("4.4.B1", "MALA's log acceptance ratio", points=2.0, answers=('mala_log_accept_ratio',), hidden=False)
def _mala_ratio(fn):
    for target, lp, x, y, eps in _mala_cases():
        s = target.score
        fwd, bwd = _log_q(y, x, s(x), eps, 2 * eps), _log_q(x, y, s(y), eps, 2 * eps)
        ref = lp(y) - lp(x) + bwd - fwd
        out = as_output(call(fn, x.clone(), y.clone(), lp, s, eps, name="mala_log_accept_ratio"), ref,
                        "mala_log_accept_ratio(x, y, log_prob, score, eps)")
        if _close(out, ref, 1e-8):
            continue
        d = x.shape[1]
        if _close(out, lp(y) - lp(x), 1e-8):
            raise Mismatch("the proposal correction is missing: the Langevin proposal is not symmetric "
                           "(q(y|x) != q(x|y), its mean moves along the score), so the ratio is "
                           "p(y) q(x|y) / (p(x) q(y|x)). Without it MALA samples the wrong law.")
        if _close(out, lp(y) - lp(x) + fwd - bwd, 1e-8):
            raise Mismatch("the proposal correction is upside down: the reverse move x <- y goes in the numerator, "
                           "log q(x|y) - log q(y|x).")
        if _close(out, -ref, 1e-8):
            raise Mismatch("the sign is flipped: log alpha = log p(y) - log p(x) + log q(x|y) - log q(y|x) "
                           "(a move uphill, to higher p, must have a large ratio).")
        if _close(out, lp(y) - lp(x) + _log_q(x, y, s(y), eps, eps) - _log_q(y, x, s(x), eps, eps), 1e-8):
            raise Mismatch("the proposal variance is wrong: y = x + eps s(x) + sqrt(2 eps) z has variance 2 eps per "
                           "coordinate, so log q(y|x) = -|y - x - eps s(x)|^2 / (4 eps) + const, not / (2 eps).")
        if _close(out, lp(y) - lp(x) + _log_q(x, y, s(x), eps, 2 * eps) - fwd, 1e-8):
            raise Mismatch("the reverse proposal q(x|y) is centred at y + eps s(y): evaluate the score at y, "
                           "not at x.")
        if _close(out, lp(y) - lp(x) + _log_q(x, y, -s(y), eps, 2 * eps) - _log_q(y, x, -s(x), eps, 2 * eps), 1e-8):
            raise Mismatch("the drift of the proposal has the wrong sign: the Langevin proposal moves along the "
                           "score, mean x + eps s(x).")
        if _close(out, ref.exp(), 1e-8) or _close(out, ref.clamp_max(0).exp(), 1e-8):
            raise Mismatch("return the log of the ratio (it is compared with log u; exp can overflow).")
        if _close(out, ref.clamp_max(0), 1e-8):
            raise Mismatch("return the log ratio itself, before min(0, .): the min is taken when it is compared "
                           "with log u, and the test of detailed balance needs both directions.")
        raise Mismatch(f"in d = {d} with eps = {eps:g} your log ratio differs from the float64 reference by "
                       f"{relative_error(out, ref):.2g} (relative); at the first pair you return "
                       f"{float(out[0]):.4g}, the reference is {float(ref[0]):.4g}.")
    target, lp, x, y, eps = next(_mala_cases())
    back = as_output(call(fn, y.clone(), x.clone(), lp, target.score, eps, name="mala_log_accept_ratio"),
                     lp(x), "mala_log_accept_ratio(y, x, ...)")
    there = as_output(call(fn, x.clone(), y.clone(), lp, target.score, eps, name="mala_log_accept_ratio"),
                      lp(x), "mala_log_accept_ratio(x, y, ...)")
    antisym = float((back + there).abs().max())
    return (f"matches the float64 Metropolis-Hastings ratio on two targets, and log r(x->y) + log r(y->x) = "
            f"{antisym:.0e}: detailed balance, p(x) q(y|x) min(1, r) is symmetric in x and y.")


def _leapfrog_ref(x, v, score, h, L, sign=1.0):
    v = v + 0.5 * h * sign * score(x)
    for i in range(L):
        x = x + h * v
        v = v + (h if i < L - 1 else 0.5 * h) * sign * score(x)
    return x, v


def _euler(x, v, score, h, L):
    for _ in range(L):
        x, v = x + h * v, v + h * score(x)
    return x, v


def _symplectic_euler_kick_first(x, v, score, h, L):
    for _ in range(L):
        v = v + h * score(x)
        x = x + h * v
    return x, v


def _symplectic_euler_drift_first(x, v, score, h, L):
    for _ in range(L):
        x = x + h * v
        v = v + h * score(x)
    return x, v


def _position_verlet(x, v, score, h, L):
    for _ in range(L):
        x = x + 0.5 * h * v
        v = v + h * score(x)
        x = x + 0.5 * h * v
    return x, v


def _pair_of_tensors(value, like, name):
    if isinstance(value, torch.Tensor) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Mismatch(f"{name} should return a pair (x, v) of tensors shaped {tuple(like.shape)}, got "
                       f"{type(value).__name__}" + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                                                   else ""))
    return as_output(value[0], like, f"{name}[0] (x)"), as_output(value[1], like, f"{name}[1] (v)")


class _Counted:
    """A score function that counts its calls (one call = one score evaluation of the batch)."""

    def __init__(self, score):
        self.score, self.n = score, 0

    def __call__(self, x):
        self.n += 1
        return self.score(x)


def _energy(target, x, v):
    return -target.log_prob(x) + 0.5 * (v * v).sum(-1)


@register("4.4.B2", "leapfrog integrator of HMC", points=2.0, answers=('leapfrog',), hidden=False)
def _leapfrog(fn):
    target = _tilted_mixture()
    g = torch.Generator().manual_seed(45)
    x0 = target.sample(32, generator=g)
    v0 = torch.randn(x0.shape, generator=g, dtype=F64)
    name = "leapfrog(x, v, score, h, L)"
    for h, L in ((0.1, 15), (0.25, 4), (0.3, 1)):
        x_in, v_in = x0.clone(), v0.clone()
        counted = _Counted(target.score)
        xo, vo = _pair_of_tensors(call(fn, x_in, v_in, counted, h, L, name="leapfrog"), x0, name)
        if not (torch.equal(x_in, x0) and torch.equal(v_in, v0)):
            raise Mismatch("your leapfrog changed its input tensors in place (x += ..., v += ...): HMC must keep "
                           "the old state when the proposal is rejected. Write x = x + h * v instead.")
        xr, vr = _leapfrog_ref(x0, v0, target.score, h, L)
        if _close(xo, xr, 1e-9) and _close(vo, vr, 1e-9):
            continue
        where = f"with h = {h:g}, L = {L}"
        if _close(xo, vr, 1e-9) and _close(vo, xr, 1e-9):
            raise Mismatch(f"{where} x and v come back swapped: return (x, v) in that order.")
        xs, vs = _leapfrog_ref(x0, v0, target.score, h, L, sign=-1.0)
        if _close(xo, xs, 1e-9):
            raise Mismatch(f"{where} the force has the wrong sign: with U = -log p the force is -grad U = +score, "
                           "so each kick is v <- v + (h/2) score(x).")
        for variant, msg in ((_euler, "explicit Euler (x and v both updated from the old state)"),
                             (_symplectic_euler_kick_first, "symplectic Euler (a full kick, then a full drift)"),
                             (_symplectic_euler_drift_first, "symplectic Euler (a full drift, then a full kick)")):
            xe, ve = variant(x0, v0, target.score, h, L)
            if _close(xo, xe, 1e-9) and _close(vo, ve, 1e-9):
                raise Mismatch(f"{where} this is {msg}, a first-order scheme. Leapfrog splits each kick in two "
                               "halves around the drift: v += (h/2) s(x); x += h v; v += (h/2) s(x).")
        xp, vp = _position_verlet(x0, v0, target.score, h, L)
        if _close(xo, xp, 1e-9) and _close(vo, vp, 1e-9):
            raise Mismatch(f"{where} this is position Verlet (half drift, full kick, half drift): reversible and "
                           "second order too, but not the kick-drift-kick leapfrog asked for (the one sample_hmc "
                           "uses, whose last score, at the end point, is reused by the next iteration).")
        for L_wrong in (L - 1, L + 1):
            if L_wrong >= 1:
                xw, vw = _leapfrog_ref(x0, v0, target.score, h, L_wrong)
                if _close(xo, xw, 1e-9) and _close(vo, vw, 1e-9):
                    raise Mismatch(f"{where} you made {L_wrong} leapfrog steps instead of L = {L}.")
        if _close(xo, xr, 1e-9):
            raise Mismatch(f"{where} x is right but v is not: the last half kick v += (h/2) s(x_L) at the new "
                           "position is missing or doubled.")
        # an unknown mistake: test the two properties HMC relies on
        xb, vb = _pair_of_tensors(call(fn, xo.clone(), -vo.clone(), target.score, h, L, name="leapfrog"), x0, name)
        if not (_close(xb, x0, 1e-6) and _close(-vb, v0, 1e-6)):
            raise Mismatch(f"{where} your integrator is not time-reversible: starting from the end point with the "
                           "momentum negated does not lead back to the start (off by "
                           f"{relative_error(xb, x0):.2g}); HMC's Metropolis test relies on that symmetry.")
        raise Mismatch(f"{where} your end point differs from leapfrog by {relative_error(xo, xr):.2g} (x) and "
                       f"{relative_error(vo, vr):.2g} (v) (relative). It is time-reversible, so look at the order "
                       "and size of the steps: v += (h/2) s(x); x += h v; v += (h/2) s(x), L times.")
    counted = _Counted(target.score)
    call(fn, x0.clone(), v0.clone(), counted, 0.1, 15, name="leapfrog")
    # energy error at a fixed time T = 1.2: halving h should divide it by about 4
    errs = []
    for h, L in ((0.1, 12), (0.05, 24)):
        xo, vo = _pair_of_tensors(call(fn, x0.clone(), v0.clone(), target.score, h, L, name="leapfrog"), x0, name)
        errs.append(float((_energy(target, xo, vo) - _energy(target, x0, v0)).abs().max()))
    order = math.log2(errs[0] / errs[1])
    tip = (f" You call the score {counted.n} times for L = 15; caching the last score merges the half kicks, so "
           "L + 1 calls suffice." if counted.n > 16 else f" {counted.n} score calls for L = 15 (L + 1: no waste).")
    return (f"matches leapfrog for three (h, L); the energy error at time 1.2 falls from {errs[0]:.1e} to "
            f"{errs[1]:.1e} when h halves (order {order:.1f}, second order)." + tip)


# -- C: a fair measure of efficiency ---------------------------------------------------------

def _ar1(T: int, N: int, a: float, g: torch.Generator) -> torch.Tensor:
    """N stationary AR(1) chains x_{t+1} = a x_t + sqrt(1 - a^2) z of length T: (T, N)."""
    z = torch.randn(T, N, generator=g, dtype=F64)
    x = torch.empty(T, N, dtype=F64)
    x[0] = z[0]
    c = math.sqrt(1 - a * a)
    for t in range(1, T):
        x[t] = a * x[t - 1] + c * z[t]
    return x


def _ess_cases():
    g = torch.Generator().manual_seed(46)
    # a ULA-like run: one score evaluation per state, a slow and a fast coordinate
    ula = torch.stack([3.0 * _ar1(2000, 8, 0.95, g), 0.5 * _ar1(2000, 8, 0.5, g)], -1)
    yield "a ULA-like run", ula, 2000
    # an HMC-like run: 10 evaluations per state, antithetic in x (a < 0), so x^2 is the worst statistic
    hmc = _ar1(1000, 6, -0.8, g)[:, :, None]
    yield "an HMC-like run", hmc, 1 + 10 * 1000


@register("4.4.C1", "worst-statistic ESS per 1000 score evaluations", answers=('worst_ess_per_1000',), hidden=False)
def _worst_ess(fn):
    for label, traj, nfe in _ess_cases():
        T, N, d = traj.shape
        stats = torch.cat([traj, traj * traj], -1)
        ess = effective_sample_size(stats, monotone=False)
        ref = 1000 * float(ess.min()) / (N * nfe)
        out = as_number(call(fn, traj.clone(), nfe, name="worst_ess_per_1000"), "worst_ess_per_1000(trajectory, nfe)")
        if _near(out, ref, 1e-6):
            continue
        where = f"on {label} (T = {T} states, N = {N} chains, nfe = {nfe})"
        if _near(out, 1000 * float(effective_sample_size(traj, monotone=False).min()) / (N * nfe), 1e-6):
            raise Mismatch(f"{where} you left out the squares: this chain is antithetic, so the mean of x is "
                           "estimated very well (ESS > T) while x^2, hence the variance, mixes slowly. The worst "
                           "statistic must include y_i^2.")
        if _near(out, 1000 * float(effective_sample_size(stats).min()) / (N * nfe), 1e-6):
            raise Mismatch(f"{where} use effective_sample_size(..., monotone=False): kinetic Langevin is not "
                           "reversible, so Geyer's monotone correction does not apply to every sampler we compare.")
        if nfe != T and _near(out, 1000 * float(ess.min()) / (N * T), 1e-6):
            raise Mismatch(f"{where} you divided by the number of states T, not by the score evaluations: one "
                           "HMC state costs L evaluations, and the cost is what we compare.")
        if _near(out, N * ref, 1e-6):
            raise Mismatch(f"{where} divide by N * nfe: effective_sample_size adds up the N chains, and the run "
                           "cost N * nfe evaluations.")
        if _near(out, ref / 1000, 1e-6):
            raise Mismatch(f"{where} that is per score evaluation; multiply by 1000.")
        if _near(out, 1000 * float(ess.mean()) / (N * nfe), 1e-6):
            raise Mismatch(f"{where} take the minimum over the statistics, not the mean: the slowest statistic "
                           "decides how long the chain must run.")
        raise Mismatch(f"{where} you return {out:.6g}, the worst-statistic ESS per 1000 evaluations is {ref:.6g}.")
    return ("right on a ULA-like and an HMC-like run: on the antithetic chain the mean looks super-efficient "
            "(ESS > T) while x^2 is the bottleneck, and an HMC state is charged its L evaluations.")
