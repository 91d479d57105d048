"""Checks of exercise 4.5 (the unified SDE framework): parts A1-A4, B1-B3.

References: scorelab's tested SDE classes (``VPSDE``, ``SubVPSDE``, ``VESDE``, ``reverse``,
``score_to_eps`` / ``eps_to_score``, ``inverse_noise_ratio``), and for the cosine schedule of
part B, the closed form of Nichol & Dhariwal (2021) in float64 with its derivatives taken by
autograd, never the formula the student is asked to derive.
"""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_number, as_output, call, register, relative_error
from .._exercise_kit import close as _close
from ..distributions import two_mode_1d
from ..sde_samplers import simulate_forward
from ..sdes import SDE, VESDE, VPSDE, SubVPSDE, eps_to_score, score_to_eps
from ..utils import make_generator

COSINE_T = 0.9946  # end time of the cosine VP SDE: alpha_bar(T) ~ 7e-5, beta(T) ~ 370


# -- shared references ------------------------------------------------------------------

def _int_beta(t: torch.Tensor, beta_min: float, beta_max: float) -> torch.Tensor:
    return beta_min * t + 0.5 * (beta_max - beta_min) * t**2


def _cos_log_alpha_bar(t: torch.Tensor, s: float) -> torch.Tensor:
    """log of Nichol & Dhariwal's alpha_bar(t) = cos^2(pi/2 (t+s)/(1+s)) / cos^2(pi/2 s/(1+s)), float64."""
    log_c0 = math.log(math.cos(0.5 * math.pi * s / (1 + s)))
    return 2 * torch.log(torch.cos(0.5 * math.pi * (t + s) / (1 + s))) - 2 * log_c0


def _derivative(fn, t: torch.Tensor) -> torch.Tensor:
    """d/dt fn(t) for an element-wise fn, by autograd (float64)."""
    t = t.detach().clone().requires_grad_(True)
    (d,) = torch.autograd.grad(fn(t).sum(), t)
    return d.detach()


def _cos_beta(t: torch.Tensor, s: float) -> torch.Tensor:
    """beta(t) = -d/dt log alpha_bar(t), by autograd of the closed form."""
    return -_derivative(lambda u: _cos_log_alpha_bar(u, s), t)


class _CosineVPReference(SDE):
    """The cosine VP SDE built from the closed form, for part B3.  Like most new SDEs it has
    no closed-form ``inverse_noise_ratio``, so a student's root finder must use alpha and sigma."""

    T = COSINE_T

    def __init__(self, s: float = 0.008):
        super().__init__()
        self.s = s

    def _beta(self, t):
        return math.pi / (1 + self.s) * torch.tan(0.5 * math.pi * (t + self.s) / (1 + self.s))

    def drift_coef(self, t):
        return -0.5 * self._beta(t)

    def diffusion_coef(self, t):
        return torch.sqrt(self._beta(t))

    def alpha(self, t):
        return torch.exp(0.5 * _cos_log_alpha_bar(t, self.s))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(_cos_log_alpha_bar(t, self.s)))

    def inverse_noise_ratio(self, r):
        raise RuntimeError("inverse_noise_ratio is not available for this SDE (nor for most new SDEs): "
                           "find t from sde.alpha(t) and sde.sigma(t) alone")

    def __repr__(self) -> str:
        return f"CosineVPSDE(s={self.s})"


def _pair(value, name: str):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Mismatch(f"{name} should return a pair (alpha, sigma) of tensors, got {type(value).__name__}"
                       + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))
    return value


def _log_or_none(v: torch.Tensor):
    return torch.log(v) if bool((v > 0).all()) else None


# -- A1: the VP marginal ------------------------------------------------------------------

