"""Tie a number quoted in a chapter's prose to the value that produced it.

The prose of a notebook states results in words ("the small mode appears at sigma = 4.6").
Each such number is quoted once more in the code cell that computes it::

    quote(sigma_split, "4.6")

which passes when the computed value, rounded to the digits the text shows, reads exactly
as quoted, and fails with a message naming both otherwise. So a change of seed, of torch or
of BLAS that moves a quoted value past its last printed digit breaks the notebook, and with
it the test suite, instead of leaving the prose wrong.

The prose quotes the full settings, so under ``SCORELAB_FAST=1`` (shrunk step counts, other
numbers) ``quote`` only checks that the text is a readable number.

The quoted text sets the precision:

- ``"4.6"``, ``"0.20"``, ``"12"``: fixed point with as many decimals as written;
- ``"3.1e-4"``, ``"2e-3"``: scientific notation with as many significant digits as written;
- ``"45%"``, ``"4.5%"``: a fraction shown as a percentage (``value`` 0.45 reads "45%");
- a leading sign, thousands separators (``"1,797"``) and a trailing ``"x"`` or ``"×"``
  (a ratio, ``"10×"``) are allowed;
- a bound, for prose that states one ("below 1e-10", "at least 1.5 times"): ``"<1e-10"``,
  ``"≤3%"``, ``">1.5×"``, ``"≥0.99"`` (also ``"<="``, ``">="``) passes when the value lies on
  that side of the number, compared exactly.

A sentence that uses a number without claiming it (a section number, a parameter the text
sets, a constant of a formula) needs no ``quote``; see CONTRIBUTING.md.
"""

from __future__ import annotations

import math
import re

from .utils import fast_mode

__all__ = ["QuoteMismatch", "number_of", "quote", "render"]

_BOUND = re.compile(r"^(?P<op><=|>=|<|>|≤|≥)\s*(?P<number>.+)$")
_FORMAT = re.compile(
    r"^(?P<sign>[-+−]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?"
    r"(?:e(?P<exp>[-+]?\d+))?(?P<suffix>%|×|x)?$"
)


class QuoteMismatch(AssertionError):
    """A number quoted in the prose does not match the value computed for it."""


def _parse(text: str):
    m = _FORMAT.match(text.strip())
    if m is None:
        raise ValueError(f"text: expected a number such as '4.6', '0.20', '3.1e-4', '45%', '10×' or '<1e-10', "
                         f"got {text!r}")
    return m


def number_of(text: str) -> float:
    """The number ``text`` reads as (a percentage as a fraction): ``number_of("45%") == 0.45``."""
    m = _parse(text)
    v = float(f"{m['int'].replace(',', '')}.{m['frac'] or '0'}" + (f"e{m['exp']}" if m["exp"] else ""))
    if m["sign"] in ("-", "−"):
        v = -v
    return v / 100.0 if m["suffix"] == "%" else v


def render(value: float, text: str) -> str:
    """``value`` written with the precision and form of ``text`` (see the module docstring; a bound
    such as ``"<1e-10"`` has no precision to render and is an error here)."""
    m = _parse(text)
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    suffix = m["suffix"] or ""
    if suffix == "%":
        v *= 100.0
    decimals = len(m["frac"] or "")
    if m["exp"] is not None:
        out = f"{v:.{decimals}e}"
        mant, exp = out.split("e")
        e = int(exp)
        out = f"{mant}e{'+' if m['exp'].startswith('+') and e >= 0 else ''}{e}"
    else:
        out = f"{v:,.{decimals}f}" if "," in m["int"] else f"{v:.{decimals}f}"
    if m["sign"] == "+" and not out.startswith("-"):
        out = "+" + out
    if m["sign"] == "−":
        out = out.replace("-", "−")
    if out in ("-0", "-0." + "0" * decimals):  # -0.001 printed with 0 decimals is "0"
        out = out[1:]
    return out + suffix


def _within(v: float, bound) -> bool:
    limit = number_of(bound["number"])
    op = {"≤": "<=", "≥": ">="}.get(bound["op"], bound["op"])
    return {"<": v < limit, "<=": v <= limit, ">": v > limit, ">=": v >= limit}[op]


def quote(value, text: str) -> str:
    """Check that ``value`` reads as ``text`` at the precision ``text`` shows; return ``text``.

    Under ``SCORELAB_FAST=1`` the value is not compared (the prose quotes the full settings).

    Raises:
        QuoteMismatch: the rounded value differs from the quoted text (or lies on the wrong side
            of a quoted bound).
        ValueError: ``text`` is not a number this helper can read.
    """
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"value: expected a number (or a one-element tensor), got {type(value).__name__}") from exc
    want = text.strip()
    bound = _BOUND.match(want)
    if bound is not None:
        _parse(bound["number"])
        if not fast_mode() and not _within(v, bound):
            raise QuoteMismatch(f"the prose quotes {want}, but the computation gives {v!r}, which is not")
        return want
    got = render(v, text)
    if got != want and not fast_mode():
        raise QuoteMismatch(f"the prose quotes {want}, but the computation gives {v!r}, which reads {got}")
    return want
