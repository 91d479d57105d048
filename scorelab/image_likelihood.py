"""Bits per dimension of images under a score model, and the two baselines it must beat (image chapters).

A score model defines a continuous density through its probability-flow ODE
(``scorelab.likelihood.log_likelihood``, section 4.5.3).  Images are discrete: each pixel is one
of ``n_levels`` grey levels.  Uniform dequantisation (Theis et al. 2016) bridges the two: the
level k becomes ``u = (k + U) / n_levels`` with ``U ~ Uniform[0, 1)``, the model sees
``x = 2 u - 1`` in [-1, 1], and by Jensen's inequality

    -log2 P(k) <= E_U[-log2 p_x(x)] - D log2(2) + D log2(n_levels)

so the bits per dimension of the discrete image are at most those of the dequantised one plus
the offset ``log2(n_levels / 2)`` per pixel (``scorelab.likelihood.bits_per_dim``).  Averaging
over several dequantisation draws estimates the expectation.

Baselines for the same images:

- ``uniform_bits_per_dim(n_levels)``: every level equally likely, ``log2(n_levels)``;
- ``categorical_bits_per_dim(train, test, n_levels)``: an independent categorical law per pixel
  fitted on the training split (add-one smoothing), which knows where ink tends to be but not
  how pixels go together.

The divergence in the ODE is exact for small images (D <= ``exact_max_dim``, one batched
backward pass) and Hutchinson's estimate with Rademacher probes above (D = 784 for MNIST).
"""

from __future__ import annotations

import math

import torch

from ._checks import check_count, check_generator
from .likelihood import bits_per_dim, log_likelihood
from .sdes import SDE

__all__ = ["image_bits_per_dim", "uniform_bits_per_dim", "categorical_bits_per_dim"]


def uniform_bits_per_dim(n_levels: int) -> float:
    """``log2(n_levels)``: the bits per pixel of a model that finds every grey level equally likely."""
    return math.log2(check_count(n_levels, "n_levels", 2))


def _levels(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.is_floating_point() or x.is_complex():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected an integer tensor of grey levels (N, C, H, W), got {got}")
    return x.reshape(x.shape[0], -1).long()


def categorical_bits_per_dim(train: torch.Tensor, test: torch.Tensor, n_levels: int, *, alpha: float = 1.0) -> float:
    """Held-out bits per pixel of independent per-pixel categorical laws fitted on ``train``.

    ``P(pixel j = k) = (count_jk + alpha) / (N_train + alpha n_levels)`` (add-alpha smoothing, so an
    unseen level is not impossible); returns ``mean over test images and pixels of -log2 P``.
    ``train``, ``test``: integer levels (N, C, H, W).
    """
    n_levels = check_count(n_levels, "n_levels", 2)
    tr, te = _levels(train, "train"), _levels(test, "test")
    if tr.shape[1] != te.shape[1]:
        raise ValueError(f"test: expected images with {tr.shape[1]} pixels like train, got {te.shape[1]}")
    if int(tr.max()) >= n_levels or int(te.max()) >= n_levels or int(tr.min()) < 0 or int(te.min()) < 0:
        raise ValueError(f"train, test: expected levels in [0, {n_levels - 1}]")
    d = tr.shape[1]
    counts = torch.zeros(d, n_levels, dtype=torch.float64)
    counts.scatter_add_(1, tr.T, torch.ones_like(tr.T, dtype=torch.float64))
    logp = torch.log2(counts + alpha) - math.log2(tr.shape[0] + alpha * n_levels)  # (D, K)
    return float(-logp.gather(1, te.T).mean())


def image_bits_per_dim(score_fn, levels: torch.Tensor, n_levels: int, sde: SDE, *, n_dequant: int = 3,
                       exact: bool | None = None, exact_max_dim: int = 256, n_probes: int = 1, generator=None,
                       t_eps: float = 1e-5, rtol: float = 1e-5, atol: float = 1e-5, batch_size: int = 500,
                       device=None, dtype: torch.dtype = torch.float32, stats: dict | None = None) -> torch.Tensor:
    """Bits per dimension of integer images under the score model's probability-flow ODE: (N,) float64.

    For each of ``n_dequant`` draws, the levels are dequantised (``(k + U) / n_levels``), mapped to
    [-1, 1], and ``log_likelihood`` integrates the ODE with its divergence; the bits per dimension
    ``bits_per_dim(log p, D, n_bins=n_levels, data_scale=2)`` are averaged over the draws.

    Args:
        score_fn: time-conditional score ``(x (N, C, H, W), t (N,)) -> shaped like x``.
        levels: (N, C, H, W) integer grey levels.
        n_levels: number of grey levels (17 for scikit-learn's digits, 256 for 8-bit images).
        sde: the SDE the model was trained with.
        n_dequant: dequantisation draws averaged.
        exact: exact divergence (batched) or Hutchinson; default exact when ``D <= exact_max_dim``.
        n_probes: Hutchinson probes per evaluation.
        generator: seeds the dequantisation and the probes.
        t_eps, rtol, atol: as in ``log_likelihood``.
        batch_size: images per ODE solve.
        device: where the model lives (the images are moved there).
        dtype: the dtype of the dequantised images the model sees.
        stats: filled with ``"nfe"`` (mean per solve), ``"exact"``, ``"per_draw"`` (n_dequant, N) and
            ``"points"`` (the n_dequant dequantised batches, model space, on the CPU).
    """
    if not isinstance(sde, SDE):
        raise TypeError(f"sde: expected a scorelab SDE, got {type(sde).__name__}")
    k = levels
    _levels(k, "levels")
    n_levels = check_count(n_levels, "n_levels", 2)
    n_dequant = check_count(n_dequant, "n_dequant", 1)
    batch_size = check_count(batch_size, "batch_size", 1)
    d = k[0].numel()
    if exact is None:
        exact = d <= exact_max_dim
    g = check_generator(generator)
    if g is None:
        g = torch.Generator().manual_seed(0)
    from .datasets import to_model_space

    per_draw, nfes, points = [], [], []
    for _ in range(n_dequant):
        x = to_model_space(k, n_levels, generator=g, dtype=dtype)
        points.append(x)
        bpd = []
        for chunk in x.split(batch_size):
            st: dict = {}
            if device is not None:
                chunk = chunk.to(device)
            logp = log_likelihood(score_fn, chunk, sde, exact=exact, batched=exact, n_probes=n_probes,
                                  generator=g, t_eps=t_eps, rtol=rtol, atol=atol, stats=st)
            nfes.append(st["nfe"])
            bpd.append(bits_per_dim(logp, d, n_bins=n_levels, data_scale=2.0))
        per_draw.append(torch.cat(bpd))
    per_draw = torch.stack(per_draw)
    if stats is not None:
        stats.update(nfe=sum(nfes) / len(nfes), exact=exact, per_draw=per_draw, points=points)
    return per_draw.mean(0)
