"""Score-matching objectives: learning a score without knowing the density (section 4.2).

Every loss takes a score callable and a batch of data points and returns a scalar tensor
that is differentiable in the callable's parameters, so it can be handed straight to
``scorelab.training.train``.

- ``explicit_score_matching_loss``: Hyvärinen (2005), ``E[tr(ds/dx) + 1/2 |s|^2]`` with the
  trace computed exactly (one backward pass per dimension, section 4.2.1).
- ``denoising_score_matching_loss``: Vincent (2011), ``1/2 E|s(x + sigma eps) + eps/sigma|^2``
  for one noise level (section 4.2.2).
- ``sliced_score_matching_loss``: Song, Garg, Shi & Ermon (2019), ``E[v^T (ds/dx) v + 1/2 (v^T s)^2]``
  with random projections ``v`` and Jacobian-vector products (section 4.2.3).
- ``ncsn_loss``: Song & Ermon (2019), DSM over a set of noise levels with weight
  ``lambda(sigma) = sigma^2`` (section 4.3.1).

``score_divergence`` is the exact divergence ``tr(ds/dx)`` on its own (the Laplacian of
``log p`` when ``s`` is a score), used by the explicit loss and by the chapters.

Shapes: ``x`` is ``(N, d)``; a score function maps ``(N, d) -> (N, d)`` row by row (no
coupling between examples: the per-dimension backward passes sum over the batch, which
gives per-example derivatives only when each output row depends on its own input row).
"""

from __future__ import annotations

import math

import torch

from ._checks import as_float_tensor, check_generator, check_positive

__all__ = [
    "score_divergence",
    "explicit_score_matching_loss",
    "denoising_score_matching_loss",
    "sliced_score_matching_loss",
    "ncsn_loss",
]

_PROJECTIONS = ("gaussian", "rademacher")


# -- input checks ---------------------------------------------------------------

def _check_batch(x, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating tensor of shape (N, d), got dtype {x.dtype}; use x.float()")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty batch of shape (N, d), got {tuple(x.shape)}")
    return x


def _check_callable(score_fn) -> None:
    if not callable(score_fn):
        raise TypeError(
            f"score_fn: expected a callable mapping (N, d) points to (N, d) scores, got {type(score_fn).__name__}"
        )


