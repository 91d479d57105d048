"""Every number in a notebook's prose is tied to the computation by quote(), or is a listed non-claim.

The rules live in tests/prose_numbers.py; CONTRIBUTING.md explains them to authors. Executing a
notebook checks each quote() against its value; this test checks the other half, that the prose
and the quotes agree, without executing anything.
"""


import pytest
from prose_numbers import (  # tests/prose_numbers.py
    ALLOWED,
    check,
    check_notebook,
    classify,
    code_facts,
    notebooks,
    parse_notebook,
    prose_numbers,
    read_notebook,
)

NOTEBOOKS = notebooks()


def _md(markdown: str, code: str = "") -> str:
    """A two-cell MyST notebook: one markdown cell, one code cell."""
    return f"{markdown}\n\n```{{code-cell}} ipython3\n{code}\n```\n"


def _problems(markdown: str, code: str = "", name: str = "chapters/9.9-test.md") -> list[str]:
    return check(parse_notebook(_md(markdown, code), name))


def test_there_are_notebooks_to_check():
    assert any(p.name.startswith("4.3") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_number_in_the_prose_is_quoted_or_a_listed_non_claim(path):
    problems = check_notebook(path)
    assert not problems, (
        "numbers in the prose that nothing checks (tie each to its value with quote(value, \"text\") in the cell "
        "that computes it; see CONTRIBUTING.md):\n  " + "\n  ".join(problems))


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if "quote(" in p.read_text(encoding="utf-8")],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_editing_a_quoted_number_in_the_prose_is_caught(path):
    """Edit each quoted number of the prose in turn (its last digit, to a value that is neither quoted
    nor a parameter of the code): the prose check must then fail."""
    text = path.read_text(encoding="utf-8")
    nb = read_notebook(path)
    quoted, literals, _ = code_facts(nb)
    numbers, _ = classify(nb)
    tried = 0
    for n in numbers:
        if n.reason != "quoted":
            continue
        start, end = n.span
        written = text[start:end]
        last = max(i for i, c in enumerate(written) if c.isdigit())
        # replace the last digit, or append one ("0.5" -> "0.57"): the first edit that is a new value
        edits = [written[:last] + d + written[last + 1:] for d in "1234567890"]
        edits += [written[:last + 1] + d + written[last + 1:] for d in ("7", "3", "9", "73", "37", "91")]
        edited = next((e for e in edits if e != written and _new_value(e, n, quoted, literals)), None)
        assert edited is not None, f"{nb.name}:{n.line}: found no edit of {written!r} to try"
        problems = check(parse_notebook(text[:start] + edited + text[end:], nb.name))
        assert problems, f"{nb.name}:{n.line}: editing the quoted {written!r} to {edited!r} in the prose went unnoticed"
        tried += 1
    assert tried, f"{nb.name}: no quoted number in the prose"


def _new_value(edited: str, n, quoted, literals) -> bool:
    """Whether the number written as ``edited`` (in place of ``n``) is neither quoted nor a code literal."""
    probe = prose_numbers(edited if not n.in_math else f"${edited}$")
    if len(probe) != 1:
        return False
    value = probe[0].canonical
    return value not in quoted and (bool(n.result) or abs(float(value.rstrip("%"))) not in literals)


# --- the rules, on small examples -------------------------------------------------------------


def _reasons(markdown: str) -> dict[str, str]:
    return {n.text: n.reason for n in prose_numbers(markdown)}


def test_section_numbers_years_names_and_ordinals_are_structural():
    numbers = prose_numbers("## 4.3.2 退火\n\n见 4.2 节和第 4.5.1 节、练习 4.4；Song & Ermon（2019）的算法 1，"
                            "第 6 级，float32 与 CIFAR-10，4.1–4.5 节，（4.6.3）。")
    reasons = [n.reason for n in numbers]
    assert reasons.count("section number") == 7 and reasons.count("ordinal or label") == 2
    assert reasons.count("year") == 1 and reasons.count("part of a name") == 1 and "" not in reasons
    assert not any(n.text == "32" for n in numbers)  # float32: glued to its name, not a number


