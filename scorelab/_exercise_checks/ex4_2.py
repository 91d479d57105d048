"""Checks of exercise 4.2 (three score-matching objectives): parts A1, A2, A3, B1, B2.

The losses are checked on a small seeded float64 network and a fixed batch: the value
against scorelab's tested losses (A1) or a direct autograd evaluation (A2, A3), and the
gradient with respect to the network's parameters against the reference gradient, since a
loss that has the right value but does not train (a trace computed without
``create_graph=True``) is the classic mistake of Hyvärinen's objective.
"""

from __future__ import annotations

import torch

from ..exercises import Mismatch, as_number, call, register
from ..losses import explicit_score_matching_loss
from ..nets import MLPScore
from . import F64

_N, _D = 64, 2


def _setup(seed: int):
    g = torch.Generator().manual_seed(seed)
    model = MLPScore(_D, hidden=16, depth=2, seed=seed).double()
    x = 1.5 * torch.randn(_N, _D, generator=g, dtype=F64)
    return model, x, g


def _params_grad(loss: torch.Tensor, model) -> list[torch.Tensor] | None:
    params = list(model.parameters())
    if not loss.requires_grad:
        return None
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _scalar(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise Mismatch(f"{name} should return a scalar tensor (the batch mean), got {got}")
    return value.reshape(())


def _near(a: float, b: float, tol: float = 1e-8) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


def _compare_loss(name, student, reference, alternatives, model):
    """Value, then gradient; ``alternatives`` maps a wrong-but-plausible value to its hint."""
    value, ref_value = float(student.detach()), float(reference.detach())
    if not _near(value, ref_value):
        for alt, hint in alternatives:
            if _near(value, float(alt.detach())):
                raise Mismatch(hint)
        raise Mismatch(f"{name} = {value:.6g} on the test batch, expected {ref_value:.6g}.")
    g_student, g_ref = _params_grad(student, model), _params_grad(reference, model)
    if g_student is None:
        raise Mismatch(f"the value of {name} is right, but it does not depend on the network's parameters "
                       "(no gradient): did you detach it, or call .item()? Return the tensor itself.")
    num = sum(float((a - b).norm() ** 2) for a, b in zip(g_student, g_ref, strict=True)) ** 0.5
    den = sum(float(b.norm() ** 2) for b in g_ref) ** 0.5
    if num > 1e-6 * den:
        raise Mismatch(f"the value of {name} is right but its gradient with respect to the parameters is "
                       f"off by {num / den:.2g} (relative): the derivative term must stay in the graph, "
                       "i.e. torch.autograd.grad(..., create_graph=True), or training ignores it.")


@register("4.2.A1", "explicit (Hyvärinen) score matching with the exact trace")
def _esm(fn):
    model, x, _ = _setup(421)
    out = _scalar(call(fn, model, x.clone(), name="esm_loss"), "esm_loss(score_fn, x)")
    ref = explicit_score_matching_loss(model, x)
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        s = model(xg)
        div = sum(torch.autograd.grad(s[:, j].sum(), xg, create_graph=True, retain_graph=True)[0][:, j]
                  for j in range(_D))
        sq = (s * s).sum(-1)
        alternatives = [
            ((div + sq).mean(), "the square term needs its factor 1/2: E[tr(ds/dx) + 1/2 |s|^2]."),
            ((-div + 0.5 * sq).mean(), "the trace enters with a + sign (integration by parts turns "
                                        "-E[s . grad log p] into +E[tr(ds/dx)])."),
            ((div + 0.5 * sq).sum(), "average over the batch (mean), not the sum."),
            ((0.5 * sq).mean(), "the trace term tr(ds/dx) is missing."),
        ]
    _compare_loss("esm_loss", out, ref, alternatives, model)
    return ("value and parameter gradient match scorelab's explicit_score_matching_loss: the exact trace "
            f"costs d = {_D} backward passes here, and grows linearly with d.")


@register("4.2.A2", "denoising score matching with given noise")
def _dsm(fn):
    model, x, g = _setup(422)
    sigma = 0.4
    eps = torch.randn(_N, _D, generator=g, dtype=F64)
    out = _scalar(call(fn, model, x.clone(), sigma, eps.clone(), name="dsm_loss"), "dsm_loss(score_fn, x, sigma, eps)")
    with torch.enable_grad():
        s_noisy = model(x + sigma * eps)
        ref = 0.5 * ((s_noisy + eps / sigma) ** 2).sum(-1).mean()
        alternatives = [
            (0.5 * ((s_noisy - eps / sigma) ** 2).sum(-1).mean(),
             "the target has the wrong sign: the score of N(x~; x, sigma^2 I) at x~ = x + sigma eps is "
             "-(x~ - x)/sigma^2 = -eps/sigma, so the residual is s + eps/sigma."),
            (0.5 * ((s_noisy + eps) ** 2).sum(-1).mean(), "the target is -eps/sigma, not -eps: divide by sigma."),
            (((s_noisy + eps / sigma) ** 2).sum(-1).mean(), "the squared residual needs its factor 1/2."),
            (0.5 * ((model(x) + eps / sigma) ** 2).sum(-1).mean(),
             "evaluate the network at the noisy point x + sigma eps, not at the clean x."),
            (0.5 * ((s_noisy + eps / sigma) ** 2).sum(), "average over the batch (mean), not the sum."),
        ]
    _compare_loss("dsm_loss", out, ref, alternatives, model)
    return "value and gradient match 1/2 E|s(x + sigma eps) + eps/sigma|^2: no derivative of s is needed at all."


@register("4.2.A3", "sliced score matching with given projections")
def _ssm(fn):
    model, x, g = _setup(423)
    v = torch.randn(_N, _D, generator=g, dtype=F64)
    out = _scalar(call(fn, model, x.clone(), v.clone(), name="ssm_loss"), "ssm_loss(score_fn, x, v)")
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        s = model(xg)
        sv = (s * v).sum(-1)
        (vjp,) = torch.autograd.grad(sv.sum(), xg, create_graph=True, retain_graph=True)
        vjv = (vjp * v).sum(-1)
        div = sum(torch.autograd.grad(s[:, j].sum(), xg, create_graph=True, retain_graph=True)[0][:, j]
                  for j in range(_D))
        ref = (vjv + 0.5 * sv**2).mean()
        alternatives = [
            ((vjv + 0.5 * (s * s).sum(-1)).mean(),
             "that is the variance-reduced form (SSM-VR, with 1/2 |s|^2): right in expectation, but this part "
             "asks for the plain estimator with 1/2 (v^T s)^2."),
            ((div + 0.5 * sv**2).mean(), "you used the exact trace tr(ds/dx); sliced score matching replaces it by "
                                          "v^T (ds/dx) v, one vector-Jacobian product whatever d is."),
            ((vjv + sv**2).mean(), "the projected square needs its factor 1/2."),
            ((-vjv + 0.5 * sv**2).mean(), "the projected derivative term enters with a + sign."),
        ]
    _compare_loss("ssm_loss", out, ref, alternatives, model)
    return ("value and gradient match E[v^T (ds/dx) v + 1/2 (v^T s)^2]; averaged over v with E[v v^T] = I "
            "this equals Hyvärinen's objective.")


@register("4.2.B1", "the minimiser of DSM for a linear model")
def _dsm_linear_optimum(value):
    a = as_number(value, "a_star")
    s2, sigma = 2.0, 0.5
    ref = -1.0 / (s2 + sigma**2)
    if abs(a - ref) < 1e-3:
        return (f"a* = -1/(s^2 + sigma^2) = {ref:.4f}: DSM fits the score of the noised law N(0, s^2 + sigma^2), "
                "not that of the data; it approaches -1/s^2 only as sigma -> 0.")
    if abs(a + 1.0 / s2) < 1e-3:
        raise Mismatch("-1/s^2 is the score of the clean data; DSM's minimiser is the score of the noised "
                       "data x + sigma eps, whose variance is s^2 + sigma^2.")
    if abs(a + 1.0 / sigma**2) < 1e-3:
        raise Mismatch("-1/sigma^2 would be right only without any data spread (s = 0); the noised variance is "
                       "s^2 + sigma^2.")
    if abs(a - 1.0 / (s2 + sigma**2)) < 1e-3:
        raise Mismatch("the sign is flipped: the score of a centred Gaussian points back to 0, so a < 0.")
    raise Mismatch(f"a = {a:.4g} does not minimise E[1/2 (a (x + sigma eps) + eps/sigma)^2] for x ~ N(0, {s2}), "
                   f"sigma = {sigma}: set the derivative in a to zero.")


_A = torch.tensor([[-1.0, 0.5], [0.0, -2.0]], dtype=F64)
_SIGMA = torch.tensor([[2.0, 0.3], [0.3, 0.5]], dtype=F64)


@register("4.2.B2", "Hyvärinen's objective of a linear field in closed form")
def _esm_linear(value):
    j = as_number(value, "esm_value")
    # E over x ~ N(0, Sigma) of 1/2 |A x|^2 + tr(A), the square term from the Cholesky factor
    chol = torch.linalg.cholesky(_SIGMA)
    half_sq = 0.5 * float((_A @ chol).square().sum())
    tr = float(torch.trace(_A))
    ref = half_sq + tr
    if abs(j - ref) < 1e-6 * max(1.0, abs(ref)):
        best = -0.5 * float(torch.trace(torch.linalg.inv(_SIGMA)))
        return (f"J(A) = 1/2 tr(A Sigma A^T) + tr(A) = {ref:.4f}; the minimum over A, at A = -Sigma^-1 (the true "
                f"score), is -1/2 tr(Sigma^-1) = {best:.4f}.")
    if abs(j - (2 * half_sq + tr)) < 1e-6 * max(1.0, abs(ref)):
        raise Mismatch("the square term needs its factor 1/2: J = E[1/2 |A x|^2] + tr(A).")
    if abs(j - (half_sq - tr)) < 1e-6 * max(1.0, abs(ref)):
        raise Mismatch("the divergence of x -> A x is +tr(A), and it enters with a + sign.")
    if abs(j - (0.5 * float((_A * _A).sum()) + tr)) < 1e-6 * max(1.0, abs(ref)):
        raise Mismatch("E[|A x|^2] depends on the data covariance: it is tr(A Sigma A^T), not tr(A^T A).")
    raise Mismatch(f"{j:.6g} is not E[1/2 |A x|^2 + tr(A)] for x ~ N(0, Sigma) with the A and Sigma of the sheet.")
