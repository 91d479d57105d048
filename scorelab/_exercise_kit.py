"""The exercise registry and the helpers for writing checks.

A check is a function registered per exercise part with :func:`register`. It receives the
student's answer objects (named in the registry, so that the class grader can find them in a
notebook) and, when the part has a hidden variant, a keyword ``rng``: ``None`` for the
fixed inputs the notebook shows, a ``torch.Generator`` for inputs drawn at grading time that
the notebook never saw. It returns a one-line confirmation, or raises :class:`Mismatch`
with a message (in Chinese, like the exercise sheets) that names the likely mistake.

The helpers turn whatever a student hands in into something a check can compare safely:
:func:`call` runs the student's code and reports its errors with the student's own line,
:func:`as_output` and :func:`as_number` accept only what the sheet promises (shape, dtype,
a real finite number) and say precisely what is off, :func:`close` and
:func:`relative_error` are False / inf for NaN. :func:`time_limit` stops a student function
that runs too long.

This module imports nothing from the exercise checks or from :mod:`scorelab.exercises`; both
import it.
"""

from __future__ import annotations

import math
import numbers
import re
import signal
import threading
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "DEFAULT_TIME_LIMIT", "F64", "CheckTimeout", "Mismatch", "Part", "REGISTRY", "StudentError", "Todo",
    "as_number", "as_output", "autograd_score", "call", "close", "describe", "register", "relative_error",
    "time_limit",
]

F64 = torch.float64
DEFAULT_TIME_LIMIT = 60.0  # seconds for one part's check, the student's code included
_SCORELAB = str(Path(__file__).resolve().parent)  # frames inside the package
_PART = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")


class Mismatch(Exception):
    """Raised by a check when the answer is wrong; its message is shown to the student."""


class StudentError(Exception):
    """The student's code raised; the message says where and with what input."""


class Todo(Exception):
    """The part is not answered yet (its stub still raises NotImplementedError, or is ``...``)."""


class CheckTimeout(BaseException):
    """A check ran past its time limit (a BaseException, so ``except Exception`` in student code
    does not swallow it)."""


@dataclass(frozen=True)
class Part:
    """One registered exercise part."""

    part: str
    title: str
    points: float
    fn: Callable
    answers: tuple[str, ...]  # the names of the answer objects in the exercise notebook
    hidden: bool  # the check also runs on inputs drawn at grading time (fn takes rng=)
    time_limit: float


REGISTRY: dict[str, Part] = {}


def register(part: str, title: str, points: float = 1.0, *, answers, hidden: bool = True,
             time_limit: float = DEFAULT_TIME_LIMIT):
    """Decorator registering ``fn(*answers, rng=None) -> str`` as the check of ``part``.

    Args:
        part: the part's id, e.g. ``"4.1.A1"`` (exercise ``"4.1"``, part ``"A1"``).
        title: a short title (English, for the lecturer's tables).
        points: the points a passing answer earns.
        answers: the names the exercise sheet gives the answer objects, in the order the check
            takes them (``("gamma_score",)``); the class grader looks them up in the notebook.
        hidden: the check takes a keyword ``rng``; with a ``torch.Generator`` it draws inputs the
            notebook never saw (a part whose answer is one number has no hidden variant).
        time_limit: seconds allowed for the whole check, the student's code included.

    Registering a part again from the same function (a reloaded module, a notebook cell run
    twice) replaces it; a second, different function for the same part is an error.
    """
    if not isinstance(part, str) or not _PART.match(part):
        raise ValueError(f"part: expected an id such as '4.1.A1', got {part!r}")
    if isinstance(answers, str):
        answers = (answers,)
    answers = tuple(answers)
    if not answers or not all(isinstance(a, str) and a.isidentifier() for a in answers):
        raise ValueError(f"answers: expected the names of the answer objects, e.g. ('gamma_score',), got {answers!r}")
    if not (isinstance(points, numbers.Real) and points > 0):
        raise ValueError(f"points: expected a positive number, got {points!r}")
    if not (isinstance(time_limit, numbers.Real) and time_limit > 0):
        raise ValueError(f"time_limit: expected a positive number of seconds, got {time_limit!r}")

    def deco(fn):
        old = REGISTRY.get(part)
        if old is not None and _origin(old.fn) != _origin(fn):
            raise ValueError(f"part {part!r} is registered twice: by {'.'.join(_origin(old.fn))} and by "
                             f"{'.'.join(_origin(fn))}")
        REGISTRY[part] = Part(part, title, float(points), fn, answers, bool(hidden), float(time_limit))
        return fn
    return deco


