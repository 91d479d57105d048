"""The checks behind ``scorelab.exercises.check``: one module per exercise (``ex4_1``, ...),
one function per part, registered with ``scorelab.exercises.register``.

Each check takes the student's answer(s), compares them with an independent reference and
returns a short confirmation, or raises ``Mismatch`` naming the likely mistake.  References
are computed in float64, from autograd of a log-density or from scorelab's tested code,
never from the formula the student is asked to derive.  The helpers below are shared.
"""

from __future__ import annotations

import importlib
import pkgutil

import torch

from ..exercises import relative_error

F64 = torch.float64


def autograd_score(log_prob, x: torch.Tensor) -> torch.Tensor:
    """``grad_x log_prob(x).sum()``: the reference score of a log-density."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(log_prob(x).sum(), x)
    return g.detach()


def close(value: torch.Tensor, ref: torch.Tensor, tol: float) -> bool:
    """Relative error of ``value`` against ``ref`` below ``tol`` (False with NaN or inf)."""
    return relative_error(value, ref) < tol


# import every exercise module, so that its checks register themselves
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("ex")):
    importlib.import_module(f"{__name__}.{_module}")
