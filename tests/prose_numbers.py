"""Find the numbers a notebook's prose states and decide, for each, why it may stand there.

Every number in a markdown cell must be one of:

1. **tied**: a code cell of the same notebook quotes it, ``quote(value, "4.6")``
   (``scorelab.quotes``), so executing the notebook checks it at the precision written;
2. **structural**, by a rule below: a section number, an ordinal, a year, a name with digits,
   a constant inside a formula, code;
3. a **parameter the text sets**: a plain number (no sign of approximation, no bound, not a
   ratio) equal to a literal the notebook's code uses outside its ``assert`` statements. An
   exercise sheet states its task: the literals of its check module
   (``scorelab/_exercise_checks/ex4_X.py``) count too, and there a bound or a ratio states a
   requirement rather than a result;
4. on the notebook's short list in ``ALLOWED`` below, with the reason it is not a claim.

Anything else is a claim nobody checks, and ``check_notebook`` reports it. Conversely, every
number a ``quote`` ties must still appear in the prose, so editing a quoted number in the
text (without editing its quote) is caught too.

Rules in detail (``classify``):

- code is not prose: fenced blocks, inline code spans, link targets and HTML are skipped;
- section numbers: a heading's leading number, ``4.3.2`` (three levels) anywhere, ``4.3`` next
  to 节/章/篇/题 or after 第/练习/习题/教材/§ (ranges such as ``4.1–4.5 节`` included);
- ordinals and labels: a number after 第 (the 6th level), 算法/定理/式/图/表 (Algorithm 1), and
  the number of a numbered list item;
- years: 1950–2039 written without a thousands separator;
- names: digits glued to Latin letters (``float32``, ``NCSNv2``, ``CIFAR-10``, ``AR(1)``, ``B3``);
- math: a number inside ``$...$`` is a constant of the formula (``\\frac12``, ``x^2``,
  ``\\sigma_{10}``, ``2\\epsilon``) unless it stands as a value: alone, or between a
  relation (``=``, ``\\approx``, ``<``, ...) or an opening bracket/comma and the end of the
  span, a closing bracket/comma or another relation. ``a\\times10^{k}``, ``10^{k}`` and
  ``e^{k}`` written as values are read as one number (``ae k``, ``1e k``, ``k``).

A number is a *result* (never excused as a parameter) when it is written as a ratio
(``10×``, ``3 倍``), after a word or sign of approximation (约, 大约, 左右, ≈, ~) or of a
bound (小于, 不到, 超过, 至少, 以上, ...). Inside a formula only ``\\approx`` marks a result:
an inequality there states a condition (``$\\mathrm{SNR}<1$``).
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("chapters", "exercises", "solutions")

# Numbers that are not claims, per notebook (path relative to the repository root), each
# with its reason. Keep this short: a number that a computation can produce belongs in a
# quote(), a number the text sets belongs in the code.
_KS_BAND = "the level of the Kolmogorov-Smirnov band, whose critical value 1.63 the code uses"
ALLOWED: dict[str, dict[str, str]] = {
    "chapters/4.5-sde-framework.md": {"99%": _KS_BAND},
    "chapters/4.6-advanced-topics.md": {"99%": _KS_BAND},
    "solutions/4.5-sde-exercises.md": {"99%": _KS_BAND},
    "exercises/4.1-score-properties.md": {
        "-104": "a fact of float32: e^-104 lies below its smallest subnormal number, about e^-103.3",
        "0.8": "a noise level the open exploration suggests (its solution draws the field there)",
    },
    "exercises/4.3-ncsn-exercises.md": {"0.2": "Song & Ermon's weights, set in chapter 4.3",
                                        "0.8": "Song & Ermon's weights, set in chapter 4.3"},
    "exercises/4.4-langevin-exercises.md": {"25": "the condition number 4 / 0.16 of the variances the sheet sets"},
    "exercises/design-project.md": {
        "6": "the milestones' points, 1 + 1 + 2 + 2, registered in scorelab/_exercise_checks/ex_design.py"},
}

# --- tokens -------------------------------------------------------------------------------

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_SEC = r"\d\.\d(?:\.\d+)?"
_SEC_LIST = rf"{_SEC}(?:\s*(?:[–—~、,，/]|到|至|和|与|及)\s*{_SEC})*"
_SECTION_PATTERNS = [
    re.compile(r"(?<![\d.])\d\.\d\.\d+(?![\d.])"),  # three levels: always a section
    re.compile(rf"(?<![\d.]){_SEC_LIST}(?=\s*\**\s*[）)]?\s*(?:节|章|篇|题|小节))"),
    re.compile(rf"(?:第|练习|习题|教材|§|Section|section|Exercise|exercise)\s*\**\s*{_SEC_LIST}"),
    re.compile(rf"(?<=节)\s*[（(]{_SEC_LIST}[）)]"),
]
_PROSE_NUM = re.compile(
    rf"(?P<sign>(?<![\w.])[-−](?=\d))?(?<![\w.,]){_NUM}(?:\s*(?:×|\\times)\s*10\^\{{?[-−]?\d+\}}?|e[-−+]?\d+)?"
    r"(?P<pct>\s*%)?(?![\w])"
)
_APPROX_BEFORE = re.compile(r"(?:(?:约|大约|大致)[为是有占合]?|≈|~|～|\\approx|\\sim)\s*$")
_BOUND_BEFORE = re.compile(
    r"(?:小于|少于|低于|不到|不足|不超过|超过|高于|大于|多于|至少|至多|最多|最少|只有|仅|只剩|<|>|≤|≥|\\le|\\ge|\\leq|\\geq)\s*$"
)
_AFTER_APPROX = re.compile(r"^\s*(?:左右|上下)")
_AFTER_BOUND = re.compile(r"^\s*(?:以上|以下|以内|之内|多|余)")
_AFTER_RATIO = re.compile(r"^\s*(?:倍|×(?!\s*\d)|x(?![A-Za-z\d]))")  # 10×, 3 倍; not 28×28
_LABEL_BEFORE = re.compile(r"(?:第|算法|定理|引理|命题|式|图|表|步骤|Algorithm|Theorem|Eq\.|Figure|Table|Fig\.)\s*$")
_NAME_BEFORE = re.compile(r"(?:[A-Za-z_][A-Za-z_]*-|[A-Z][A-Za-z]*\()$")
_YEAR = re.compile(r"^(19[5-9]\d|20[0-3]\d)$")

_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\$)(.+?)(?<![\\])\$", re.S)
_RELATIONS = (r"=", r"<", r">", r"\approx", r"\le", r"\leq", r"\ge", r"\geq", r"\sim", r"\lesssim", r"\gtrsim",
              r"\ne", r"\neq", r"\to", "≈", "≤", "≥", r"\pm", r"\mp")
_MATH_VALUE = re.compile(
    r"(?P<sci>(?P<mant>\d+(?:\.\d+)?)\s*\\times\s*10\^\{?(?P<exp1>[-−]?\d+)\}?)"
    r"|(?P<pow10>(?<![\d.])10\^\{?(?P<exp2>[-−]?\d+)\}?)"
    r"|(?P<exp>(?<![A-Za-z\\])e\^\{?(?P<exp3>[-−]?\d+)\}?)"
    r"|(?P<num>(?<![\d.])\d+(?:\.\d+)?)"
)
_SPACING = re.compile(r"^(?:\s|\\[,;:! ]|\\quad|\\qquad|\{|\}|\\left|\\right|\\big|\\Big)*")
_SPACING_END = re.compile(r"(?:\s|\\[,;:! ]|\\quad|\\qquad|\{|\}|\\left|\\right|\\big|\\Big)*$")


@dataclass
class Number:
    """One number of a markdown cell: its text as written, canonical form and context."""

    text: str
    canonical: str
    line: int
    context: str
    in_math: bool = False
    result: str = ""  # written as a result: "approx", "bound" or "ratio" ("" = plainly)
    reason: str = ""  # why it may stand there ("" = unexplained)
    span: tuple[int, int] = (0, 0)  # where it is written, as offsets in the notebook's text


@dataclass
class Notebook:
    name: str  # path relative to the repository root, e.g. "chapters/4.3-ncsn.md"
    markdown: list[tuple[int, str, int]] = field(default_factory=list)  # (first line, source, offset in the text)
    code: list[tuple[int, str]] = field(default_factory=list)


def canonical(text: str) -> str:
    """A number's text without what does not change its meaning in a comparison: thousands
    separators, a leading '+', the ratio sign; '−' read as '-'; scientific notation as 'me k'."""
    t = re.sub(r"^(?:<=|>=|<|>|≤|≥)", "", text.strip()).replace("−", "-").replace(",", "").replace(" ", "")
    t = t.rstrip("×x")
    if t.startswith("+"):
        t = t[1:]
    m = re.fullmatch(r"(-?[\d.]+)(?:\\times|×)10\^\{?(-?\d+)\}?(%?)", t)
    if m:
        return f"{m[1]}e{int(m[2])}{m[3]}"
    m = re.fullmatch(r"(-?[\d.]+)e([-+]?\d+)(%?)", t)
    if m:
        return f"{m[1]}e{int(m[2])}{m[3]}"
    return t


def read_notebook(path: Path) -> Notebook:
    """A MyST notebook of the repository, split into cells."""
    return parse_notebook(path.read_text(encoding="utf-8"), path.resolve().relative_to(ROOT).as_posix())


def parse_notebook(text: str, name: str) -> Notebook:
    """Split the text of a MyST notebook into its markdown and code cells, with line numbers."""
    import jupytext

    nb = jupytext.reads(text, fmt="md:myst")
    out = Notebook(name)
    pos = 0
    for cell in nb.cells:
        src = cell.source
        at = text.find(src, pos) if src else -1
        line = text.count("\n", 0, at) + 1 if at >= 0 else 0
        if at >= 0:
            pos = at + len(src)
        if cell.cell_type == "markdown":
            out.markdown.append((line, src, max(at, 0)))
        elif cell.cell_type == "code":
            out.code.append((line, src))
    return out


# --- the code side ------------------------------------------------------------------------


def _is_quote_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "quote")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "quote"))


def _literals(tree: ast.AST, skip: set[int] = frozenset()) -> set[float]:
    return {abs(float(node.value)) for node in ast.walk(tree)
            if id(node) not in skip and isinstance(node, ast.Constant) and type(node.value) in (int, float)}


def check_module_literals(name: str) -> set[float]:
    """Numbers an exercise's check module sets (its data, tolerances, levels): for an exercise sheet
    and its solutions, those are the settings the task states."""
    m = re.match(r"(?:exercises|solutions)/(?:(\d)\.(\d)-|(design)-)", name)
    if m is None:
        return set()
    module = f"ex{m[1]}_{m[2]}" if m[1] else "ex_design"
    path = ROOT / "scorelab" / "_exercise_checks" / f"{module}.py"
    return _literals(ast.parse(path.read_text(encoding="utf-8"))) if path.exists() else set()


def code_facts(nb: Notebook) -> tuple[dict[str, int], set[float], list[str]]:
    """(quoted texts -> line, literal numbers the code uses outside its checks, problems)."""
    quoted: dict[str, int] = {}
    literals: set[float] = check_module_literals(nb.name)
    problems: list[str] = []
    for line, src in nb.code:
        body = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())
        try:
            tree = ast.parse(body)
        except SyntaxError as exc:
            problems.append(f"{nb.name}:{line}: a code cell does not parse ({exc.msg})")
            continue
        skip: set[int] = set()
        for node in ast.walk(tree):
            if _is_quote_call(node):
                args = list(node.args) + [k.value for k in node.keywords if k.arg == "text"]
                texts = args[1:2]
                if not texts or not (isinstance(texts[0], ast.Constant) and isinstance(texts[0].value, str)):
                    problems.append(f"{nb.name}:{line + node.lineno}: quote() needs its text as a string "
                                    "literal, so that the prose check can read it")
                else:
                    quoted.setdefault(canonical(texts[0].value), line + node.lineno)
            if _is_quote_call(node) or isinstance(node, ast.Assert):
                skip.update(id(n) for n in ast.walk(node))
        literals |= _literals(tree, skip)
    return quoted, literals, problems


# --- the prose side -----------------------------------------------------------------------


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + "".join("\n" if c == "\n" else " " for c in text[start:end]) + text[end:]


def _strip_code(md: str) -> str:
    """Blank out what is code or markup, not prose: fences, inline code, link targets, HTML."""
    for pattern in (r"```.*?```", r"~~~.*?~~~", r"`[^`\n]*`", r"<!--.*?-->", r"\]\([^)\s]*\)", r"<[^>\n]+>",
                    r"https?://\S+"):
        for m in reversed(list(re.finditer(pattern, md, flags=re.S))):
            md = _blank(md, m.start(), m.end())
    return md


def _section_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for line in re.finditer(r"^[ \t]*#+[ \t]+[\d.]+(?=\s)", text, flags=re.M):  # heading numbers
        spans.append((line.start(), line.end()))
    for line in re.finditer(r"^[ \t]*(?:[-*+][ \t]+)?\**\d+(?:\.\d+)*[.)、]?(?=[ \t])", text, flags=re.M):
        spans.append((line.start(), line.end()))  # numbered list items, list items led by a section
    for pattern in _SECTION_PATTERNS:
        spans += [(m.start(), m.end()) for m in pattern.finditer(text)]
    return spans


def _inside(spans, a, b) -> bool:
    return any(s <= a and b <= e for s, e in spans)


def _math_numbers(body: str) -> list[tuple[str, int, int]]:
    """Numbers standing as values in a math span (see the module docstring), with offsets."""
    out = []
    for m in _MATH_VALUE.finditer(body):
        a, b = m.span()
        if m["num"] is not None and (body[b:b + 1] == "^" or body[b:b + 1].isalpha() and body[b:b + 1] != "e"):
            continue  # 2^n, 2x, 4b: a coefficient or a base
        word = re.search(r"(\\?)([A-Za-z]+)$", body[:a])
        if m["num"] is not None and word and not word[1]:
            continue  # x2, e1: part of a symbol (a command such as \approx3 is fine)
        before = _SPACING_END.sub("", body[:a])
        sign = ""
        if before.endswith(("-", "−")):
            sign, before = "-", _SPACING_END.sub("", before[:-1])
        after = _SPACING.sub("", body[b:])
        # inside an exponent or an index: a constant of the formula
        if re.search(r"[\^_]\{?$", body[:a]) or re.search(r"[\^_]\{?$", before) and not m["sci"]:
            continue
        left_ok = (before == "" or before.endswith(("(", "[", ",", "\\{")) or before.endswith(_RELATIONS)
                   or (sign and before == ""))
        right_ok = (after == "" or after.startswith((")", "]", ",", ";", ".", "\\}", "\\text", "\\mathrm", "\\qquad",
                                                       "\\quad", "\\;", "\\,", "$"))
                    or after.startswith(_RELATIONS) or after.startswith("\\%"))
        if sign and not left_ok:
            sign = ""
        if not (left_ok and right_ok):
            continue
        if m["sci"]:
            text = f"{m['mant']}e{int(m['exp1'].replace('−', '-'))}"
        elif m["pow10"]:
            text = f"1e{int(m['exp2'].replace('−', '-'))}"
        elif m["exp"]:
            text = str(int(m["exp3"].replace("−", "-")))
        else:
            text = sign + m["num"]
        if after.startswith("\\%"):
            text += "%"
        out.append((text, a, b))
    return out


def prose_numbers(md: str, first_line: int = 1, offset: int = 0) -> list[Number]:
    """Every number of one markdown cell, each with its structural reason if it has one."""
    clean = _strip_code(md)
    numbers: list[Number] = []
    # math spans first; then the prose with the math blanked out
    prose = clean
    math_spans = []
    for m in _MATH.finditer(clean):
        body = m.group(1) if m.group(1) is not None else m.group(2)
        body_at = m.start(1) if m.group(1) is not None else m.start(2)
        math_spans.append((m.start(), m.end(), body, body_at))
    for start, end, _, _ in reversed(math_spans):
        prose = prose[:start] + "$" + " " * (end - start - 2) + "$" + prose[end:]
    flat = re.sub(r"\*\*|__", "  ", prose)  # bold markers do not separate a number from its words
    sections = _section_spans(flat)

    def context(a, b):
        lo, hi = max(0, a - 18), min(len(md), b + 12)
        return md[lo:hi].replace("\n", " ")

    def line_of(a):
        return first_line + md.count("\n", 0, a)

    def marked(a, b) -> str:
        before, after = re.sub(r"[\s$*]+$", "", flat[:a]), re.sub(r"^[\s$*]+", "", flat[b:])
        if _APPROX_BEFORE.search(before) or _AFTER_APPROX.match(after):
            return "approx"
        if _BOUND_BEFORE.search(before) or _AFTER_BOUND.match(after):
            return "bound"
        return "ratio" if _AFTER_RATIO.match(after) else ""

    for start, end, body, body_at in math_spans:
        for text, a, b in _math_numbers(body):
            at, to = body_at + a, body_at + b
            n = Number(text, canonical(text), line_of(at), context(at, to), in_math=True,
                       span=(offset + at, offset + to))
            before = body[:a].rstrip()
            # in a formula only an approximation marks a result; an inequality states a condition
            n.result = ("approx" if before.endswith((r"\approx", "≈"))
                        else marked(start, end) if not body[:a].strip() else "")
            numbers.append(n)
    for m in _PROSE_NUM.finditer(flat):
        a, b = m.span()
        text = m.group(0)
        n = Number(text.strip(), canonical(text), line_of(a), context(a, b), span=(offset + a, offset + b))
        n.result = marked(a, b)
        numbers.append(n)
        digits = re.sub(r"^[-−]", "", text.strip())
        if _inside(sections, a, b):
            n.reason = "section number"
        elif _LABEL_BEFORE.search(flat[:a].rstrip(" *")):
            n.reason = "ordinal or label"
        elif _YEAR.match(digits):
            n.reason = "year"
        elif _NAME_BEFORE.search(flat[max(0, a - 12):a]):
            n.reason = "part of a name"
    return numbers


def classify(nb: Notebook) -> tuple[list[Number], list[str]]:
    """All prose numbers of a notebook with their reasons, and the problems found."""
    quoted, literals, problems = code_facts(nb)
    rel = nb.name
    sheet = rel.startswith("exercises/")  # a sheet's bounds and ratios state the task, not results
    allowed = ALLOWED.get(rel, {})
    numbers = [n for line, src, at in nb.markdown for n in prose_numbers(src, line, at)]
    seen_quotes: set[str] = set()
    for n in numbers:
        if n.reason:  # structural: a section number, a year, a name, ...
            pass
        elif n.canonical in quoted:
            n.reason = "quoted"
            seen_quotes.add(n.canonical)
        elif n.canonical in allowed:
            n.reason = f"allowed: {allowed[n.canonical]}"
        elif (not n.result or (n.result != "approx" and sheet)) and _value(n.canonical) in literals:
            n.reason = "parameter"
    for text, line in quoted.items():
        if text not in seen_quotes:
            problems.append(f"{rel}:{line}: quote(..., {text!r}) ties a number the prose no longer states")
    for text in allowed:
        if not any(n.canonical == text for n in numbers):
            problems.append(f"{rel}: ALLOWED lists {text!r}, which the prose no longer states")
    return numbers, problems


def _value(text: str) -> float | None:
    t = text.rstrip("%")
    try:
        v = abs(float(t))
    except ValueError:
        return None
    if text.endswith("%"):
        v = round(v / 100, 12)
    return v if math.isfinite(v) else None


def check_notebook(path: Path) -> list[str]:
    """The problems of one notebook: unexplained numbers, orphan quotes, unreadable quotes."""
    return check(read_notebook(path))


def check(nb: Notebook) -> list[str]:
    """The problems of a parsed notebook (see ``check_notebook``)."""
    numbers, problems = classify(nb)
    rel = nb.name
    for n in numbers:
        if not n.reason:
            kind = " (written as a result: quote it)" if n.result else ""
            problems.append(f"{rel}:{n.line}: {n.text!r}{kind} is neither quoted nor a listed non-claim:"
                            f"  ...{n.context}...")
    return problems


def notebooks() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.md") if p.name != "README.md")
