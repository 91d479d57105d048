"""Input validation, in one place for the whole package: clear errors that say what was expected.

Every message has the form ``"argument: expected X, got Y"``.  A rule that differs between
callers is an argument of its check, never a second check (e.g. ``check_levels(..., order=)``
for a schedule that must decrease, increase or may come in any order).  Groups:

- numbers and options: ``check_positive``, ``check_finite``, ``check_count``, ``check_bool``,
  ``check_choice``, ``check_type``, ``check_index``, ``check_limits``;
- randomness: ``check_generator``, ``check_seed``;
- tensors: ``as_float_tensor``, ``as_points``, ``check_batch``, ``check_start``, ``all_finite``,
  ``check_positive_values``, ``check_levels``, ``as_spd``, ``check_cholesky``, ``per_example``,
  ``per_example_labels``;
- times of an SDE on ``[0, T]``: ``check_times``, ``check_shared_time``, ``check_t_eps``,
  ``check_time_grid``;
- callables and what they return: ``check_callable``, ``check_callback_stats``,
  ``check_output``, ``checked_score``, ``checked_log_prob``, ``check_differentiable``.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch

__all__ = [
    # numbers and options
    "check_positive",
    "check_finite",
    "check_count",
    "check_bool",
    "check_choice",
    "check_type",
    "check_index",
    "check_limits",
    # randomness
    "check_generator",
    "check_seed",
    # tensors
    "as_float_tensor",
    "as_points",
    "check_batch",
    "check_start",
    "all_finite",
    "check_positive_values",
    "check_levels",
    "as_spd",
    "check_cholesky",
    "per_example",
    "per_example_labels",
    # times
    "check_times",
    "check_shared_time",
    "check_t_eps",
    "check_time_grid",
    # callables
    "check_callable",
    "check_callback_stats",
    "check_output",
    "checked_score",
    "checked_log_prob",
    "check_differentiable",
]

_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _got(value) -> str:
    """How a wrong value is shown: the shape of a tensor, the name of a type."""
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


# -- numbers and options --------------------------------------------------------------

def _as_real(value, name: str, what: str) -> float:
    """``float(value)``, with a TypeError naming ``what`` was expected for a bool or a non-number."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected {what}, got bool")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}") from exc


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


def check_finite(value, name: str, what: str = "a number") -> float:
    """Return ``value`` as a float after checking it is a finite real number (not a bool)."""
    v = _as_real(value, name, what)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def check_count(n, name: str, minimum: int = 0) -> int:
    """Return ``n`` as an int after checking it is an integer >= ``minimum`` (a step count, a
    number of levels, a size, ...); Python and NumPy integers pass, bools and floats do not."""
    if isinstance(n, bool) or not isinstance(n, Integral) or n < minimum:
        want = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{name}: expected {want}, got {n!r}")
    return int(n)


def check_bool(value, name: str) -> bool:
    """Return ``value`` after checking it is a bool (a switch such as ``denoise``)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def check_choice(value, name: str, choices) -> object:
    """Return ``value`` after checking it is one of ``choices`` (compared with ``==``)."""
    choices = tuple(choices)
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        names = [repr(c) for c in choices]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise ValueError(f"{name}: expected {listed}, got {value!r}")
    return value


def check_type(value, cls, name: str, what: str) -> object:
    """Return ``value`` after checking ``isinstance(value, cls)``; ``what`` describes ``cls`` to the reader."""
    if not isinstance(value, cls):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}")
    return value


def check_index(i, n: int, name: str, what: str = "an index") -> int:
    """Return ``i`` after checking it is an int in ``0 .. n-1`` (a class label, a component, ...)."""
    if isinstance(i, bool) or not isinstance(i, Integral) or not 0 <= i < n:
        raise ValueError(f"{name}: expected {what} in 0 .. {n - 1}, got {i!r}")
    return int(i)


def check_limits(lims, name: str = "lims", *, axes: int = 1) -> tuple:
    """Plot limits: ``(lo, hi)`` with finite ``lo < hi`` for ``axes=1``, returned as two floats;
    for ``axes=2`` also ``((xlo, xhi), (ylo, yhi))``, returned as two such pairs (one pair is
    used for both axes)."""
    import numpy as np

    form = "(lo, hi)" if axes == 1 else "(lo, hi) or ((xlo, xhi), (ylo, yhi))"
    try:
        arr = np.asarray(lims, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected {form}, got {lims!r}") from exc
    if axes == 2 and arr.shape == (2,):
        arr = np.stack([arr, arr])
    shape = (2,) if axes == 1 else (2, 2)
    if arr.shape != shape or not np.isfinite(arr).all() or not (arr[..., 0] < arr[..., 1]).all():
        raise ValueError(f"{name}: expected {form} with finite lo < hi, got {lims!r}")
    if axes == 1:
        return float(arr[0]), float(arr[1])
    return (float(arr[0, 0]), float(arr[0, 1])), (float(arr[1, 0]), float(arr[1, 1]))


# -- randomness -------------------------------------------------------------------------

def check_generator(generator) -> torch.Generator | None:
    """Accept None, a torch.Generator, or an int seed (turned into a fresh generator)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    raise TypeError(f"generator: expected None, an int seed or a torch.Generator, got {type(generator).__name__}")