def test_a_section_like_number_outside_a_section_context_is_a_number():
    r = _reasons("两个极大值保持到 $\\sigma\\approx4.6$，比例约为 4.5。")
    assert r["4.6"] == "" and r["4.5"] == ""


def test_constants_of_a_formula_are_not_numbers_but_values_in_it_are():
    numbers = {n.text: n for n in prose_numbers(
        "$s(x)=-\\tfrac12 x^2+2\\epsilon$，$\\sigma_{10}$，$D=10\\sqrt2$，$\\sigma_6\\approx3.8$，"
        "$2^{100}\\approx1.27\\times10^{30}$，$e^{-25}$，$[-8,8]^2$")}
    assert set(numbers) == {"3.8", "1.27e30", "-25", "-8", "8"}
    assert numbers["3.8"].result == "approx" and numbers["-8"].result == ""


def test_words_of_approximation_bound_and_ratio_mark_a_result():
    text = "相距约 14，误差小于 0.5，高出 12 倍，停在 0.2 左右，取 20，快 9×。"
    kinds = {n.text: n.result for n in prose_numbers(text)}
    assert kinds == {"14": "approx", "0.5": "bound", "12": "ratio", "0.2": "approx", "20": "", "9": "ratio"}
    assert [n.result for n in prose_numbers("28×28 的图像")] == ["", ""]  # a size, not a ratio


def test_a_parameter_the_code_sets_passes_and_a_result_does_not():
    code = "n_particles = 1280\nsigma0 = 0.5\nerr = 0.123\nassert err < 0.2\n"
    assert _problems("用 1,280 个粒子，$\\sigma=0.5$。", code) == []
    problems = _problems("误差约 0.2。", code)  # 0.2 only appears in a check: not a parameter
    assert len(problems) == 1 and "'0.2'" in problems[0] and "quote it" in problems[0]
    assert len(_problems("误差约 0.5。", code)) == 1  # a parameter's value, but written as a result


def test_a_quoted_number_passes_and_an_edited_one_fails():
    code = 'from scorelab.quotes import quote\nsigma_merge = 4.64\nquote(sigma_merge, "4.6")\n'
    assert _problems("小峰在 $\\sigma\\approx4.6$ 之后消失。", code) == []
    problems = _problems("小峰在 $\\sigma\\approx4.7$ 之后消失。", code)
    assert any("'4.7'" in p for p in problems)
    assert any("ties a number the prose no longer states" in p for p in problems)


def test_quote_forms_match_the_prose_forms():
    code = ('quote(a, "45%")\nquote(b, "10×")\nquote(c, "1.27e30")\nquote(d, "<1e-10")\nquote(e, "1,600")\n'
            'quote(f, "-25")\n')
    prose = ("占 45%，约 10 倍，$2^{100}\\approx1.27\\times10^{30}$，小于 $10^{-10}$，1,600 个估计，"
             "只有峰值的 $e^{-25}$ 左右。")
    assert _problems(prose, code) == []


def test_a_quote_whose_text_is_not_a_literal_is_reported():
    problems = _problems("误差约 0.2。", 'text = "0.2"\nquote(err, text)\n')
    assert any("string literal" in p for p in problems)


def test_an_exercise_states_its_task_with_the_check_module_constants():
    # exercise 4.1's check module uses 1e-4 as a tolerance: a sheet may state it as a bound
    assert _problems("相对误差小于 $10^{-4}$。", name="exercises/4.1-test.md") == []
    # the same sentence in a chapter is a claim that needs a quote
    assert _problems("相对误差小于 $10^{-4}$。") != []


def test_the_allow_list_is_short_and_every_entry_has_a_reason():
    entries = [(nb, number, reason) for nb, numbers in ALLOWED.items() for number, reason in numbers.items()]
    assert len(entries) <= 2 * len(NOTEBOOKS)
    assert all(len(reason) > 20 for _, _, reason in entries)
