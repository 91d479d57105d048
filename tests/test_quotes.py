"""scorelab.quotes: a quoted number matches the computed value at the precision it is written."""

import math

import pytest
import torch

from scorelab.quotes import QuoteMismatch, number_of, quote, render


@pytest.mark.parametrize("value,text", [
    (4.6349, "4.6"), (0.198, "0.20"), (12.4, "12"), (-0.0004, "0.000"), (3.14e-4, "3.1e-4"),
    (0.002, "2e-3"), (0.4512, "45%"), (0.0451, "4.5%"), (9.96, "10×"), (1797.0, "1,797"),
    (0.031, "+0.03"), (-1.25, "-1.2"), (torch.tensor(2.345), "2.35"), (1500.0, "1.5e+3"),
])
def test_quote_accepts_the_value_as_written(value, text):
    assert quote(value, text) == text


@pytest.mark.parametrize("value,text", [
    (4.64, "3.2"), (0.194, "0.20"), (0.456, "45%"), (3.16e-4, "3.1e-4"), (9.4, "10×"), (float("nan"), "1.0"),
])
def test_quote_rejects_a_number_off_in_its_last_digit(value, text):
    with pytest.raises(QuoteMismatch, match="the prose quotes"):
        quote(value, text)


def test_mismatch_message_names_both_numbers():
    with pytest.raises(QuoteMismatch) as info:
        quote(4.63, "3.2")
    assert "3.2" in str(info.value) and "4.6" in str(info.value)


def test_render_rounds_like_python_format():
    # ties round to even in the binary value, exactly as the notebook's print would show
    assert render(2.675, "0.00") == f"{2.675:.2f}"
    assert render(math.pi, "3.14159") == "3.14159"


@pytest.mark.parametrize("text", ["abc", "3.2.1", "", "1/2"])
def test_unreadable_text_is_a_clear_error(text):
    with pytest.raises(ValueError, match="expected a number such as"):
        quote(1.0, text)


def test_non_number_value_is_a_clear_error():
    with pytest.raises(TypeError, match="value: expected a number"):
        quote(object(), "3.2")


def test_fast_mode_checks_only_the_text(monkeypatch):
    monkeypatch.setenv("SCORELAB_FAST", "1")
    assert quote(4.63, "3.2") == "3.2"
    with pytest.raises(ValueError, match="expected a number such as"):
        quote(4.63, "three")
    monkeypatch.setenv("SCORELAB_FAST", "0")
    with pytest.raises(QuoteMismatch):
        quote(4.63, "3.2")


@pytest.mark.parametrize("value,text", [
    (3.1e-19, "<1e-10"), (0.029, "≤3%"), (0.03, "<=3%"), (1.6, ">1.5×"), (1.5, ">=1.5x"), (0.995, "≥0.99"),
    (-26.0, "<-25"),
])
def test_quote_accepts_a_value_on_the_stated_side_of_a_bound(value, text):
    assert quote(value, text) == text


@pytest.mark.parametrize("value,text", [
    (2e-10, "<1e-10"), (0.0301, "≤3%"), (1.5, ">1.5×"), (0.98, "≥0.99"), (float("nan"), "<1"),
])
def test_quote_rejects_a_value_past_a_bound(value, text):
    with pytest.raises(QuoteMismatch, match="which is not"):
        quote(value, text)


def test_a_bound_needs_a_readable_number():
    with pytest.raises(ValueError, match="expected a number such as"):
        quote(1.0, "<about two")


def test_number_of_reads_the_forms_quote_accepts():
    assert number_of("45%") == pytest.approx(0.45) and number_of("1,797") == 1797.0
    assert number_of("-3.1e-4") == pytest.approx(-3.1e-4) and number_of("10×") == 10.0


def test_a_seed_that_moves_a_value_past_its_last_digit_fails(monkeypatch):
    """What executing a notebook catches: the prose quotes a Monte-Carlo mean computed with one seed."""
    monkeypatch.delenv("SCORELAB_FAST", raising=False)

    def mean(seed):  # standard error 0.01: the third decimal moves with the seed
        return float(torch.randn(10_000, generator=torch.Generator().manual_seed(seed)).mean())

    text = render(mean(0), "0.000")
    assert quote(mean(0), text) == text
    with pytest.raises(QuoteMismatch):
        quote(mean(1), text)