def _origin(fn) -> tuple[str, str]:
    return getattr(fn, "__module__", "?") or "?", getattr(fn, "__qualname__", repr(fn))


# -- time limit ------------------------------------------------------------------------------

_ALARM = {"active": False}


def _on_alarm(signum, frame):
    if _ALARM["active"]:
        raise CheckTimeout


@contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`CheckTimeout` in the block once ``seconds`` have passed (again every 0.5 s
    while the block swallows it). Works in the main thread of a POSIX process (a Jupyter
    kernel, the grader); elsewhere, and inside another active limit, the block runs unlimited."""
    usable = (seconds is not None and hasattr(signal, "setitimer") and not _ALARM["active"]
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _ALARM["active"] = True
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3), 0.5)
    try:
        yield
    finally:
        _ALARM["active"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- calling the student's code ------------------------------------------------------------------

def call(fn, *args, name: str | None = None, **kwargs):
    """Call the student's ``fn``; a ``NotImplementedError`` from the student's own code means
    "to do", any other error becomes a :class:`StudentError` naming the function, the inputs
    and the student's line (never scorelab's frames). ``fn`` runs with gradients enabled
    whatever the caller's mode, so an answer may use autograd inside."""
    if isinstance(fn, type(...)):
        raise Todo
    if not callable(fn):
        raise Mismatch(f"这里需要一个函数（或类），收到的却是 {_type_name(fn)}：请把函数本身传给检查，"
                       "不要先调用它（例如 check(part, my_function)，而不是 check(part, my_function(x))）。")
    name = name or getattr(fn, "__name__", "你的函数")
    try:
        with torch.enable_grad():
            return fn(*args, **kwargs)
    except (Exception, SystemExit) as exc:  # the student's bug, reported without scorelab's frames
        frames = traceback.extract_tb(exc.__traceback__)[1:]  # drop this function's own frame
        if isinstance(exc, NotImplementedError) and frames and _SCORELAB not in frames[-1].filename:
            raise Todo from None  # the student's stub
        inputs = ", ".join(describe(a) for a in args)
        where = next((f for f in reversed(frames) if _SCORELAB not in f.filename), None)
        line = f"（第 {where.lineno} 行：{where.line}）" if where is not None and where.line else ""
        inside = (f"（在 scorelab 的 {frames[-1].name} 内部）" if frames and _SCORELAB in frames[-1].filename
                  and isinstance(exc, NotImplementedError) else "")
        text = _short(str(exc), 300)
        raise StudentError(f"{name}({inputs}) 抛出了 {type(exc).__name__}{inside}: {text}{line}") from None


def describe(a) -> str:
    """A short description of an argument, for messages (a tensor by its shape and dtype)."""
    if isinstance(a, torch.Tensor):
        return f"形状为 {tuple(a.shape)} 的 {str(a.dtype).replace('torch.', '')} 张量"
    if isinstance(a, float):
        return f"{a:g}"
    try:
        text = repr(a)
    except Exception:
        text = ""
    return text if 0 < len(text) < 40 else _type_name(a)


def _type_name(value) -> str:
    return type(value).__name__


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# -- what the student returned -------------------------------------------------------------------

def _plain_tensor(value: torch.Tensor) -> torch.Tensor:
    """``value`` as a plain, detached CPU tensor (a subclass loses its overridden operations)."""
    if type(value) not in (torch.Tensor, torch.nn.Parameter):
        with torch._C.DisableTorchFunction():
            value = torch.Tensor.as_subclass(torch.Tensor.detach(value), torch.Tensor)
    value = value.detach()
    if value.device.type == "meta":
        raise Mismatch("返回的是 meta 设备上的张量（没有数值）：请返回真正算出来的张量。")
    return value.cpu()


