"""The package's layout rules (CONTRIBUTING.md): one home for input checks, no import cycle.

Both are read from the source with ``ast`` and regular expressions, so they run in a fraction of
a second and point at the file and line that breaks a rule.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import scorelab._checks as checks

PACKAGE = Path(__file__).resolve().parents[1] / "scorelab"
# The self-grading subsystem calls its per-exercise graders "checks" (check("4.1.A1", ...)); they
# judge a student's answer, they do not validate arguments, so the rule below does not apply.
GRADING = ("exercises.py", "grade.py", "_exercise_checks", "_exercise_kit.py", "_grade_worker.py", "_grade_report.py")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()

# What an argument check looks like when it is written outside scorelab._checks.
PATTERNS = {
    "a check helper": re.compile(r"^\s*def _?check_?\w*\(", re.M),
    "an inline integer check": re.compile(r"isinstance\(\w+, bool\) or not isinstance\(\w+, (int|Integral)"),
    "an inline bool check": re.compile(r"expected a bool"),
    "an output-shape check": re.compile(r"expected an output of shape"),
    "a positivity check on a tensor": re.compile(r"isfinite\(\w+\)\.all\(\)\) or not bool\(\(\w+ > 0\)"),
    "a time-range check": re.compile(r"expected times in|expected 0 < t_eps"),
    "a choice check": re.compile(r"raise ValueError\(f\"\w+: expected one of"),
}


def test_checks_module_lists_what_it_offers():
    public = {n for n, v in vars(checks).items() if callable(v) and not n.startswith("_")
              and getattr(v, "__module__", "") == checks.__name__}
    assert public == set(checks.__all__)


@pytest.mark.parametrize("name", sorted(n for n, p in MODULES.items()
                                        if p.name != "_checks.py" and not any(g in p.parts for g in GRADING)))
def test_no_argument_check_outside_checks(name):
    text = MODULES[name].read_text()
    found = []
    for what, pattern in PATTERNS.items():
        for m in pattern.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: {what}")
    assert not found, "argument checks belong in scorelab/_checks.py:\n" + "\n".join(found)


def test_the_layout_rules_see_a_check():
    """The patterns catch the forms they are meant to catch (the rule is not vacuous)."""
    sample = '''
def _check_sigmas(sigmas):
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"score_fn: expected an output of shape {shape}")
'''
    hits = {what for what, pattern in PATTERNS.items() if pattern.search(sample)}
    assert hits == {"a check helper", "an inline integer check", "an output-shape check"}


def _imports(name: str, path: Path) -> set[str]:
    """The package modules ``name`` imports anywhere in its file (module level or inside functions)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("scorelab"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("scorelab"):
                continue
            for a in node.names:  # "from . import x" may name a submodule
                out.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}

def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    cycles = _cycles(GRAPH)
    assert not cycles, f"import cycles inside scorelab: {cycles}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