def check_seed(seed) -> int | None:
    """Accept None or an int seed (of a network's initial weights)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed: expected None or an int, got {type(seed).__name__}")
    return seed


# -- tensors ------------------------------------------------------------------------------

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
    if not (t.is_floating_point() or t.dtype in _INT_DTYPES):
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


def check_batch(x, name: str = "x", *, images: bool = False, shape: str = "(N, d)") -> torch.Tensor:
    """Check a batch of examples, batch axis first, and return it.

    ``images=False``: non-empty (N, d) points, N and d >= 1 (``shape`` is the hint shown in
    errors, e.g. ``"(N, 2)"``).  ``images=True``: (N, d) points or (N, C, H, W) images, any
    tensor with at least two axes (the SDE modules).  Either way a floating tensor.
    """
    if images:
        shape = "(N, d) or (N, C, H, W)"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape {shape}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating tensor (float32 or float64) of shape {shape}, got dtype "
                        f"{x.dtype}; use {name}.float()")
    if images:
        if x.ndim < 2:
            raise ValueError(f"{name}: expected a batch of shape {shape}, got shape {tuple(x.shape)}; "
                             f"for 1-D data use x[:, None]")
        return x
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a non-empty tensor of shape {shape}, got {tuple(x.shape)}; "
                         f"use {name}.reshape(-1, d)")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty tensor of shape {shape} with at least one point of "
                         f"dimension >= 1, got {tuple(x.shape)}")
    return x


def check_start(x, name: str = "x", *, images: bool = False, shape: str = "(N, d)",
                copy: bool = True) -> torch.Tensor:
    """A sampler's starting points: ``check_batch`` plus finite values; returns a detached tensor
    (a copy with ``copy=True``; without, the sampler must never write to it)."""
    x = check_batch(x, name, images=images, shape=shape)
    if not all_finite(x):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return x.detach().clone() if copy else x.detach()


def all_finite(x: torch.Tensor) -> bool:
    """True when no entry of x is NaN or infinite: one min/max pass (NaN propagates through it),
    several times faster than ``torch.isfinite(x).all()`` on a sampler's batch."""
    if x.numel() == 0:
        return True
    lo, hi = torch.aminmax(x.detach())
    return math.isfinite(float(lo)) and math.isfinite(float(hi))


def check_positive_values(t: torch.Tensor, name: str, what: str = "values", *,
                          allow_zero: bool = False) -> torch.Tensor:
    """Check that every entry of ``t`` is finite and positive (non-negative with ``allow_zero``);
    the values are listed in the error when there are few of them."""
    ok = (t >= 0) if allow_zero else (t > 0)
    if not bool(torch.isfinite(t).all()) or not bool(ok.all()):
        sign = "non-negative" if allow_zero else "positive"
        shown = f", got {t.tolist()}" if t.numel() <= 20 else ""
        raise ValueError(f"{name}: expected finite {sign} {what}{shown}")
    return t


_ORDERS = {
    None: None,
    "decreasing": ("strictly decreasing", lambda s: s[1:] < s[:-1]),
    "increasing": ("strictly increasing", lambda s: s[1:] > s[:-1]),
}