@register("4.5.A1", "VP SDE marginal: alpha(t) and sigma(t)", answers=('vp_marginal',), hidden=False)
def _vp_marginal(fn):
    t = torch.linspace(0.0, 1.0, 41, dtype=F64)
    for bmin, bmax in ((0.1, 20.0), (1.0, 4.0)):
        vp = VPSDE(bmin, bmax)
        ref_a, ref_s = vp.alpha(t), vp.sigma(t)
        out = _pair(call(fn, t.clone(), bmin, bmax, name="vp_marginal"), "vp_marginal(t, beta_min, beta_max)")
        a = as_output(out[0], ref_a, "vp_marginal(...)[0] (alpha)")
        s = as_output(out[1], ref_s, "vp_marginal(...)[1] (sigma)")
        if _close(a, ref_s, 1e-6) and _close(s, ref_a, 1e-6):
            raise Mismatch("alpha and sigma are swapped: return (alpha, sigma), the signal scale first.")
        B = _int_beta(t, bmin, bmax)
        beta = bmin + (bmax - bmin) * t
        if not _close(a, ref_a, 1e-6):
            if _close(a, torch.exp(-B), 1e-6):
                raise Mismatch("alpha is missing the 1/2 in the exponent: exp(-B(t)) is alpha(t)^2, the DDPM "
                               "alpha_bar. The drift -beta x / 2 shrinks the mean like exp(-B/2).")
            if _close(a, torch.exp(-0.5 * t * beta), 1e-6):
                raise Mismatch("you used B(t) = t beta(t) = beta_min t + (beta_max - beta_min) t^2, as if beta had "
                               "stayed at its current value since t = 0; the t^2 term needs a 1/2: "
                               "B(t) = int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / 2.")
            if _close(a, torch.exp(-0.5 * beta), 1e-6):
                raise Mismatch("the exponent uses beta(t) itself; it needs its integral B(t) = int_0^t beta(u) du.")
            log_a = _log_or_none(a)
            if log_a is not None:
                e = -2 * log_a  # the student's B(t); linear in t if they integrated beta as a constant
                c = float((e * t).sum() / (t * t).sum())
                if relative_error(e, c * t) < 1e-6 and relative_error(e, B) > 1e-3:
                    raise Mismatch(f"your exponent is linear in t (B(t) = {c:.4g} t): beta(t) is not constant but "
                                   "grows linearly from beta_min to beta_max, so its integral B(t) is quadratic in t.")
            raise Mismatch(f"at beta_min = {bmin}, beta_max = {bmax} your alpha differs from VPSDE's by "
                           f"{relative_error(a, ref_a):.2g} (relative); at t = 0.5 you return {float(a[20]):.5g}, "
                           f"alpha is {float(ref_a[20]):.5g}.")
        if not _close(s, ref_s, 1e-6):
            if _close(s, ref_s**2, 1e-6):
                raise Mismatch("your sigma is the variance 1 - alpha^2; the std is its square root. (1 - alpha^2 "
                               "happens to be the std of the sub-VP SDE, part A2.)")
            if _close(s, torch.sqrt(1 - ref_a), 1e-6):
                raise Mismatch("sigma^2 = 1 - alpha^2, not 1 - alpha: the variance of alpha x0 + sigma eps for unit-"
                               "variance data is alpha^2 + sigma^2, and VP keeps it at one.")
            raise Mismatch(f"alpha is right, sigma is off by {relative_error(s, ref_s):.2g} (relative): VP keeps "
                           "alpha^2 + sigma^2 = 1 for unit-variance data.")
    t1 = torch.tensor([1.0], dtype=F64)
    return (f"matches VPSDE for two schedules; with DDPM's (0.1, 20) only alpha(1) = {float(VPSDE().alpha(t1)):.4f} "
            "of the signal is left at t = 1, and alpha^2 + sigma^2 = 1 at every t.")


# -- A2: the sub-VP standard deviation --------------------------------------------------

