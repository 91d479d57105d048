"""Checks of exercise 4.1 (properties of the score): parts A1, A2, B1, B2, B3."""

from __future__ import annotations

import torch

from ..distributions import GaussianMixture, two_mode_1d
from ..exercises import Mismatch, as_number, as_output, call, register, relative_error
from . import F64
from . import autograd_score as _autograd_score
from . import close as _close


@register("4.1.A1", "score of the Gamma distribution (exponential family)")
def _gamma_score(fn):
    x = torch.linspace(0.1, 8.0, 50, dtype=F64)[:, None]
    for k, theta in ((2.0, 1.0), (3.5, 0.5), (0.7, 2.0)):
        dist = torch.distributions.Gamma(torch.tensor(k, dtype=F64), torch.tensor(1.0 / theta, dtype=F64))
        ref = _autograd_score(lambda z, dist=dist: dist.log_prob(z[:, 0]), x)
        out = as_output(call(fn, x.clone(), k, theta, name="gamma_score"), ref, "gamma_score(x, k, theta)")
        if _close(out, ref, 1e-6):
            continue
        if _close(out, -ref, 1e-6):
            raise Mismatch("the sign is flipped: the score is +d/dx log p(x); at small x the density rises "
                           f"(k = {k} > 1 there), so the score must be positive.")
        if _close(out, k / x - 1 / theta, 1e-6):
            raise Mismatch("the first term should be (k - 1)/x: in natural form h(x) = 1, T(x) = (log x, x) "
                           "and eta = (k - 1, -1/theta), so the score is eta_1/x + eta_2.")
        if _close(out, (k - 1) / x - theta, 1e-6):
            raise Mismatch("theta is the scale, so the rate that multiplies x in the exponent is 1/theta: "
                           "the constant term of the score is -1/theta, not -theta.")
        raise Mismatch(f"at k = {k}, theta = {theta} your score differs from autograd of the Gamma "
                       f"log-density by {relative_error(out, ref):.2g} (relative); at x = {float(x[0]):g} you "
                       f"return {float(out[0, 0]):.4g}, the score is {float(ref[0, 0]):.4g}.")
    return ("matches autograd of log p at 150 points for three (k, theta); the normaliser "
            "log Gamma(k) + k log theta (the A(eta) of the family) never entered.")


@register("4.1.A2", "Gaussian score from natural parameters")
def _natural_gaussian_score(fn):
    g = torch.Generator().manual_seed(41)
    for d in (2, 3):
        a = torch.randn(d, d, generator=g, dtype=F64)
        prec = a @ a.T + d * torch.eye(d, dtype=F64)  # a precision matrix Lambda
        mean = torch.randn(d, generator=g, dtype=F64)
        eta1, eta2 = prec @ mean, -0.5 * prec
        dist = torch.distributions.MultivariateNormal(mean, precision_matrix=prec)
        x = 2 * torch.randn(40, d, generator=g, dtype=F64)
        ref = _autograd_score(dist.log_prob, x)
        out = as_output(call(fn, x.clone(), eta1.clone(), eta2.clone(), name="natural_gaussian_score"), ref,
                        "natural_gaussian_score(x, eta1, eta2)")
        if _close(out, ref, 1e-6):
            continue
        if _close(out, -ref, 1e-6):
            raise Mismatch("the sign is flipped: with eta2 = -Lambda/2 negative definite, the score at a point "
                           "far from the mean must point back towards it.")
        if _close(out, eta1 + x @ eta2, 1e-6):
            raise Mismatch("a factor 2 is missing: the gradient of x^T eta2 x is 2 eta2 x for a symmetric eta2.")
        raise Mismatch(f"in d = {d} your score differs from autograd of the Gaussian log-density by "
                       f"{relative_error(out, ref):.2g} (relative). Expected eta1 + 2 x eta2 for a batch x of "
                       "shape (N, d).")
    return "matches autograd in d = 2 and 3: the score is eta1 + 2 eta2 x, linear in x, with no A(eta)."


