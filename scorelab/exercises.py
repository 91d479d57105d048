"""Self-grading checks for the exercise notebooks (``exercises/``).

A student writes an answer in an exercise notebook (a function, a number) and runs the check
cell below it::

    from scorelab.exercises import check
    check("4.1.A1", gamma_score)

The check compares the answer with an independent reference (autograd of a log-density, a
float64 computation, a closed form) and says at once, in the notebook and in Chinese like the
sheets, what is right and what is wrong. A wrong answer gets a message that names the likely
mistake (a flipped sign, a factor of two, scale taken for rate); an answer that raises gets
the error and the input it was called with, never a traceback from inside scorelab; an answer
not written yet (the stub still raises ``NotImplementedError``) is reported as to do. A check
that runs past its time limit (60 s unless the part says otherwise) is stopped and fails.

The result displays as text, as HTML and as a small JSON output (MIME type :data:`MIME`).
That output is for the student only: the class grader (``python -m scorelab.grade``) never
trusts what a notebook displays; it runs the checks itself, in a separate process, on the
answer objects the notebook defines (see :mod:`scorelab.grade`).

The checks live in ``scorelab/_exercise_checks/`` and are registered with
``scorelab._exercise_kit.register``; :func:`parts` lists them and :func:`summary` shows the
state of one exercise.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field

import torch

from ._exercise_kit import (
    REGISTRY,
    CheckTimeout,
    Mismatch,
    StudentError,
    Todo,
    register,
    time_limit,
)

__all__ = ["MIME", "STATUS_TEXT", "CheckResult", "Mismatch", "check", "not_passed", "parts", "register", "run_check",
           "summary"]

MIME = "application/vnd.scorelab.check+json"
_STATUS_MARK = {"pass": "✔", "fail": "✘", "todo": "…"}
STATUS_TEXT = {"pass": "通过", "fail": "未通过", "todo": "待完成", "missing": "未检查"}
TODO_MESSAGE = "还没有作答：在上面的单元格里写好答案，再运行这个检查。"


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
        text = f"{mark} {self.part}（{STATUS_TEXT[self.status]}）: {self.message}"
        color = {"pass": "#1a7f37", "fail": "#cf222e", "todo": "#6e7781"}[self.status]
        body = html.escape(self.message).replace("\n", "<br>")
        rich = (f'<div style="border-left:4px solid {color};padding:4px 10px;margin:4px 0">'
                f'<b style="color:{color}">{mark} {html.escape(self.part)} {STATUS_TEXT[self.status]}</b> '
                f'<span style="color:#6e7781">{html.escape(self.title)}</span><br>{body}</div>')
        return {"text/plain": text, "text/html": rich, MIME: asdict(self)}

    def __repr__(self) -> str:
        return self._repr_mimebundle_()["text/plain"]


_LAST: dict[str, CheckResult] = {}  # the latest result of each part in this kernel (for summary)


def _load_checks() -> None:
    from . import _exercise_checks  # noqa: F401  (registers the checks)


def parts(exercise: str | None = None) -> dict[str, tuple[str, float]]:
    """Registered parts (``{part: (title, points)}``), all or those of ``exercise`` (e.g. ``"4.1"``)."""
    _load_checks()
    return {p: (v.title, v.points) for p, v in sorted(REGISTRY.items())
            if exercise is None or p.startswith(exercise + ".")}


def _spec(part: str):
    _load_checks()
    if part not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"没有练习题 {part!r}（no exercise part {part!r}）；已有的题目是：{known}")
    return REGISTRY[part]


def run_check(part: str, answers, *, rng: torch.Generator | None = None,
              limit: float | None = None) -> tuple[str, str]:
    """Run the check of ``part`` on ``answers``: ``(status, message)`` with status ``"pass"``,
    ``"fail"`` or ``"todo"``. ``rng`` selects the hidden variant (inputs drawn from it); ``limit``
    overrides the part's time limit in seconds. Whatever the answers do, this returns."""
    spec = _spec(part)
    answers = tuple(answers)
    if len(answers) != len(spec.answers):
        names = ", ".join(spec.answers)
        return "fail", (f"检查 {part} 需要 {len(spec.answers)} 个答案（{names}），收到了 {len(answers)} 个："
                        f"请写成 check({part!r}, {names})。")
    if rng is not None and not spec.hidden:
        raise ValueError(f"part {part!r} has no hidden variant")
    seconds = spec.time_limit if limit is None else float(limit)
    grad_mode, default_dtype = torch.is_grad_enabled(), torch.get_default_dtype()
    try:
        with time_limit(seconds):
            if any(a is ... for a in answers):
                raise Todo
            kwargs = {"rng": rng} if spec.hidden else {}
            message = spec.fn(*answers, **kwargs)
        return "pass", str(message)
    except Todo:
        return "todo", TODO_MESSAGE
    except (Mismatch, StudentError) as exc:
        return "fail", str(exc)
    except CheckTimeout:
        return "fail", (f"检查超过了 {seconds:g} 秒的时间限制，已被中止：你的代码可能陷入了死循环，或者算得太慢"
                        "（例如在 Python 循环里逐点计算）。请改用张量运算，或检查循环的终止条件。")
    except RecursionError:
        return "fail", "你的代码递归太深（RecursionError）：检查函数之间是否互相调用、没有终止条件。"
    except MemoryError:
        return "fail", "你的代码用尽了内存（MemoryError）：是否构造了过大的张量？"
    except Exception as exc:  # the check could not process what the answer returned
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        return "fail", (f"检查无法处理你的答案（{type(exc).__name__}: {text}）。请对照题目确认答案的类型、形状和 "
                        "dtype：函数应返回题目所说的张量或数，数值题应是一个实数。")
    finally:
        torch.set_grad_enabled(grad_mode)
        torch.set_default_dtype(default_dtype)


def check(part: str, *answers) -> CheckResult:
    """Check the answer(s) to one exercise part and return (and display) the result."""
    spec = _spec(part)
    status, message = run_check(part, answers)
    points = spec.points if status == "pass" else 0.0
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
        lines.append(f"{_STATUS_MARK[status]} {part:8s} {STATUS_TEXT[status]}  {title} ({points:g} 分)")
    lines.append(f"练习 {exercise}：{got:g} / {total:g} 分")
    return "\n".join(lines)


def not_passed(exercise: str) -> list[str]:
    """The parts of ``exercise`` whose latest check in this kernel did not pass (or never ran)."""
    return [p for p in parts(exercise) if p not in _LAST or _LAST[p].status != "pass"]


def to_json(result: CheckResult) -> str:
    return json.dumps(asdict(result), ensure_ascii=False)