@register("4.5.A2", "sub-VP SDE: noise standard deviation", answers=('subvp_sigma',), hidden=False)
def _subvp_sigma(fn):
    t = torch.linspace(0.0, 1.0, 41, dtype=F64)
    for bmin, bmax in ((0.1, 20.0), (1.0, 4.0)):
        ref = SubVPSDE(bmin, bmax).sigma(t)
        out = as_output(call(fn, t.clone(), bmin, bmax, name="subvp_sigma"), ref, "subvp_sigma(t, beta_min, beta_max)")
        if _close(out, ref, 1e-6):
            continue
        B = _int_beta(t, bmin, bmax)
        if _close(out, VPSDE(bmin, bmax).sigma(t), 1e-6):
            raise Mismatch("that is the VP SDE's std sqrt(1 - exp(-B)). Sub-VP has a smaller diffusion "
                           "g^2 = beta (1 - exp(-2B)); solve the variance ODE dV/dt = -beta V + g^2 with V(0) = 0.")
        if _close(out, ref**2, 1e-6):
            raise Mismatch("you returned the variance (1 - exp(-B))^2; the std is 1 - exp(-B).")
        if _close(out, -torch.expm1(-2 * B), 1e-6) or _close(out, torch.sqrt(-torch.expm1(-2 * B)), 1e-6):
            raise Mismatch("the exp(-2B) of g^2 is not the answer's exponent: with V = (1 - exp(-B))^2, "
                           "dV/dt = 2 beta exp(-B) (1 - exp(-B)) and -beta V + g^2 = beta (1 - exp(-B)) "
                           "(-(1 - exp(-B)) + 1 + exp(-B)) agree, so sigma = 1 - exp(-B).")
        if _close(out, -torch.expm1(-0.5 * B), 1e-6):
            raise Mismatch("1 - alpha is not it: sigma = 1 - alpha^2 = 1 - exp(-B), with alpha = exp(-B/2).")
        raise Mismatch(f"at beta_min = {bmin}, beta_max = {bmax} your sigma differs from SubVPSDE's by "
                       f"{relative_error(out, ref):.2g} (relative). Solve dV/dt = 2 f V + g^2 with f = -beta/2, "
                       "g^2 = beta (1 - exp(-2B)), V(0) = 0.")
    tm = torch.tensor([0.1], dtype=F64)
    sub, vp = float(SubVPSDE().sigma(tm)), float(VPSDE().sigma(tm))
    return (f"matches SubVPSDE: sigma_sub = 1 - alpha^2 = sigma_VP^2 < sigma_VP, e.g. {sub:.3f} against VP's {vp:.3f} "
            "at t = 0.1; the two meet only where sigma -> 1, at large t.")


# -- A3: reverse SDE and probability-flow ODE --------------------------------------------

def _drift_cases():
    g = torch.Generator().manual_seed(453)
    n, d = 7, 3  # n != d, so that a (N,) coefficient multiplied with (N, d) fails loudly
    x = 2 * torch.randn(n, d, generator=g, dtype=F64)
    t = 0.05 + 0.95 * torch.rand(n, generator=g, dtype=F64)
    score = torch.randn(n, d, generator=g, dtype=F64)
    return x, t, score


def _call_drift(fn, name, x, t, score, sde, ref):
    x_in, t_in, s_in = x.clone(), t.clone(), score.clone()
    out = as_output(call(fn, x_in, t_in, s_in, sde, name=name), ref, f"{name}(x, t, score, sde)")
    if not (torch.equal(x_in, x) and torch.equal(t_in, t) and torch.equal(s_in, score)):
        raise Mismatch(f"{name} changed one of its inputs in place (e.g. x *= ... or score.mul_(...)); compute a new "
                       "tensor instead, a sampler still needs x after the drift.")
    return out