def check_levels(values, name: str = "sigmas", *, order: str | None = None, dtype: torch.dtype | None = None,
                 what: str = "noise levels") -> torch.Tensor:
    """A non-empty 1-D sequence of finite positive levels (noise levels, temperatures, ...).

    Args:
        values: a number, a sequence or a 1-D tensor (a number is one level).
        order: None (any order), ``"decreasing"`` (largest first, the order a sampler anneals
            in) or ``"increasing"``, both strict.
        dtype: dtype of the result (default: a tensor keeps its own, numbers become the default dtype).
        what: the name of the levels in messages.

    Returns:
        (L,) tensor.
    """
    check_choice(order, "order", tuple(_ORDERS))
    s = as_float_tensor(values, name, dtype)
    if s.ndim == 0:
        s = s.reshape(1)
    if s.ndim != 1 or s.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence of {what}, got shape {tuple(s.shape)}")
    check_positive_values(s, name, what)
    if order is not None and s.numel() > 1:
        words, rule = _ORDERS[order]
        if not bool(rule(s).all()):
            first = " (largest noise first)" if order == "decreasing" and what == "noise levels" else ""
            raise ValueError(f"{name}: expected a {words} sequence of {what}{first}, got {s.tolist()}")
    return s


def as_spd(value, d: int, name: str) -> torch.Tensor:
    """A constant symmetric positive-definite d x d matrix given as a positive number, a (d,)
    positive diagonal or a (d, d) matrix; returned in float64 as a (d,) diagonal (for the first
    two) or a checked (d, d) matrix (symmetric, Cholesky succeeds)."""
    a = as_float_tensor(value, name, torch.float64)
    if a.ndim == 0:
        a = a.expand(d)
    shape_error = ValueError(f"{name}: expected a number, a ({d},) diagonal or a ({d}, {d}) matrix, "
                             f"got shape {tuple(a.shape)}")
    if a.ndim == 1:
        if a.shape != (d,):
            raise shape_error
        return check_positive_values(a, name, "diagonal entries")
    if a.shape != (d, d):
        raise shape_error
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"{name}: expected finite entries")
    check_cholesky(a, name)
    return a


def check_cholesky(a: torch.Tensor, name: str, what: str = "matrix") -> torch.Tensor:
    """Cholesky factor of a symmetric positive-definite ``a`` (d, d), or of each of a batch (..., d, d);
    a ValueError naming ``name`` when ``a`` is not symmetric or not positive-definite."""
    if not torch.allclose(a, a.transpose(-1, -2), rtol=1e-6, atol=1e-10):
        raise ValueError(f"{name}: expected a symmetric matrix")
    L, info = torch.linalg.cholesky_ex(a)
    if bool((info != 0).any()):
        raise ValueError(f"{name}: expected a positive-definite {what} (Cholesky failed)")
    return L


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


def per_example_labels(y, n: int, n_classes: int, name: str = "y") -> torch.Tensor:
    """Class labels as an (n,) long tensor: an int (or 0-d tensor) for every example, or an (n,)
    integer tensor, each in ``0 .. n_classes - 1``."""
    if isinstance(y, torch.Tensor) and y.ndim > 0:
        if y.is_floating_point() or y.shape != (n,):
            raise ValueError(f"{name}: expected an int or an ({n},) integer tensor, got dtype {y.dtype}, "
                             f"shape {tuple(y.shape)}")
        if bool(((y < 0) | (y >= n_classes)).any()):
            raise ValueError(f"{name}: expected class indices in 0 .. {n_classes - 1}")
        return y.long()
    if isinstance(y, torch.Tensor):
        y = int(y)
    return torch.full((n,), check_index(y, n_classes, name, "a class index"), dtype=torch.long)


# -- times of an SDE on [0, T] ---------------------------------------------------------

def check_times(t, x: torch.Tensor, T: float, name: str = "t") -> torch.Tensor:
    """Times as an (N,) tensor of x's dtype and device (``per_example``), each in ``[0, T]``."""
    n = x.shape[0]
    t = per_example(t, x, name, " (one time per example)")
    head = t[:1] if t.ndim == 1 and t.stride(0) == 0 else t  # one value broadcast: check it once
    if n and not bool(((head >= 0) & (head <= T)).all()):
        raise ValueError(f"{name}: expected times in [0, T] = [0, {T}], got values in "
                         f"[{float(t.min()):.4g}, {float(t.max()):.4g}]")
    return t


