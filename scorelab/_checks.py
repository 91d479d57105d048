"""Input validation shared by every module: clear errors that say what was expected."""

from __future__ import annotations

import torch

__all__ = ["as_points", "check_positive", "check_generator", "as_float_tensor"]


def as_float_tensor(value, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert ``value`` (tensor, array, list or number) to a floating tensor, or raise a TypeError."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{name}: expected a tensor or array of numbers, got {type(value).__name__}") from exc
    if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"{name}: expected real numbers, got dtype {t.dtype}")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def as_points(x, dim: int, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a floating tensor of shape (N, dim) and return it.

    A 1-D tensor of shape (N,) is accepted when ``dim == 1`` and returned as (N, 1).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (N, {dim}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name}: expected a floating tensor (float32 or float64) of shape (N, {dim}), got dtype {x.dtype}; "
            f"use x.float()"
        )
    if dim == 1 and x.ndim == 1:
        x = x.unsqueeze(-1)
    if x.ndim != 2 or x.shape[-1] != dim:
        raise ValueError(f"{name}: expected shape (N, {dim}), got {tuple(x.shape)}")
    return x


def check_positive(value, name: str, allow_zero: bool = False) -> float:
    """Return ``value`` as a float after checking it is a finite positive (or non-negative) number."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a number, got {value!r}") from exc
    ok = v >= 0 if allow_zero else v > 0
    if not ok or v != v or v == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite number {bound}, got {value!r}")
    return v


def check_generator(generator) -> torch.Generator | None:
    """Accept None, a torch.Generator, or an int seed (turned into a fresh generator)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    raise TypeError(f"generator: expected None, an int seed or a torch.Generator, got {type(generator).__name__}")