@register("4.5.A3", "reverse-SDE and probability-flow ODE drifts", points=2.0, answers=('reverse_drift', 'ode_drift'), hidden=False)
def _drifts(reverse_drift, ode_drift):
    x, t, score = _drift_cases()
    sdes = (VPSDE(), SubVPSDE(), VESDE())
    for sde in sdes:  # the reverse SDE first, on all three
        ref = sde.reverse(lambda y, tt: score).sde(x, t)[0]
        f = sde.drift_coef(t)[:, None] * x
        gg = sde.diffusion_coef(t)[:, None]
        out = _call_drift(reverse_drift, "reverse_drift", x, t, score, sde, ref)
        if _close(out, ref, 1e-6):
            continue
        if _close(out, f + gg**2 * score, 1e-6):
            raise Mismatch("the sign of the score term is flipped: the reverse drift is f - g^2 s. Time runs "
                           "backwards (dt < 0), so -g^2 s dt = +g^2 |dt| s moves x up the density.")
        if _close(out, -ref, 1e-6):
            raise Mismatch("you negated the whole drift, which is the velocity in the reversed clock tau = T - t. "
                           "Here, as in sde.reverse and the samplers, t itself runs from T down to 0 with dt < 0, "
                           "and the drift is f(x, t) - g(t)^2 s.")
        if _close(out, f - 0.5 * gg**2 * score, 1e-6):
            raise Mismatch("that is the probability-flow ODE's drift: the reverse SDE carries the full g^2 s; "
                           "the 1/2 belongs to the ODE, which has no noise to share the work with.")
        if _close(out, f - score, 1e-6):
            raise Mismatch(f"the factor g(t)^2 in front of the score is missing ({type(sde).__name__}).")
        if _close(out, f - gg * score, 1e-6):
            raise Mismatch("the score is multiplied by g(t); it needs g(t)^2 (the diffusion coefficient squared).")
        if sde.drift_coef(t).abs().max() > 0 and _close(out, -gg**2 * score, 1e-6):
            raise Mismatch(f"the forward drift f(x, t) = f(t) x is missing: for {type(sde).__name__} "
                           "f(t) = -beta(t)/2, and the reverse drift is f(x, t) - g^2 s.")
        if _close(out, -f - gg**2 * score, 1e-6):
            raise Mismatch("the sign of f is flipped: the reverse drift keeps the forward drift f(x, t) as it is "
                           "and subtracts g^2 s.")
        raise Mismatch(f"for {sde!r} your reverse drift differs from sde.reverse(score).sde(x, t) by "
                       f"{relative_error(out, ref):.2g} (relative). The drift is f(t) x - g(t)^2 s, with the (N,) "
                       "coefficients broadcast over the d coordinates.")
    for sde in sdes:
        ref = sde.reverse(lambda y, tt: score, probability_flow=True).sde(x, t)[0]
        f = sde.drift_coef(t)[:, None] * x
        gg = sde.diffusion_coef(t)[:, None]
        out = _call_drift(ode_drift, "ode_drift", x, t, score, sde, ref)
        if _close(out, ref, 1e-6):
            continue
        if _close(out, f - gg**2 * score, 1e-6):
            raise Mismatch("the 1/2 is missing: the probability-flow ODE's drift is f - g^2 s / 2. Without noise, "
                           "half of the score term is what the diffusion did in the SDE (Fokker-Planck: "
                           "g^2/2 Laplacian p = div(g^2/2 p grad log p)).")
        if _close(out, f + 0.5 * gg**2 * score, 1e-6):
            raise Mismatch("the sign of the score term is flipped: the ODE's drift is f - g^2 s / 2.")
        if _close(out, -ref, 1e-6):
            raise Mismatch("you negated the whole drift (the velocity in tau = T - t); keep t as the clock: "
                           "dx/dt = f(x, t) - g(t)^2 s / 2, integrated from T down to 0.")
        if _close(out, f - 0.5 * score, 1e-6) or _close(out, f - 0.5 * gg * score, 1e-6):
            raise Mismatch("the score term needs g(t)^2 / 2 in front.")
        if sde.drift_coef(t).abs().max() > 0 and _close(out, -0.5 * gg**2 * score, 1e-6):
            raise Mismatch(f"the forward drift f(t) x is missing from the ODE (it matters for {type(sde).__name__}).")
        raise Mismatch(f"for {sde!r} your ODE drift differs from sde.reverse(score, probability_flow=True).sde(x, t) "
                       f"by {relative_error(out, ref):.2g} (relative).")
    return ("both drifts match sde.reverse for VP, sub-VP and VE: the same score, with weight g^2 in the SDE and "
            "g^2/2 in the deterministic ODE that shares its marginals.")


# -- A4: noise prediction and score -----------------------------------------------------

