"""Input validation shared by every module: clear errors that say what was expected."""

from __future__ import annotations

import math

import torch

__all__ = ["as_points", "check_positive", "check_generator", "as_float_tensor"]


def as_float_tensor(value, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert ``value`` (tensor, array, list or number) to a floating tensor, or raise a TypeError."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            # numbers and lists go straight to the requested dtype: a float64 value must not round
            # through float32 on the way
            t = torch.as_tensor(value, dtype=dtype) if dtype is not None else torch.as_tensor(value)
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


def _as_real(value, name: str, what: str) -> float:
    """``float(value)``, with a TypeError naming ``what`` was expected for a bool or a non-number."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected {what}, got bool")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}") from exc


def check_finite(value, name: str, what: str = "a number") -> float:
    """Return ``value`` as a float after checking it is a finite real number (not a bool)."""
    v = _as_real(value, name, what)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def check_generator(generator) -> torch.Generator | None:
    """Accept None, a torch.Generator, or an int seed (turned into a fresh generator)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    raise TypeError(f"generator: expected None, an int seed or a torch.Generator, got {type(generator).__name__}")


# -- shared by the samplers (scorelab.samplers, scorelab.mcmc) -----------------------

def check_start(x0, shape_hint: str = "(N, d)") -> torch.Tensor:
    """Check a sampler's starting points (a finite, floating, non-empty (N, d) tensor); return a detached copy."""
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"x0: expected a torch.Tensor of shape {shape_hint}, got {type(x0).__name__}")
    if not x0.is_floating_point():
        raise TypeError(f"x0: expected a floating tensor (float32 or float64) of shape {shape_hint}, got dtype "
                        f"{x0.dtype}; use x0.float()")
    if x0.ndim != 2:
        raise ValueError(f"x0: expected a non-empty tensor of shape {shape_hint}, got {tuple(x0.shape)}; "
                         f"use x0.reshape(-1, d)")
    if x0.shape[0] == 0 or x0.shape[1] == 0:
        raise ValueError(f"x0: expected a non-empty tensor of shape {shape_hint} with at least one point of "
                         f"dimension >= 1, got {tuple(x0.shape)}")
    if not all_finite(x0):
        raise ValueError("x0: expected finite values, got NaN or inf")
    return x0.detach().clone()


def per_example(value, x: torch.Tensor, name: str, what: str = "") -> torch.Tensor:
    """Broadcast a number, a one-element tensor or an (N,) / (N, 1) tensor to an (N,) tensor of
    x's dtype and device (N = ``x.shape[0]``); a single value becomes a stride-0 expansion.

    ``what`` is added to the shape error, e.g. ``" (one time per example)"``.
    """
    n = x.shape[0]
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name}: expected real numbers, got dtype {value.dtype}")
        v = value.to(dtype=x.dtype, device=x.device)
        if v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]
        if v.ndim == 0 or (v.numel() == 1 and v.ndim <= 1):
            return v.reshape(()).expand(n)
        if v.shape != (n,):
            raise ValueError(f"{name}: expected a number or a tensor of shape ({n},){what}, got shape {tuple(v.shape)}")
        return v
    f = _as_real(value, name, f"a number or an ({n},) tensor")
    return torch.tensor(f, dtype=x.dtype, device=x.device).expand(n)


def all_finite(x: torch.Tensor) -> bool:
    """True when no entry of x is NaN or infinite: one min/max pass (NaN propagates through it),
    several times faster than ``torch.isfinite(x).all()`` on a sampler's batch."""
    if x.numel() == 0:
        return True
    lo, hi = torch.aminmax(x.detach())
    return math.isfinite(float(lo)) and math.isfinite(float(hi))


def check_callable(fn, name: str, signature: str) -> None:
    """Raise a TypeError naming ``name`` and the expected ``signature`` unless ``fn`` is callable."""
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable {signature}, got {type(fn).__name__}")


def check_count(n, name: str, minimum: int = 0) -> int:
    """Return ``n`` after checking it is an int >= ``minimum`` (a step count, a number of levels, ...)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {n!r}")
    return n


def check_callback_stats(callback, stats) -> None:
    """``callback`` must be None or callable; ``stats`` None or a dict the sampler fills."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected None or a callable taking a dict, got {type(callback).__name__}")
    if stats is not None and not isinstance(stats, dict):
        raise TypeError(f"stats: expected None or a dict to fill, got {type(stats).__name__}")


def checked_score(out, x: torch.Tensor, name: str = "score_fn") -> torch.Tensor:
    """Check that a score evaluation ``out`` has the shape of ``x``; return it in ``x``'s dtype."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name}: expected it to return a torch.Tensor of shape {tuple(x.shape)}, "
                        f"got {type(out).__name__}")
    if out.shape != x.shape:
        raise ValueError(f"{name}: expected an output of shape {tuple(x.shape)} (same as x), got {tuple(out.shape)}")
    return out.to(x.dtype)


def checked_log_prob(out, x: torch.Tensor, name: str = "log_prob_fn") -> torch.Tensor:
    """Check that a log-density evaluation ``out`` has shape (N,) for x of shape (N, d)."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name}: expected it to return a torch.Tensor of shape ({x.shape[0]},), "
                        f"got {type(out).__name__}")
    if out.shape != (x.shape[0],):
        raise ValueError(f"{name}: expected an output of shape ({x.shape[0]},), got {tuple(out.shape)}")
    return out.to(x.dtype)