def check_shared_time(t, n: int, T: float, name: str = "t") -> float | None:
    """The one time of a batch of n examples, as a float in ``[0, T]``, when ``t`` is a number, a
    0-d tensor or an (n,) tensor broadcast from one value (a sampler's call); None for
    per-example times (then use ``check_times``)."""
    if isinstance(t, torch.Tensor):
        if t.ndim == 0 or (t.ndim == 1 and t.shape[0] == n and (n == 1 or t.stride(0) == 0)):
            if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
                raise TypeError(f"{name}: expected real times, got dtype {t.dtype}")
            tf = float(t.reshape(-1)[0]) if n else 0.0
        else:
            return None
    elif isinstance(t, (int, float)) and not isinstance(t, bool):
        tf = float(t)
    else:
        return None
    if not 0 <= tf <= T:
        raise ValueError(f"{name}: expected times in [0, T] = [0, {T}], got values in [{tf:.4g}, {tf:.4g}]")
    return tf


def check_t_eps(t_eps, T: float, name: str = "t_eps") -> float:
    """The smallest time a sampler, a loss or a likelihood uses: a number in ``(0, T)``."""
    t_eps = check_positive(t_eps, name)
    if not t_eps < T:
        raise ValueError(f"{name}: expected 0 < {name} < T = {T}, got {t_eps}")
    return t_eps


def check_time_grid(ts, T: float, name: str = "ts") -> torch.Tensor:
    """A sampler's explicit time grid: at least two strictly decreasing times in ``(0, T]``, float64."""
    ts = as_float_tensor(ts, name, torch.float64).reshape(-1)
    if ts.numel() < 2 or not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError(f"{name}: expected a strictly decreasing grid of at least two times")
    if not (float(ts[0]) <= T and float(ts[-1]) > 0):
        raise ValueError(f"{name}: expected times in (0, T = {T}], got [{float(ts[-1])}, {float(ts[0])}]")
    return ts


# -- callables and what they return -----------------------------------------------------

def check_callable(fn, name: str, signature: str) -> None:
    """Raise a TypeError naming ``name`` and the expected ``signature`` unless ``fn`` is callable."""
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable {signature}, got {type(fn).__name__}")


def check_callback_stats(callback, stats) -> None:
    """``callback`` must be None or callable; ``stats`` None or a dict the sampler fills."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected None or a callable taking a dict, got {type(callback).__name__}")
    if stats is not None and not isinstance(stats, dict):
        raise TypeError(f"stats: expected None or a dict to fill, got {type(stats).__name__}")


def check_output(out, shape, name: str, note: str = "") -> torch.Tensor:
    """Check that ``out``, what the callable ``name`` returned, is a tensor of ``shape``; return it.

    ``note`` follows the shape in the message, e.g. ``" (same as x)"``.  Any wrong output,
    a tensor of the wrong shape or not a tensor at all, is a ValueError.
    """
    if not isinstance(out, torch.Tensor) or out.shape != shape:
        raise ValueError(f"{name}: expected an output of shape {tuple(shape)}{note}, got {_got(out)}")
    return out


def checked_score(out, x: torch.Tensor, name: str = "score_fn") -> torch.Tensor:
    """A score evaluation ``out`` at ``x``: a tensor shaped like ``x`` (``check_output``), returned in x's dtype."""
    out = check_output(out, x.shape, name, " (same as x)")
    return out if out.dtype == x.dtype else out.to(x.dtype)


def checked_log_prob(out, x: torch.Tensor, name: str = "log_prob_fn") -> torch.Tensor:
    """A log-density evaluation ``out`` at x (N, d): an (N,) tensor, returned in x's dtype."""
    out = check_output(out, (x.shape[0],), name)
    return out if out.dtype == x.dtype else out.to(x.dtype)


def check_differentiable(out: torch.Tensor, name: str = "score_fn") -> torch.Tensor:
    """Check that ``out`` depends on its input through autograd (a loss differentiates it in x)."""
    if not out.requires_grad:
        raise ValueError(
            f"{name}: its output does not depend on x through autograd; this loss differentiates the "
            f"score with respect to x, so {name} must be built from differentiable torch operations"
        )
    return out