@register("4.5.A4", "noise prediction and score", answers=('eps_from_score', 'score_from_eps'), hidden=False)
def _eps_score(eps_from_score, score_from_eps):
    g = torch.Generator().manual_seed(454)
    for shape in ((6, 2), (6, 1, 4, 4)):
        score = torch.randn(shape, generator=g, dtype=F64)
        eps = torch.randn(shape, generator=g, dtype=F64)
        sigma = 0.05 + 2 * torch.rand(shape[0], generator=g, dtype=F64)
        sb = sigma.reshape((-1,) + (1,) * (len(shape) - 1))
        ref = score_to_eps(score, sigma)
        out = as_output(call(eps_from_score, score.clone(), sigma.clone(), name="eps_from_score"), ref,
                        "eps_from_score(score, sigma)")
        if not _close(out, ref, 1e-10):
            if _close(out, -ref, 1e-10):
                raise Mismatch("the sign is flipped: the score of x_t = alpha x0 + sigma eps given x0 is -eps/sigma, "
                               "so eps = -sigma s (the noise points away from the data, the score towards it).")
            if _close(out, -score / sb, 1e-10):
                raise Mismatch("you divided by sigma: s = -eps / sigma, so eps = -sigma s (multiply).")
            if _close(out, -sb**2 * score, 1e-10):
                raise Mismatch("-sigma^2 s is the Tweedie step (x + sigma^2 s is the denoised alpha x0), not the "
                               "noise; eps = -sigma s.")
            raise Mismatch(f"for a batch of shape {shape} your eps differs from scorelab.sdes.score_to_eps by "
                           f"{relative_error(out, ref):.2g} (relative); broadcast the (N,) sigma over the other axes "
                           "(scorelab.sdes.append_dims).")
        ref = eps_to_score(eps, sigma)
        out = as_output(call(score_from_eps, eps.clone(), sigma.clone(), name="score_from_eps"), ref,
                        "score_from_eps(eps, sigma)")
        if not _close(out, ref, 1e-10):
            if _close(out, -ref, 1e-10):
                raise Mismatch("the sign is flipped: s = -eps / sigma.")
            if _close(out, -eps * sb, 1e-10):
                raise Mismatch("you multiplied by sigma: the inverse of eps = -sigma s is s = -eps / sigma.")
            if _close(out, -eps / sb**2, 1e-10):
                raise Mismatch("one sigma too many: s = -eps / sigma (eps has unit variance, the score has 1/sigma).")
            raise Mismatch(f"for a batch of shape {shape} your score differs from scorelab.sdes.eps_to_score by "
                           f"{relative_error(out, ref):.2g} (relative).")
    return ("eps = -sigma s and s = -eps / sigma, for points and images: DDPM's noise predictor is the score "
            "rescaled, and the two losses differ only by the weight sigma^2.")


# -- B1: the cosine schedule ------------------------------------------------------------