def _check_output(s, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score_fn: expected an output of shape {tuple(x.shape)} (same as its input), got {got}")
    return s


def _check_differentiable(s: torch.Tensor) -> None:
    if not s.requires_grad:
        raise ValueError(
            "score_fn: its output does not depend on x through autograd; this loss differentiates the "
            "score with respect to x, so score_fn must be built from differentiable torch operations"
        )


def _check_sigma(sigma) -> float:
    if isinstance(sigma, torch.Tensor):
        if sigma.numel() != 1:
            raise ValueError(
                f"sigma: expected one noise level (a number), got a tensor of shape {tuple(sigma.shape)}; "
                "for one sigma per example use ncsn_loss"
            )
        sigma = float(sigma)
    sigma = check_positive(sigma, "sigma")
    return sigma


def _check_sigmas(sigmas) -> torch.Tensor:
    s = as_float_tensor(sigmas, "sigmas")
    if s.ndim == 0:
        s = s.reshape(1)
    if s.ndim != 1 or s.numel() == 0:
        raise ValueError(f"sigmas: expected a non-empty 1-D sequence of noise levels, got shape {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()) or not bool((s > 0).all()):
        raise ValueError(f"sigmas: expected finite positive noise levels, got {s.tolist()}")
    return s


# -- the exact divergence -------------------------------------------------------

def score_divergence(score_fn, x: torch.Tensor, *, create_graph: bool = False):
    """Score and its exact divergence ``tr(ds/dx)``, one backward pass per dimension (4.2.1).

    For a score ``s = grad log p`` the divergence is the Laplacian ``Delta log p = tr(Hessian)``
    that Hyvärinen's objective needs.  Row ``i`` of the result is
    ``sum_j d s_j(x_i) / d x_ij``, obtained from ``d`` vector-Jacobian products with the unit
    vectors ``e_j``; the cost therefore grows linearly with ``d``.

    Args:
        score_fn: callable ``(N, d) -> (N, d)``, differentiable, acting row by row.
        x: (N, d) points.
        create_graph: keep the graph of the derivatives (needed to train through them).

    Returns:
        ``(s, div)``: the score ``(N, d)`` and its divergence ``(N,)``.
    """
    _check_callable(score_fn)
    x = _check_batch(x)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        s = _check_output(score_fn(xg), xg)
        _check_differentiable(s)
        d = x.shape[1]
        div = torch.zeros(x.shape[0], dtype=s.dtype, device=s.device)
        for j in range(d):
            (g,) = torch.autograd.grad(s[:, j].sum(), xg, create_graph=create_graph, retain_graph=True)
            div = div + g[:, j]
    return s, div


# -- section 4.2.1 ------------------------------------------------------------------

def explicit_score_matching_loss(score_fn, x: torch.Tensor) -> torch.Tensor:
    """Hyvärinen's score-matching objective ``E[tr(ds/dx) + 1/2 |s(x)|^2]`` (section 4.2.1).

    Hyvärinen (2005), "Estimation of non-normalized statistical models by score matching":
    integrating by parts turns the Fisher divergence ``1/2 E|s - grad log p|^2`` into this
    expression plus a constant that does not depend on ``s``.  The trace is exact, computed by
    ``score_divergence`` with ``create_graph=True`` so the loss trains; its cost is ``d``
    backward passes.

    Args:
        score_fn: callable ``(N, d) -> (N, d)``, differentiable in x and its parameters.
        x: (N, d) data points.

    Returns:
        A scalar tensor (the batch mean).
    """
    s, div = score_divergence(score_fn, x, create_graph=True)
    return (div + 0.5 * (s * s).sum(-1)).mean()


# -- section 4.2.2 ------------------------------------------------------------------

def denoising_score_matching_loss(score_fn, x: torch.Tensor, sigma, *, scale: float = 1.0,
                                  generator=None) -> torch.Tensor:
    """Denoising score matching at one noise level, ``1/2 E|s(x~) + eps/sigma|^2`` (section 4.2.2).

    Vincent (2011), "A connection between score matching and denoising autoencoders".  The
    noisy point is ``x~ = scale * x + sigma * eps`` with ``eps ~ N(0, I)``; the regression target
    ``-eps/sigma`` is the score of the Gaussian kernel ``p(x~ | x)``, and the minimiser over all
    functions is the score of the *noised* law ``p.perturbed(sigma, scale)``, not of ``p``.

    Args:
        score_fn: unconditional callable ``(N, d) -> (N, d)`` (a model for this one sigma).
        x: (N, d) clean data.
        sigma: the noise standard deviation, a positive number.
        scale: multiplies the clean data (1 for variance-exploding noise, ``sqrt(alpha_bar)``
            for the variance-preserving form of the principles text).
        generator: ``torch.Generator`` or int seed for the noise.

    Returns:
        A scalar tensor (the batch mean of ``1/2 |s + eps/sigma|^2``).
    """
    _check_callable(score_fn)
    x = _check_batch(x)
    sigma = _check_sigma(sigma)
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale: expected a finite number, got {scale!r}")
    g = check_generator(generator)
    eps = torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)
    x_noisy = scale * x + sigma * eps
    s = _check_output(score_fn(x_noisy), x_noisy)
    return 0.5 * ((s + eps / sigma) ** 2).sum(-1).mean()


# -- section 4.2.3 ------------------------------------------------------------------

def _projections(shape, kind: str, g, like: torch.Tensor) -> torch.Tensor:
    if kind == "gaussian":
        return torch.randn(shape, generator=g, dtype=like.dtype, device=like.device)
    v = torch.randint(0, 2, shape, generator=g, device=like.device).to(like.dtype)
    return 2 * v - 1


def sliced_score_matching_loss(score_fn, x: torch.Tensor, *, n_projections: int = 1,
                               projection: str = "gaussian", variance_reduced: bool = False,
                               generator=None) -> torch.Tensor:
    """Sliced score matching ``E_x E_v[v^T (ds/dx) v + 1/2 (v^T s)^2]`` (section 4.2.3).

    Song, Garg, Shi & Ermon (2019), "Sliced score matching: a scalable approach to density
    and score estimation".  With ``E[v v^T] = I`` the projected terms are unbiased for
    Hyvärinen's ``tr(ds/dx)`` and ``1/2 |s|^2``, so the expectation over ``v`` equals
    ``explicit_score_matching_loss``; the Jacobian never appears, only one vector-Jacobian
    product ``v^T (ds/dx)`` per projection (``torch.autograd.grad``), whatever ``d`` is.

    ``variance_reduced=True`` (SSM-VR) replaces ``1/2 (v^T s)^2`` by its exact expectation
    ``1/2 |s|^2``.  Each example gets ``n_projections`` independent directions: the batch is
    repeated that many times and handled in one forward and one backward pass.

    Args:
        score_fn: callable ``(N, d) -> (N, d)``, differentiable, acting row by row.
        x: (N, d) data points.
        n_projections: directions per example (M >= 1).
        projection: ``"gaussian"`` (``v ~ N(0, I)``) or ``"rademacher"`` (entries +-1).
        variance_reduced: use the exact ``1/2 |s|^2`` instead of ``1/2 (v^T s)^2``.
        generator: ``torch.Generator`` or int seed for the directions.

    Returns:
        A scalar tensor (mean over examples and projections).
    """
    _check_callable(score_fn)
    x = _check_batch(x)
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise ValueError(f"n_projections: expected an int >= 1, got {n_projections!r}")
    if projection not in _PROJECTIONS:
        raise ValueError(f"projection: expected one of {_PROJECTIONS}, got {projection!r}")
    g = check_generator(generator)
    x_rep = x.detach().repeat(n_projections, 1) if n_projections > 1 else x.detach()
    v = _projections(x_rep.shape, projection, g, x_rep)
    with torch.enable_grad():
        xg = x_rep.requires_grad_(True)
        s = _check_output(score_fn(xg), xg)
        _check_differentiable(s)
        sv = (s * v).sum(-1)
        (vjp,) = torch.autograd.grad(sv.sum(), xg, create_graph=True)
        vjv = (vjp * v).sum(-1)
        second = 0.5 * (s * s).sum(-1) if variance_reduced else 0.5 * sv**2
        return (vjv + second).mean()


# -- section 4.3.1 ------------------------------------------------------------------

def ncsn_loss(score_fn, x: torch.Tensor, sigmas, *, generator=None) -> torch.Tensor:
    """Multi-scale denoising score matching of NCSN, weight ``lambda(sigma) = sigma^2`` (4.3.1).

    Song & Ermon (2019), "Generative modeling by estimating gradients of the data
    distribution", eq. (6): each example gets a noise level drawn uniformly from ``sigmas``,
    ``x~ = x + sigma eps``, and the loss is
    ``sigma^2 * 1/2 |s(x~, sigma) + eps/sigma|^2 = 1/2 |sigma s(x~, sigma) + eps|^2``, averaged.
    The weight makes every level contribute about equally, since ``|eps/sigma|^2 ~ d/sigma^2``.

    Args:
        score_fn: noise-conditional callable ``score_fn(x (N, d), sigma (N,)) -> (N, d)``.
        x: (N, d) clean data.
        sigmas: (L,) positive noise levels (any order).
        generator: ``torch.Generator`` or int seed (draws the levels, then the noise).

    Returns:
        A scalar tensor.
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn: expected a callable score_fn(x, sigma), got {type(score_fn).__name__}")
    x = _check_batch(x)
    levels = _check_sigmas(sigmas).to(dtype=x.dtype, device=x.device)
    g = check_generator(generator)
    idx = torch.randint(0, levels.numel(), (x.shape[0],), generator=g, device=x.device)
    sigma = levels[idx]
    eps = torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)
    x_noisy = x + sigma[:, None] * eps
    s = score_fn(x_noisy, sigma)
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score_fn: expected an output of shape {tuple(x.shape)} for (x, sigma (N,)), got {got}")
    return 0.5 * ((sigma[:, None] * s + eps) ** 2).sum(-1).mean()
