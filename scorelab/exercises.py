"""Self-grading checks for the exercise notebooks (``exercises/``) and the class grader.

A student writes an answer in an exercise notebook (a function, a number) and runs the check
cell below it::

    from scorelab.exercises import check
    check("4.1.A1", gamma_score)

The check compares the answer with an independent reference (autograd of a log-density, a
float64 computation, a closed form) and says at once, in the notebook, what is right and what
is wrong. A wrong answer gets a message that names the likely mistake (a flipped sign, a
factor of two, scale taken for rate); an answer that raises gets the error and the input it
was called with, never a traceback from inside scorelab; an answer not written yet (the stub
still raises ``NotImplementedError``) is reported as to do.

Each result is also emitted as a small JSON output (MIME type :data:`MIME`), which is what
``python -m scorelab.grade`` reads back from a class's executed notebooks.

Checks are registered per exercise part with :func:`register`; :func:`parts` lists them and
:func:`summary` shows the state of one exercise.
"""

from __future__ import annotations

import html
import json
import math
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

__all__ = ["MIME", "CheckResult", "Mismatch", "check", "not_passed", "parts", "register", "summary"]

MIME = "application/vnd.scorelab.check+json"
_SCORELAB = str(Path(__file__).resolve().parent)  # frames inside the package
_STATUS_MARK = {"pass": "✔", "fail": "✘", "todo": "…"}


@dataclass
class CheckResult:
    """Outcome of one check: ``status`` is ``"pass"``, ``"fail"`` or ``"todo"``."""

    part: str
    title: str
    status: str
    message: str
    points: float
    max_points: float
    details: dict = field(default_factory=dict)

    def _repr_mimebundle_(self, include=None, exclude=None):
        mark = _STATUS_MARK[self.status]
        text = f"{mark} {self.part} {self.title}: {self.message}"
        color = {"pass": "#1a7f37", "fail": "#cf222e", "todo": "#6e7781"}[self.status]
        body = html.escape(self.message).replace("\n", "<br>")
        rich = (f'<div style="border-left:4px solid {color};padding:4px 10px;margin:4px 0">'
                f'<b style="color:{color}">{mark} {html.escape(self.part)}</b> {html.escape(self.title)}'
                f'<br>{body}</div>')
        return {"text/plain": text, "text/html": rich, MIME: asdict(self)}

    def __repr__(self) -> str:
        return self._repr_mimebundle_()["text/plain"]


class Mismatch(Exception):
    """Raised by a check when the answer is wrong; its message is shown to the student."""


class StudentError(Exception):
    """The student's code raised; the message says where and with what input."""


class _Todo(Exception):
    pass


@dataclass
class _Part:
    title: str
    points: float
    fn: Callable


_REGISTRY: dict[str, _Part] = {}
_LAST: dict[str, CheckResult] = {}  # the latest result of each part in this kernel (for summary)


def register(part: str, title: str, points: float = 1.0):
    """Decorator registering ``fn(*answers) -> str`` as the check of ``part`` (e.g. ``"4.1.A1"``).

    ``fn`` returns a short confirmation when the answer is right, and raises
    :class:`Mismatch` with a helpful message when it is not.
    """
    def deco(fn):
        if part in _REGISTRY:
            raise ValueError(f"part {part!r} is registered twice")
        _REGISTRY[part] = _Part(title, float(points), fn)
        return fn
    return deco


def parts(exercise: str | None = None) -> dict[str, tuple[str, float]]:
    """Registered parts (``{part: (title, points)}``), all or those of ``exercise`` (e.g. ``"4.1"``)."""
    _load_checks()
    return {p: (v.title, v.points) for p, v in sorted(_REGISTRY.items())
            if exercise is None or p.startswith(exercise + ".")}


def _load_checks() -> None:
    from . import _exercise_checks  # noqa: F401  (registers the checks)


def check(part: str, *answers) -> CheckResult:
    """Check the answer(s) to one exercise part and return (and display) the result."""
    _load_checks()
    if part not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"no exercise part {part!r}; the parts are: {known}")
    spec = _REGISTRY[part]
    try:
        if any(a is ... for a in answers):
            raise _Todo
        message = spec.fn(*answers)
        status, points = "pass", spec.points
    except _Todo:
        status, points, message = "todo", 0.0, "not answered yet: fill in the cell above, then run this check again."
    except (Mismatch, StudentError) as exc:
        status, points, message = "fail", 0.0, str(exc)
    result = CheckResult(part, spec.title, status, message, points, spec.points)
    _LAST[part] = result
    return result


