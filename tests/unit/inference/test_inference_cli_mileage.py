"""Mileage in the predict CSV: plain decimal numbers only. ``float()`` also took ``1_000`` (Python
digit grouping) and ``٣٠٠٠`` (Arabic-Indic digits) as 1,000 and 3,000 miles."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.inference.cli import CsvInputError, iter_rows, read_rows

HEADER = "Mileage,Make,Model,Trim,Cruise,Sound,Leather\n"


def _rows(tmp_path: Path, *mileages: str) -> Path:
    path = tmp_path / "in.csv"
    body = "".join(f'"{m}",Buick,Century,Sedan 4D,1,1,0\n' for m in mileages)
    path.write_text(HEADER + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "miles"),
    [("8221", 8221.0), ("8221.5", 8221.5), ("0", 0.0), (" 8221 ", 8221.0), ("007", 7.0)],
)
def test_plain_decimal_mileage_is_read(tmp_path: Path, text: str, miles: float) -> None:
    [(line, row)] = read_rows(_rows(tmp_path, text))
    assert (line, row.miles) == (2, miles)


@pytest.mark.parametrize(
    "text",
    [
        "1_000",
        "٣٠٠٠",  # Arabic-Indic digits
        "۳۰۰۰",  # Extended Arabic-Indic (Persian) digits
        "３０００",  # full-width digits
        "1e3",
        "1E+05",
        "0x10",
        "8,221",
        "+8221",
        ".5",
        "5.",
        "nan",
        "inf",
        "infinity",
        "",
        "1 000",
        "8221\u00a0",
    ],
)
def test_anything_but_plain_decimal_digits_is_refused_naming_row_and_column(
    tmp_path: Path, text: str
) -> None:
    path = _rows(tmp_path, text)
    with pytest.raises(CsvInputError) as info:
        read_rows(path)
    error = info.value
    assert (error.file, error.line, error.column) == (str(path), 2, "Mileage")
    assert repr(text) in error.message and "decimal" in error.message


def test_non_ascii_digits_are_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(CsvInputError, match="only the digits 0-9"):
        read_rows(_rows(tmp_path, "٣٠٠٠"))


def test_a_bad_mileage_spoils_its_row_only(tmp_path: Path) -> None:
    parsed = list(iter_rows(_rows(tmp_path, "1_000", "9000")))
    [(bad_line, bad), (good_line, good)] = parsed
    assert bad_line == 2 and isinstance(bad, CsvInputError) and bad.column == "Mileage"
    assert good_line == 3 and not isinstance(good, CsvInputError) and good.miles == 9000.0


def test_a_negative_mileage_is_still_named_as_negative(tmp_path: Path) -> None:
    with pytest.raises(CsvInputError, match="not a non-negative"):
        read_rows(_rows(tmp_path, "-5"))
