"""``valuation predict`` end to end through the real runtime."""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
from pathlib import Path

import pytest

from edge.inference.cli import CHUNK_ROWS, OUT_COLUMNS, register
from models import MODELS_DIR

DATA = MODELS_DIR / "training" / "data" / "kbb_gm_2005_train.csv"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="kioskmatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def test_predict_writes_one_row_per_input_row_in_order(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    with DATA.open() as fh:
        rows = list(csv.DictReader(fh))[:20]
    rows.insert(5, {**rows[0], "Make": "Ford", "Model": "Focus", "Trim": "SE"})
    for r in rows:
        r.pop("Price")  # Price may be absent
    with src.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "out.csv"
    assert _run("valuation", "predict", "--csv", str(src), "--out", str(out)) == 0
    with out.open() as fh:
        got = list(csv.DictReader(fh))
    assert tuple(got[0]) == OUT_COLUMNS
    assert [g["line"] for g in got] == [str(i) for i in range(2, 23)]
    assert got[5]["status"] == "manual_appraisal_required" and got[5]["value"] == ""
    assert "Ford" in got[5]["reason"]
    ok = [g for i, g in enumerate(got) if i != 5]
    assert all(g["status"] == "valued" and g["currency"] == "USD" for g in ok)
    assert all(float(g["low"]) < float(g["value"]) < float(g["high"]) for g in ok)
    assert all(g["model_version"].startswith("valuation-") for g in got)


def test_predict_bad_rows_are_reported_in_place_and_the_good_ones_valued(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "bad.csv"
    src.write_bytes(
        b"Mileage,Make,Model,Trim,Cruise,Sound,Leather\n"
        b"100,Buick,Century,Sedan 4D,1,0,0\n"
        b"lots,Buick,Century,Sedan 4D,1,0,0\n"
        b"100,Buick,Century\n"
        b"100,Bu\xffick,Century,Sedan 4D,1,0,0\n"
        b"200,Buick,Century,Sedan 4D,1,0,maybe\n"
        b"30000,Buick,Century,Sedan 4D,1,0,0\n"
    )
    out = tmp_path / "o.csv"
    with caplog.at_level(logging.WARNING):
        code = _run("valuation", "predict", "--csv", str(src), "--out", str(out))
    assert code == 0
    with out.open() as fh:
        got = {g["line"]: g for g in csv.DictReader(fh)}
    assert list(got) == ["2", "3", "4", "5", "6", "7"]
    assert got["2"]["status"] == got["7"]["status"] == "valued"
    assert float(got["2"]["value"]) > float(got["7"]["value"]) > 0
    for line, column in (("3", "Mileage"), ("4", "Trim"), ("5", "Make"), ("6", "Leather")):
        assert got[line]["status"] == "invalid_input", got[line]
        assert got[line]["value"] == ""
        assert got[line]["reason"].startswith(f"column {column}: ")
    assert "4 of 6 rows could not be read" in caplog.text
    assert f"{src}:3: column Mileage" in caplog.text


def test_predict_file_without_a_required_column_exits_2_and_writes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("Make,Model,Trim,Cruise,Sound,Leather\nBuick,Century,Sedan 4D,1,0,0\n")
    with caplog.at_level(logging.ERROR):
        code = _run("valuation", "predict", "--csv", str(src), "--out", str(tmp_path / "o.csv"))
    assert code == 2
    assert f"{src}:1: column Mileage: missing column" in caplog.text
    assert not (tmp_path / "o.csv").exists()


def test_predict_implausible_mileage_is_manual_not_a_crash(tmp_path: Path) -> None:
    # 10 million miles made the model's price collapse to 0 and the range a division by zero,
    # which took the whole file down; 2 million gave a value of 4 cents up to infinity.
    src = tmp_path / "in.csv"
    src.write_text(
        "Mileage,Make,Model,Trim,Cruise,Sound,Leather\n"
        # Plain decimal digits: the CSV refuses exponents ("1e+39") as not a plain number.
        + "".join(f"{m:.0f},Buick,Century,Sedan 4D,1,0,0\n" for m in (1e39, 1e7, 1.8e6, 100))
    )
    out = tmp_path / "o.csv"
    assert _run("valuation", "predict", "--csv", str(src), "--out", str(out)) == 0
    with out.open() as fh:
        got = list(csv.DictReader(fh))
    assert [g["status"] for g in got] == ["manual_appraisal_required"] * 3 + ["valued"]
    assert "not plausible" in got[0]["reason"] and "not plausible" in got[1]["reason"]
    assert "too far beyond" in got[2]["reason"]
    assert all(g["value"] == "" and g["high"] == "" for g in got[:3])


def test_predict_long_file_in_chunks_keeps_order(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    with DATA.open() as fh:
        rows = list(csv.DictReader(fh))
    with src.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows * 8)  # more rows than one chunk
    out = tmp_path / "o.csv"
    assert _run("valuation", "predict", "--csv", str(src), "--out", str(out), "--json") == 0
    with out.open() as fh:
        got = list(csv.DictReader(fh))
    assert len(got) == len(rows) * 8 > CHUNK_ROWS
    assert [g["line"] for g in got] == [str(i) for i in range(2, len(got) + 2)]
    n = len(rows)
    assert got[5]["value"] == got[5 + n]["value"] == got[5 + 7 * n]["value"]


def test_predict_with_broken_models_exits_1(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR / "valuation", models / "valuation")
    # residual/ missing
    code = _run(
        "valuation",
        "predict",
        "--csv",
        str(DATA),
        "--out",
        str(tmp_path / "o.csv"),
        "--models-dir",
        str(models),
    )
    assert code == 1