def summary(exercise: str, results: dict[str, CheckResult] | None = None) -> str:
    """A one-line-per-part overview of ``exercise``: the latest check of each part run in this
    kernel (or the given ``results``), and the points so far."""
    results = _LAST if results is None else results
    lines, got, total = [], 0.0, 0.0
    for part, (title, points) in parts(exercise).items():
        r = results.get(part)
        status = r.status if r else "todo"
        got, total = got + (r.points if r else 0.0), total + points
        lines.append(f"{_STATUS_MARK[status]} {part:8s} {title} ({points:g} pt)")
    lines.append(f"exercise {exercise}: {got:g} / {total:g} points")
    return "\n".join(lines)


def not_passed(exercise: str) -> list[str]:
    """The parts of ``exercise`` whose latest check in this kernel did not pass (or never ran)."""
    return [p for p in parts(exercise) if p not in _LAST or _LAST[p].status != "pass"]


# -- helpers used by the checks --------------------------------------------------------------

def call(fn, *args, name: str | None = None, **kwargs):
    """Call the student's ``fn``; a ``NotImplementedError`` means "to do", any other error
    becomes a :class:`StudentError` naming the function, the input shapes and the error."""
    if not callable(fn):
        raise Mismatch(f"expected a function or a class, got {type(fn).__name__}: pass the function itself "
                       f"(or the class), without calling it (e.g. check(part, my_function))")
    name = name or getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # the student's bug, reported without scorelab's frames
        frames = traceback.extract_tb(exc.__traceback__)[1:]  # drop this function's own frame
        if isinstance(exc, NotImplementedError) and frames and _SCORELAB not in frames[-1].filename:
            raise _Todo from None  # the student's stub
        inputs = ", ".join(_describe(a) for a in args)
        where = next((f for f in reversed(frames) if _SCORELAB not in f.filename), None)
        line = f" (line {where.lineno}: {where.line})" if where is not None and where.line else ""
        inside = (f" inside scorelab's {frames[-1].name}" if frames and _SCORELAB in frames[-1].filename
                  and isinstance(exc, NotImplementedError) else "")
        raise StudentError(f"{name}({inputs}) raised {type(exc).__name__}{inside}: {exc}{line}") from None


def _describe(a) -> str:
    if isinstance(a, torch.Tensor):
        return f"tensor of shape {tuple(a.shape)}, {str(a.dtype).replace('torch.', '')}"
    if isinstance(a, float):
        return f"{a:g}"
    return repr(a) if len(repr(a)) < 40 else type(a).__name__


def as_output(value, like: torch.Tensor, name: str) -> torch.Tensor:
    """The student's output as a tensor shaped like ``like``, or a Mismatch saying what is off."""
    if not isinstance(value, torch.Tensor):
        raise Mismatch(f"{name} should return a torch.Tensor of shape {tuple(like.shape)}, got "
                       f"{type(value).__name__}")
    if value.shape != like.shape:
        raise Mismatch(f"{name} should return shape {tuple(like.shape)} (one value per input point), got "
                       f"{tuple(value.shape)}")
    if not value.is_floating_point():
        raise Mismatch(f"{name} should return floating-point numbers, got dtype {value.dtype}")
    return value.detach().to(like.dtype)


def relative_error(value: torch.Tensor, ref: torch.Tensor) -> float:
    """``|value - ref| / |ref|`` over the whole batch (inf when value has NaN or inf)."""
    if not bool(torch.isfinite(value).all()):
        return math.inf
    return float((value - ref).norm() / ref.norm().clamp_min(1e-300))


def as_number(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise Mismatch(f"{name} should be a number, got {type(value).__name__}") from None
    if not math.isfinite(out):
        raise Mismatch(f"{name} should be a finite number, got {out}")
    return out


def to_json(result: CheckResult) -> str:
    return json.dumps(asdict(result), ensure_ascii=False)
