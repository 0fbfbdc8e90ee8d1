"""``valuation predict`` end to end through the real runtime."""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
from pathlib import Path

import pytest

from edge.inference.cli import OUT_COLUMNS, register
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


def test_predict_bad_input_exits_2_naming_the_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(
        "Mileage,Make,Model,Trim,Cruise,Sound,Leather\n"
        "100,Buick,Century,Sedan 4D,1,0,0\n"
        "lots,Buick,Century,Sedan 4D,1,0,0\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.ERROR):
        code = _run("valuation", "predict", "--csv", str(src), "--out", str(tmp_path / "o.csv"))
    assert code == 2
    assert f"{src}:3: column Mileage" in caplog.text
    assert not (tmp_path / "o.csv").exists()


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