def _two_mode_score_zero() -> float:
    """The unstable fixed point between the modes of two_mode_1d, by bisection in float64."""
    dist = two_mode_1d()
    lo, hi = -1.9, 1.9  # score > 0 just right of the left mode, < 0 just left of the right mode
    f = lambda v: float(dist.score(torch.tensor([[v]], dtype=F64))[0, 0])  # noqa: E731
    assert f(lo) < 0 < f(hi) or f(lo) > 0 > f(hi)
    s_lo = f(lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (f(mid) > 0) == (s_lo > 0):
            lo, s_lo = mid, f(mid)
        else:
            hi = mid
    return 0.5 * (lo + hi)


@register("4.1.B1", "the unstable fixed point between two modes")
def _saddle(value):
    v = as_number(value, "x_star")
    ref = _two_mode_score_zero()
    if abs(v - ref) < 1e-3:
        return (f"x* = {ref:.4f}: left of it the score points to the mode at -2, right of it to the mode at "
                "+2, so the flow runs away from x* on both sides. It sits closer to the lighter mode.")
    if abs(v) < 0.005:
        raise Mismatch("0 is the midpoint, where the fixed point would be for equal weights; with weights "
                       "0.3 / 0.7 the boundary between the basins moves towards the lighter mode.")
    if min(abs(v - 2), abs(v + 2)) < 0.05:
        raise Mismatch("that is (almost) a mode, a stable fixed point; look for the zero of the score "
                       "between the two modes.")
    raise Mismatch(f"the score is not zero there: s({v:.4g}) = "
                   f"{float(two_mode_1d().score(torch.tensor([[v]], dtype=F64))[0, 0]):.3g}.")


@register("4.1.B2", "far-field score of the two-mode mixture")
def _far_field(fn):
    dist = two_mode_1d()
    x = torch.cat([torch.linspace(-20, -6, 15, dtype=F64), torch.linspace(6, 20, 15, dtype=F64)])[:, None]
    ref = dist.score(x)
    out = as_output(call(fn, x.clone(), name="far_field_score"), ref, "far_field_score(x)")
    err = relative_error(out, ref)
    if err < 1e-4:
        return ("within 1e-4 of the exact score for 6 <= |x| <= 20: far away, all the posterior weight sits "
                "on the nearer component, so the field is that Gaussian's linear restoring force.")
    mean = float(dist.mean)
    if _close(out, -(x - mean) / 0.25, 1e-3) or _close(out, -(x - mean) / float(dist.covariance_matrix), 1e-3):
        raise Mismatch("pulling towards the mixture's mean is wrong far away: the responsibilities p(k|x) do "
                       "not average, they pick the nearer component (mean -2 for x < 0, +2 for x > 0).")
    if _close(out, -ref, 1e-3):
        raise Mismatch("the sign is flipped: far to the right the score must be negative (pointing back).")
    raise Mismatch(f"your far-field score differs from the exact one by {err:.2g} (relative) on |x| in [6, 20].")


def _stable_cases():
    means = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=F64)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
    g = torch.Generator().manual_seed(43)
    between = torch.stack([torch.linspace(-3, 3, 60, dtype=F64), 0.3 * torch.randn(60, generator=g, dtype=F64)], -1)
    far = 40 * torch.randn(30, 2, generator=g, dtype=F64)
    x = torch.cat([between, far])
    return weights, means, x


@register("4.1.B3", "a mixture score that does not collapse", points=2.0)
def _stable_mixture_score(fn):
    weights, means, x = _stable_cases()
    for sigma in (1.0, 0.3, 0.01):
        ref = GaussianMixture(weights, means, sigma**2).score(x)  # float64 reference
        out = call(fn, x.float(), weights.float(), means.float(), sigma, name="stable_mixture_score")
        out = as_output(out, ref.float(), "stable_mixture_score(x, weights, means, sigma)").double()
        if not bool(torch.isfinite(out).all()):
            bad = int((~torch.isfinite(out)).any(-1).sum())
            raise Mismatch(f"at sigma = {sigma} your score is NaN or inf at {bad} of {len(x)} points (float32): "
                           "exp(-|x - mu|^2 / (2 sigma^2)) underflows to 0 for every component, and 0/0 follows. "
                           "Compute the responsibilities with a log-sum-exp (subtract each point's largest "
                           "logit before exp), e.g. torch.softmax over the components.")
        err = relative_error(out, ref)
        if err > 1e-4:
            where = "everywhere" if sigma == 1.0 else f"only at sigma = {sigma}"
            raise Mismatch(f"at sigma = {sigma} your score is off by {err:.2g} (relative), {where}. The score is "
                           "sum_k p(k|x) (mu_k - x) / sigma^2 with p(k|x) proportional to "
                           "w_k exp(-|x - mu_k|^2 / (2 sigma^2)).")
    return ("finite and within 1e-4 of a float64 reference in float32, down to sigma = 0.01, between the "
            "modes and 40 sigma_max away: the log-sum-exp form is what keeps the score from collapsing.")
