"""VIN validation: known VINs, the check digit, model-year resolution, and properties."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.obd.vin import (
    CheckDigitRule,
    check_digit,
    check_vin,
    model_year_candidates,
    normalise_vin,
    resolve_model_year,
)

ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
TRANSLIT = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
TODAY = date(2026, 6, 1)


@pytest.mark.parametrize(
    ("vin", "make", "year"),
    [
        ("1G1ZB5ST0KF123456", "Chevrolet", 2019),  # the demo's 2019 Malibu LS
        ("1HGCM82633A004352", "Honda", 2003),  # the classic example VIN
        ("2T1BURHE5KC123450", "Toyota", 2019),  # starts with 2, ends with 0
        ("1G1ZC5E0XCF123450", "Chevrolet", 2012),  # check digit X
    ],
)
def test_known_north_american_vins_are_valid_and_decoded(vin: str, make: str, year: int) -> None:
    result = check_vin(vin, today=TODAY)
    assert result.valid, result.problems
    assert result.check_digit_rule is CheckDigitRule.REQUIRED
    assert result.manufacturer == make
    assert result.model_year == year
    assert result.region == "North America"


def test_wrong_check_digit_in_north_america_is_invalid_with_reason() -> None:
    result = check_vin("1G1ZB5ST1KF123456", today=TODAY)
    assert not result.valid
    assert result.check_digit_expected == "0"
    assert "check digit" in result.problems[0]
    assert "'1'" in result.problems[0]


def test_european_vin_check_digit_not_required() -> None:
    # European makers often fill position 9 with 'Z': no check digit at all.
    result = check_vin("WVWZZZAUZHW012340", today=TODAY)
    assert result.valid
    assert result.check_digit_rule is CheckDigitRule.NOT_USED
    assert result.check_digit_matches is False
    assert result.notes  # the mismatch is noted, not held against it
    assert result.manufacturer == "Volkswagen"
    assert result.model_year == 2017


def test_chinese_vin_requires_check_digit() -> None:
    body = "LSVAU2180N2183294"
    expected = check_digit(body)
    wrong = "1" if expected != "1" else "2"
    assert not check_vin(body[:8] + wrong + body[9:], today=TODAY).valid


@pytest.mark.parametrize(
    ("vin", "fragment"),
    [
        ("1G1ZB5ST0KF12345", "length is 16"),
        ("1G1ZB5ST0KF1234567", "length is 18"),
        ("1G1ZB5STOKF123456", "'O'"),
        ("1G1ZB5ST0KF12345I", "'I'"),
        ("QG1ZB5ST0KF123456", "'Q'"),
        ("", "length is 0"),
    ],
)
def test_malformed_vins_are_invalid_with_reason(vin: str, fragment: str) -> None:
    result = check_vin(vin, today=TODAY)
    assert not result.valid
    assert any(fragment in p for p in result.problems)


def test_normalise_never_strips_digits_at_the_ends() -> None:
    # python-obd 0.7.3 strips 0/1/2 from both ends; we only strip padding and whitespace.
    assert normalise_vin("\x00\x001g1zb5st7kf100000 ") == "1G1ZB5ST7KF100000"


def test_model_year_north_american_seventh_character_rule() -> None:
    # 'A' in position 10 is 1980 or 2010: a digit at position 7 means 1980-2009.
    assert resolve_model_year("1G1ZB5100AF123456") == 1980
    assert resolve_model_year("1G1ZB5S00AF123456") == 2010


def test_model_year_elsewhere_latest_not_in_future() -> None:
    assert resolve_model_year("WVWZZZAU0HW012340", today=date(2026, 1, 1)) == 2017
    # 'T' = 1996 or 2026: in 2026 the 2026 model year is possible.
    assert resolve_model_year("WVWZZZAU0TW012340", today=date(2026, 1, 1)) == 2026
    assert resolve_model_year("WVWZZZAU0TW012340", today=date(2024, 1, 1)) == 1996


def test_model_year_code_not_a_year() -> None:
    assert model_year_candidates("U") == []
    assert model_year_candidates("0") == []
    assert resolve_model_year("WVWZZZAU0UW012340", today=TODAY) is None


vin_bodies = st.text(alphabet=ALPHABET, min_size=17, max_size=17)


def _with_check_digit(body: str, first: str) -> str:
    vin = first + body[1:8] + "0" + body[9:]
    return vin[:8] + (check_digit(vin) or "") + vin[9:]


@given(body=vin_bodies, first=st.sampled_from("12345L"))
def test_property_vin_with_computed_check_digit_is_valid(body: str, first: str) -> None:
    vin = _with_check_digit(body, first)
    result = check_vin(vin, today=TODAY)
    assert result.valid, result.problems
    assert result.check_digit_matches


@given(
    body=vin_bodies,
    position=st.integers(0, 16).filter(lambda p: p not in (0, 8)),
    replacement=st.sampled_from(ALPHABET),
)
def test_property_single_substitution_is_caught_in_north_america(
    body: str, position: int, replacement: str
) -> None:
    vin = _with_check_digit(body, "1")
    original = vin[position]
    altered = vin[:position] + replacement + vin[position + 1 :]
    result = check_vin(altered, today=TODAY)
    if TRANSLIT[replacement] == TRANSLIT[original]:
        assert result.valid  # same weight value: no check digit can tell
    else:
        assert not result.valid


@given(body=vin_bodies)
def test_property_model_year_is_a_candidate(body: str) -> None:
    year = resolve_model_year(body, today=TODAY)
    if year is not None:
        assert year in model_year_candidates(body[9])
        assert year <= TODAY.year + 1 or body[0] in "12345"
        if body[0] in "12345":
            assert (1980 <= year <= 2009) == body[6].isdigit()


@given(st.text(max_size=30))
def test_property_check_vin_never_raises(text: str) -> None:
    result = check_vin(text, today=TODAY)
    assert result.valid == (not result.problems)
