"""VIN validation and decoding (pure: no IO, no clock unless one is passed in).

A VIN read over OBD is evidence, not truth: it is checked here and, when implausible, flagged
with the reasons rather than trusted. The rules (ISO 3779 and 49 CFR 565):

- 17 characters from ``0-9A-Z`` without ``I``, ``O`` and ``Q``;
- position 9 is a check digit (weighted sum modulo 11, ``X`` for 10). North America (WMI starting
  ``1``-``5``) and China (``L``, GB 16735) require it, so a mismatch there makes the VIN invalid;
  elsewhere the position is free, so a mismatch is only noted;
- position 10 encodes the model year on a 30-year cycle. In North America position 7 resolves the
  cycle (a digit: 1980-2009, a letter: 2010-2039); elsewhere the latest year not after next year is
  taken (a model year may be sold up to a year ahead of the calendar).

Manufacturer, country and region come from ``vininfo``.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

__all__ = [
    "CheckDigitRule",
    "VinCheck",
    "check_digit",
    "check_vin",
    "model_year_candidates",
    "normalise_vin",
    "resolve_model_year",
]

VIN_LENGTH = 17
_VIN_ALPHABET = re.compile(r"^[0-9A-HJ-NPR-Z]*$")
_TRANSLITERATION: dict[str, int] = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
# Position 10 year codes, in cycle order starting at 1980 (and 2010, 2040 ...).
_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
_CYCLE = len(_YEAR_CODES)  # 30
_NORTH_AMERICA = frozenset("12345")
_CHECK_DIGIT_REQUIRED = _NORTH_AMERICA | {"L"}


class CheckDigitRule(StrEnum):
    """How position 9 is treated for a VIN's region."""

    REQUIRED = "required"  # North America, China: a mismatch invalidates the VIN
    NOT_USED = "not_used"  # elsewhere: position 9 is free, a mismatch is only informative


class VinCheck(BaseModel):
    """The outcome of checking one VIN: every conclusion and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vin: str = Field(description="The VIN as normalised (upper case, surrounding space removed)")
    valid: bool = Field(description="Length, alphabet and (where required) check digit all pass")
    problems: list[str] = Field(default_factory=list, description="Why the VIN is not valid")
    notes: list[str] = Field(
        default_factory=list, description="Observations that do not invalidate"
    )
    check_digit_rule: CheckDigitRule | None = None
    check_digit_expected: str | None = None
    check_digit_matches: bool | None = None
    wmi: str | None = None
    manufacturer: str | None = Field(None, description="From vininfo")
    country: str | None = Field(None, description="From vininfo")
    region: str | None = Field(None, description="From vininfo")
    model_year: int | None = Field(None, description="Resolved from positions 10 and 7")
    model_year_candidates: list[int] = Field(default_factory=list)


def normalise_vin(raw: str) -> str:
    """Upper-case and strip whitespace and NUL padding (never strip digits: python-obd's bug)."""
    return raw.replace("\x00", "").strip().upper()


def check_digit(vin: str) -> str | None:
    """The check digit position 9 should hold, or None when the VIN cannot be weighed."""
    if len(vin) != VIN_LENGTH or not _VIN_ALPHABET.match(vin):
        return None
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def model_year_candidates(code: str) -> list[int]:
    """Every model year (1980-2099) the position-10 code can stand for, oldest first."""
    index = _YEAR_CODES.find(code)
    if index < 0 or len(code) != 1:
        return []
    return [year for year in range(1980 + index, 2100, _CYCLE)]


def resolve_model_year(vin: str, *, today: date | None = None) -> int | None:
    """Resolve position 10 to one model year, or None when it is not a year code.

    North American VINs use position 7 to pick the cycle (digit: 1980-2009, letter: 2010-2039;
    49 CFR 565.15). Other VINs get the latest candidate not later than next year.
    """
    if len(vin) != VIN_LENGTH:
        return None
    candidates = model_year_candidates(vin[9])
    if not candidates:
        return None
    if vin[0] in _NORTH_AMERICA:
        window = (1980, 2009) if vin[6].isdigit() else (2010, 2039)
        in_window = [y for y in candidates if window[0] <= y <= window[1]]
        if in_window:
            return in_window[0]
    latest_allowed = (today or date.today()).year + 1
    plausible = [y for y in candidates if y <= latest_allowed]
    return plausible[-1] if plausible else None


def _vininfo_fields(vin: str) -> dict[str, str | None]:
    """Manufacturer/country/region from vininfo; it raises on data it does not know, so guard."""
    try:
        from vininfo import Vin

        info = Vin(vin)
        return {
            "manufacturer": _clean(info.manufacturer),
            "country": _clean(info.country),
            "region": _clean(info.region),
        }
    except Exception as exc:  # vininfo raises bare ValidationError/KeyError variants
        logger.debug("vininfo could not decode %s: %s", vin, exc)
        return {"manufacturer": None, "country": None, "region": None}


def _clean(value: object) -> str | None:
    text = str(value) if value is not None else ""
    return text if text and text.lower() not in {"unknown", "none"} else None


def check_vin(raw: str, *, today: date | None = None) -> VinCheck:
    """Check a VIN and decode what it tells: the answer says why it is (not) valid."""
    vin = normalise_vin(raw)
    problems: list[str] = []
    notes: list[str] = []
    if len(vin) != VIN_LENGTH:
        problems.append(f"length is {len(vin)}, a VIN has {VIN_LENGTH} characters")
    bad = sorted({c for c in vin if not _VIN_ALPHABET.match(c)})
    if bad:
        problems.append(
            "contains characters a VIN never uses: "
            + ", ".join(repr(c) for c in bad)
            + " (I, O and Q are excluded to avoid confusion with 1 and 0)"
        )
    if problems:
        return VinCheck(vin=vin, valid=False, problems=problems)

    expected = check_digit(vin)
    matches = expected == vin[8]
    rule = CheckDigitRule.REQUIRED if vin[0] in _CHECK_DIGIT_REQUIRED else CheckDigitRule.NOT_USED
    if not matches:
        if rule is CheckDigitRule.REQUIRED:
            problems.append(
                f"check digit (position 9) is {vin[8]!r} but the other characters give"
                f" {expected!r}: mistyped or altered VIN"
            )
        else:
            notes.append("position 9 is not a check digit in this region (not verified)")

    year = resolve_model_year(vin, today=today)
    if year is None:
        notes.append(f"position 10 {vin[9]!r} is not a model-year code")
    decoded = _vininfo_fields(vin)
    return VinCheck(
        vin=vin,
        valid=not problems,
        problems=problems,
        notes=notes,
        check_digit_rule=rule,
        check_digit_expected=expected,
        check_digit_matches=matches,
        wmi=vin[:3],
        model_year=year,
        model_year_candidates=model_year_candidates(vin[9]),
        **decoded,
    )
