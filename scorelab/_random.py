"""The random draws the samplers and losses share, each written once.

Every draw takes its ``generator`` (a ``torch.Generator`` or None) and the dtype and device of
a reference tensor, so a float64 run draws float64 numbers.  The helpers make exactly the
calls the code made before it shared them, so seeded results are unchanged bit for bit.
"""

from __future__ import annotations

import torch

from ._checks import check_choice

__all__ = ["gaussian_like", "probes", "PROBES", "metropolis_accept", "where_accepted"]

PROBES = ("gaussian", "rademacher")


def gaussian_like(like: torch.Tensor, generator, shape=None) -> torch.Tensor:
    """Standard normal noise of ``like``'s shape (or ``shape``), dtype and device."""
    return torch.randn(like.shape if shape is None else shape, generator=generator, dtype=like.dtype,
                       device=like.device)


def probes(shape, kind: str, generator, like: torch.Tensor, name: str = "probe") -> torch.Tensor:
    """Random directions ``v`` with ``E[v v^T] = I``: ``"gaussian"`` (``N(0, I)``) or
    ``"rademacher"`` (entries +-1 with equal probability), for sliced score matching and
    Hutchinson's trace estimator."""
    check_choice(kind, name, PROBES)
    # a CPU generator draws on the CPU (the same probes on any device), then they move to like's device
    device = like.device if generator is None else generator.device
    if kind == "gaussian":
        return torch.randn(shape, generator=generator, dtype=like.dtype, device=device).to(like.device)
    return (2 * torch.randint(0, 2, shape, generator=generator, device=device).to(like.dtype) - 1).to(like.device)


def metropolis_accept(log_alpha: torch.Tensor, generator) -> torch.Tensor:
    """The Metropolis-Hastings test ``log u < log alpha`` with ``u ~ U(0, 1)`` for every entry of
    ``log_alpha`` (one uniform each, drawn in its dtype): a bool tensor of its shape.  A NaN
    ratio (e.g. a proposal where the log-density is -inf on both sides) rejects."""
    u = torch.rand(log_alpha.numel(), generator=generator, dtype=log_alpha.dtype, device=log_alpha.device)
    return torch.log(u).view(log_alpha.shape) < log_alpha


def where_accepted(accepted: torch.Tensor, proposed, current) -> tuple:
    """Keep the proposed entries where ``accepted`` and the current ones elsewhere, for each pair
    of tensors (states, their scores, log-densities, ...) whose leading axes match ``accepted``."""
    out = []
    for new, old in zip(proposed, current, strict=True):
        a = accepted.view(accepted.shape + (1,) * (new.ndim - accepted.ndim))
        out.append(torch.where(a, new, old))
    return tuple(out)