@register("4.5.B1", "cosine schedule: log alpha_bar and beta", answers=('cosine_log_alpha_bar', 'cosine_beta'), hidden=False)
def _cosine_schedule(log_alpha_bar_fn, beta_fn):
    t = torch.linspace(0.0, 0.99, 45, dtype=F64)
    for s in (0.008, 0.05):
        ref = _cos_log_alpha_bar(t, s)
        out = as_output(call(log_alpha_bar_fn, t.clone(), s, name="cosine_log_alpha_bar"), ref,
                        "cosine_log_alpha_bar(t, s)")
        if not _close(out, ref, 1e-8):
            c0 = math.cos(0.5 * math.pi * s / (1 + s))
            if _close(out, ref.exp(), 1e-8):
                raise Mismatch("you returned alpha_bar itself; the function should return its logarithm "
                               "(log alpha_bar is what beta differentiates, and it stays accurate near t = T).")
            if _close(out, ref + 2 * math.log(c0), 1e-8):
                raise Mismatch(f"alpha_bar(0) should be 1: divide by cos^2(pi/2 s/(1+s)) = {c0**2:.6f} "
                               f"(at s = {s}), i.e. subtract its log.")
            if _close(out, 0.5 * ref, 1e-8) or _close(out, 0.5 * (ref + 2 * math.log(c0)), 1e-8):
                raise Mismatch("alpha_bar has cos squared: log alpha_bar = 2 log cos(...) - 2 log cos(...).")
            raise Mismatch(f"at s = {s} your log alpha_bar differs from the closed form by "
                           f"{relative_error(out, ref):.2g} "
                           f"(relative); at t = 0 it should be 0 (you return {float(out[0]):.4g}), at t = 0.495 it "
                           f"should be {float(ref[22]):.5g} (you return {float(out[22]):.5g}).")
        ref_b = _cos_beta(t, s)
        out = as_output(call(beta_fn, t.clone(), s, name="cosine_beta"), ref_b, "cosine_beta(t, s)")
        if _close(out, ref_b, 1e-6):
            continue
        if _close(out, -ref_b, 1e-6):
            raise Mismatch("the sign is flipped: alpha_bar decreases, so beta = -d/dt log alpha_bar is positive.")
        if _close(out, ref_b * ref.exp(), 1e-6):
            raise Mismatch("that is -d/dt alpha_bar; beta is the relative decay rate -d/dt log alpha_bar "
                           "(= -alpha_bar' / alpha_bar), the continuous version of DDPM's "
                           "1 - alpha_bar_i / alpha_bar_{i-1}.")
        if _close(out, 0.5 * ref_b, 1e-6):
            raise Mismatch("half of beta: did you differentiate log alpha = log alpha_bar / 2, or log cos instead "
                           "of log cos^2?")
        if _close(out, 2 * ref_b, 1e-6):
            raise Mismatch("twice beta: beta = -d/dt log alpha_bar, with no extra factor 2 (f = -beta/2 is where "
                           "the 1/2 goes).")
        if _close(out, ref_b * 2 * (1 + s) / math.pi, 1e-6):
            raise Mismatch("the chain-rule factor of the inner function is missing: d/dt [pi/2 (t+s)/(1+s)] = "
                           "pi / (2 (1+s)).")
        raise Mismatch(f"at s = {s} your beta differs from -d/dt log alpha_bar (autograd of the closed form) by "
                       f"{relative_error(out, ref_b):.2g} (relative); at t = 0.495 you return {float(out[22]):.5g}, "
                       f"beta is {float(ref_b[22]):.5g}.")
    tt = torch.tensor([0.0, 0.5, COSINE_T], dtype=F64)
    b = _cos_beta(tt, 0.008)
    return (f"matches the closed form and autograd: beta = {float(b[0]):.3f} at t = 0, {float(b[1]):.2f} at t = 0.5, "
            f"{float(b[2]):.0f} at T = {COSINE_T} (infinite at t = 1, hence T < 1).")


# -- B2: the cosine VP SDE as an SDE class -----------------------------------------------

