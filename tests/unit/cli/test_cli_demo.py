"""``kioskmatch demo``: a second demo beside a running one leaves the first one's files alone."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kioskmatch import demo


def test_a_second_demo_gets_its_own_folder_and_wipes_nothing_of_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "var" / "demo"
    first, held = demo.claim_data_dir(base)  # a demo serving until Ctrl-C
    assert first == base
    first.mkdir()
    (first / "kioskmatch.db").write_text("the running demo's database")
    ran_in: list[Path] = []

    def fake_run(args: argparse.Namespace, console: object, data_dir: Path) -> int:
        ran_in.append(data_dir)
        return 0

    monkeypatch.setattr(demo, "_run", fake_run)
    args = argparse.Namespace(data_dir=base, once=True, timeout=1.0)
    try:
        assert demo.run(args) == 0
        assert ran_in == [tmp_path / "var" / "demo-2"]
        assert (first / "kioskmatch.db").read_text() == "the running demo's database"
    finally:
        held.close()
    # Once the first demo has stopped, the next one starts from nothing in the usual folder.
    assert demo.run(args) == 0
    assert ran_in[-1] == base and not base.exists()
