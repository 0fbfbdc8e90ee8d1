"""Parsing the predict CSV: every bad input names file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.inference.cli import CsvInputError, read_rows

HEADER = "Price,Mileage,Make,Model,Trim,Type,Cylinder,Liter,Doors,Cruise,Sound,Leather\n"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "in.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_reads_rows_with_line_numbers_and_optional_price(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "Mileage,Make,Model,Trim,Cruise,Sound,Leather\n8221,Buick,Century,Sedan 4D,1,0,true\n",
    )
    [(line, row)] = read_rows(p)
    assert line == 2
    assert (row.make, row.miles, row.cruise, row.sound, row.leather) == (
        "Buick",
        8221.0,
        True,
        False,
        True,
    )


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("Make,Model,Trim,Cruise,Sound,Leather\n", ":1: column Mileage: missing column"),
        (
            HEADER + "1,x,Buick,Century,Sedan 4D,Sedan,6,3.1,4,1,1,0\n",
            ":2: column Mileage: 'x' is not a number",
        ),
        (
            HEADER + "1,-5,Buick,Century,Sedan 4D,Sedan,6,3.1,4,1,1,0\n",
            ":2: column Mileage: '-5' is not a non-negative",
        ),
        (
            HEADER + "1,10,Buick,Century,Sedan 4D,Sedan,6,3.1,4,1,2,0\n",
            ":2: column Sound: '2' is not 0 or 1",
        ),
        (HEADER + "1,10,,Century,Sedan 4D,Sedan,6,3.1,4,1,1,0\n", ":2: column Make: empty"),
        (
            HEADER + "1,10,Buick,Century,Sedan 4D,Sedan,6,3.1,4,1,1,0\n1,10,Buick\n",
            ":3: column Model: missing value",
        ),
        ("", ":1: the file is empty"),
    ],
)
def test_bad_input_names_file_line_column(tmp_path: Path, body: str, where: str) -> None:
    p = _write(tmp_path, body)
    with pytest.raises(CsvInputError) as err:
        read_rows(p)
    assert str(err.value).startswith(str(p))
    assert where in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CsvInputError, match="cannot read"):
        read_rows(tmp_path / "nope.csv")
