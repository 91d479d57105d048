"""scorelab.quotes: a quoted number matches the computed value at the precision it is written."""

import math

import pytest
import torch

from scorelab.quotes import QuoteMismatch, quote, render


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