def as_output(value, like: torch.Tensor, name: str, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The student's output as a detached tensor shaped like ``like`` (in ``like``'s dtype), or a
    :class:`Mismatch` saying what is off: not a tensor, a complex or integer dtype, the wrong
    shape, or (when ``dtype`` is given) not the dtype the sheet requires."""
    if not isinstance(value, torch.Tensor):
        raise Mismatch(f"{name} 应当返回形状为 {tuple(like.shape)} 的 torch.Tensor，实际返回的是 "
                       f"{_type_name(value)}。")
    value = _plain_tensor(value)
    if value.is_complex():
        raise Mismatch(f"{name} 返回了复数张量（{value.dtype}）：分数和系数都是实数，检查一下哪里产生了虚部"
                       "（例如对负数开根号前用了 complex）。")
    if tuple(value.shape) != tuple(like.shape):
        raise Mismatch(f"{name} 应当返回形状 {tuple(like.shape)}（每个输入点一个值），实际形状是 "
                       f"{tuple(value.shape)}。")
    if not value.is_floating_point():
        raise Mismatch(f"{name} 应当返回浮点数张量，实际 dtype 是 {value.dtype}（整数会截断结果）。")
    if dtype is not None and value.dtype != dtype:
        raise Mismatch(f"{name} 应当返回 {str(dtype).replace('torch.', '')} 张量（题目的要求），实际是 "
                       f"{str(value.dtype).replace('torch.', '')}。")
    return value.to(like.dtype)


def as_number(value, name: str, *, allow_inf: bool = False) -> float:
    """The student's number as a Python float: an int, a float, a NumPy scalar or a one-element
    real tensor; a clear :class:`Mismatch` for anything else (a string, a bool, a complex
    number, an integer too large for a float, a method that was not called, NaN)."""
    if isinstance(value, type(...)):
        raise Todo
    if isinstance(value, bool):
        raise Mismatch(f"{name} 应当是一个数，收到的是布尔值 {value}。")
    if callable(value) and not isinstance(value, torch.Tensor):
        raise Mismatch(f"{name} 应当是一个数，收到的却是可调用对象 {_type_name(value)}："
                       "是不是忘了调用它（加上括号和参数）？")
    if isinstance(value, torch.Tensor):
        value = _plain_tensor(value)
        if value.numel() != 1:
            raise Mismatch(f"{name} 应当是一个数，收到的是形状为 {tuple(value.shape)} 的张量。")
        if value.is_complex():
            raise Mismatch(f"{name} 应当是一个实数，收到的是复数 {value.reshape(()).item()}。")
        value = value.reshape(()).item()
    if isinstance(value, complex) or (hasattr(value, "imag") and not isinstance(value, numbers.Real)
                                      and isinstance(value, numbers.Complex)):
        raise Mismatch(f"{name} 应当是一个实数，收到的是复数 {value}。")
    if not isinstance(value, numbers.Real) and not hasattr(value, "__float__"):
        raise Mismatch(f"{name} 应当是一个数，收到的是 {_type_name(value)}。")
    try:
        out = float(value)
    except OverflowError:
        raise Mismatch(f"{name} 太大了，无法表示为浮点数（{_short(str(value), 40)}）。") from None
    except (TypeError, ValueError):
        raise Mismatch(f"{name} 应当是一个数，收到的是 {_type_name(value)}。") from None
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise Mismatch(f"{name} 应当是一个有限的数，收到的是 {out}。")
    return out


def relative_error(value: torch.Tensor, ref: torch.Tensor) -> float:
    """``|value - ref| / |ref|`` over the whole batch (inf when value has NaN or inf, or the
    shapes differ)."""
    if value.shape != ref.shape or not bool(torch.isfinite(value).all()):
        return math.inf
    err = float((value.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-300))
    return err if math.isfinite(err) else math.inf


def close(value: torch.Tensor, ref: torch.Tensor, tol: float) -> bool:
    """Relative error of ``value`` against ``ref`` below ``tol`` (False with NaN or inf)."""
    return relative_error(value, ref) < tol


def autograd_score(log_prob, x: torch.Tensor) -> torch.Tensor:
    """``grad_x log_prob(x).sum()``: the reference score of a log-density."""
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(log_prob(x).sum(), x)
    return g.detach()