def _method(sde, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return as_output(call(getattr(sde, name), t.clone(), name=f"CosineVPSDE.{name}"), like, f"CosineVPSDE.{name}(t)")


@register("4.5.B2", "a new SDE class: the cosine VP SDE", points=2.0, answers=('CosineVPSDE',), hidden=False)
def _cosine_sde(cls):
    t = torch.linspace(0.001, 0.99, 45, dtype=F64)  # from a small t > 0, as the samplers (t_eps): sigma(0) = 0
    for s in (0.008, 0.05):
        sde = call(cls, s=s, name="CosineVPSDE")
        if not isinstance(sde, SDE):
            raise Mismatch(f"CosineVPSDE(s={s}) should be an instance of scorelab.sdes.SDE (class CosineVPSDE(SDE): "
                           f"...), got {type(sde).__name__}; only then do scorelab's samplers accept it.")
        if not 0.9 < float(sde.T) < 1.0:
            raise Mismatch(f"T = {sde.T}: keep T = {COSINE_T} < 1; alpha_bar(1) = 0 and beta(1) is infinite, so the "
                           "SDE cannot run to t = 1.")
        log_ab = _cos_log_alpha_bar(t, s)
        ref_a = torch.exp(0.5 * log_ab)
        ref_s = torch.sqrt(-torch.expm1(log_ab))
        ref_f = _derivative(lambda u, s=s: 0.5 * _cos_log_alpha_bar(u, s), t)  # f = d/dt log alpha
        ref_v = -torch.expm1(log_ab)  # V = sigma^2
        dv = _derivative(lambda u, s=s: -torch.expm1(_cos_log_alpha_bar(u, s)), t)
        ref_g = torch.sqrt(dv - 2 * ref_f * ref_v)  # g^2 = dV/dt - 2 f V
        a = _method(sde, "alpha", t, ref_a)
        if not _close(a, ref_a, 1e-8):
            if _close(a, ref_a**2, 1e-8):
                raise Mismatch("alpha returns alpha_bar: the mean scale is alpha(t) = sqrt(alpha_bar(t)); alpha_bar "
                               "is the signal's share of the variance.")
            raise Mismatch(f"at s = {s} alpha differs from sqrt(alpha_bar) by {relative_error(a, ref_a):.2g} "
                           f"(relative); at t = {float(t[22]):.3f} you return {float(a[22]):.5g}, alpha is "
                           f"{float(ref_a[22]):.5g}.")
        sg = _method(sde, "sigma", t, ref_s)
        if not _close(sg, ref_s, 1e-8):
            if _close(sg, ref_s**2, 1e-8):
                raise Mismatch("sigma returns the variance 1 - alpha_bar; the std is sqrt(1 - alpha_bar).")
            if _close(sg, torch.sqrt(1 - ref_a), 1e-8):
                raise Mismatch("sigma^2 = 1 - alpha^2 = 1 - alpha_bar, not 1 - alpha.")
            raise Mismatch(f"at s = {s} sigma differs from sqrt(1 - alpha_bar) by {relative_error(sg, ref_s):.2g} "
                           "(relative); a VP SDE keeps alpha^2 + sigma^2 = 1.")
        f = _method(sde, "drift_coef", t, ref_f)
        if not _close(f, ref_f, 1e-6):
            if _close(f, 2 * ref_f, 1e-6):
                raise Mismatch("drift_coef is -beta, missing the 1/2: with f = -beta the mean would shrink like "
                               "alpha_bar = alpha^2, not alpha. For a linear SDE f(t) = d/dt log alpha(t) = -beta/2.")
            if _close(f, -ref_f, 1e-6):
                raise Mismatch("drift_coef has the wrong sign: f(t) = -beta(t)/2 < 0 pulls x towards 0.")
            raise Mismatch(f"drift_coef differs from d/dt log alpha(t) (autograd) by {relative_error(f, ref_f):.2g} "
                           "(relative); for a linear SDE the mean obeys d/dt alpha = f alpha.")
        gg = _method(sde, "diffusion_coef", t, ref_g)
        if not _close(gg, ref_g, 1e-6):
            if _close(gg, ref_g**2, 1e-6):
                raise Mismatch("diffusion_coef returns beta; g(t) is its square root: the noise added in dt has "
                               "variance g^2 dt = beta dt.")
            if _close(gg, torch.sqrt(ref_g**2 * -torch.expm1(2 * log_ab)), 1e-6):
                raise Mismatch("that is the sub-VP diffusion sqrt(beta (1 - alpha_bar^2)); with it the std would be "
                               "1 - alpha_bar, not your sigma = sqrt(1 - alpha_bar).")
            raise Mismatch(f"diffusion_coef differs from sqrt(dV/dt - 2 f V) (V = sigma^2, by autograd) by "
                           f"{relative_error(gg, ref_g):.2g} (relative): g must add exactly the variance that f "
                           "removes.")
    # the class plugs into scorelab: Euler--Maruyama on it reaches the marginal it claims
    sde = call(cls, name="CosineVPSDE")
    x0 = two_mode_1d().sample(20_000, generator=make_generator(455)).double()
    t_end, n = 0.6, x0.shape[0]
    xt = call(simulate_forward, x0, sde, n_steps=400, t_end=t_end, generator=make_generator(456),
              name="simulate_forward")
    te = torch.tensor([t_end], dtype=F64)
    log_ab_end = _cos_log_alpha_bar(te, 0.008)
    a, sg = float(torch.exp(0.5 * log_ab_end)), float(torch.sqrt(-torch.expm1(log_ab_end)))
    m_ref, v_ref = a * float(x0.mean()), a * a * float(x0.var()) + sg * sg
    m_emp, v_emp = float(xt.mean()), float(xt.var())
    # 5 standard errors of 20,000 particles, plus 1% for the Euler bias of 400 steps
    mean_off = abs(m_emp - m_ref) > 5 * sg / math.sqrt(n) + 0.01 * abs(m_ref)
    if mean_off or abs(v_emp / v_ref - 1) > 5 * math.sqrt(2 / n) + 0.01:
        raise Mismatch(f"each coefficient matches, yet simulate_forward(x0, CosineVPSDE(), t_end = {t_end}) gives mean "
                       f"{m_emp:.3f} and variance {v_emp:.3f}, where alpha and sigma predict {m_ref:.3f} and "
                       f"{v_ref:.3f}: "
                       "do your methods work for any (N,) tensor of times?")
    vp = VPSDE()
    return (f"a working SDE: simulate_forward to t = {t_end} gives variance {v_emp:.3f} (closed form {v_ref:.3f}); at "
            f"t = {t_end} the cosine schedule keeps alpha^2 = {a * a:.3f} of the signal, the linear VP only "
            f"{float(vp.alpha(te)) ** 2:.3f}.")


# -- B3: when does the SNR cross a level? -----------------------------------------------

@register("4.5.B3", "time at which the SNR crosses a level", answers=('snr_time',), hidden=False)
def _snr_time(fn):
    levels = (100.0, 1.0, 0.01)
    for sde in (VPSDE(), SubVPSDE(), VESDE(), _CosineVPReference()):
        for snr in levels:
            if isinstance(sde, _CosineVPReference):
                ab = snr / (1 + snr)  # alpha_bar / (1 - alpha_bar) = snr
                s = sde.s
                ref = (1 + s) * 2 / math.pi * math.acos(math.sqrt(ab) * math.cos(0.5 * math.pi * s / (1 + s))) - s
                inv = None
            else:
                def inv(r, sde=sde):
                    return float(sde.inverse_noise_ratio(torch.tensor([r], dtype=F64)))
                ref = inv(snr**-0.5)
            v = as_number(call(fn, sde, snr, name="snr_time"), "snr_time(sde, snr)")
            if abs(v - ref) < 1e-4:
                continue
            if inv is not None and snr != 1.0:
                if abs(v - inv(snr)) < 1e-4:
                    raise Mismatch("you solved sigma/alpha = snr: that is the noise ratio r; the SNR is "
                                   "alpha^2 / sigma^2 = 1 / r^2.")
                if abs(v - inv(1 / snr)) < 1e-4:
                    raise Mismatch("you solved alpha/sigma = snr; the SNR is a ratio of variances, alpha^2 / sigma^2.")
                if abs(v - inv(snr**0.5)) < 1e-4:
                    raise Mismatch("you solved sigma^2/alpha^2 = snr, which is 1/SNR; the SNR is alpha^2 / sigma^2.")
            if min(abs(v), abs(v - sde.T)) < 1e-3:
                raise Mismatch(f"for {sde!r} at snr = {snr:g} you return t = {v:.4g}, an end of [0, T]; the answer is "
                               "inside. The SNR decreases with t (infinite at t = 0): if SNR(mid) > snr the crossing "
                               "lies to the right of mid.")
            tt = torch.tensor([min(max(v, 1e-9), sde.T)], dtype=F64)
            got = float(sde.alpha(tt) ** 2 / sde.sigma(tt) ** 2)
            raise Mismatch(f"for {sde!r}: at your t = {v:.5g} the SNR alpha^2/sigma^2 is {got:.4g}, not {snr:g} "
                           f"(the crossing is at t = {ref:.4f}); a bisection on log SNR to 1e-8 is enough.")
    ts = {"VP": VPSDE().inverse_noise_ratio(torch.ones(1, dtype=F64)),
          "VE": VESDE().inverse_noise_ratio(torch.ones(1, dtype=F64))}
    s = 0.008
    t_cos = (1 + s) * 2 / math.pi * math.acos(math.sqrt(0.5) * math.cos(0.5 * math.pi * s / (1 + s))) - s
    return (f"right for VP, sub-VP, VE and the cosine SDE at SNR 100, 1 and 0.01; SNR = 1 is reached at "
            f"t = {float(ts['VP']):.3f} (VP), {float(ts['VE']):.3f} (VE) and {t_cos:.3f} (cosine): the cosine "
            "schedule keeps the signal in front almost twice as long as the linear VP.")
