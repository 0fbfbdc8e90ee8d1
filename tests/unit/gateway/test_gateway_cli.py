"""``kioskmatch gateway ...``: a bad or unreachable database is a clear error, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from kioskmatch.cli import main
from tests.support.processes import _env, kioskmatch
from tests.support.services import free_port


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("KIOSKMATCH_DATA_DIR", str(tmp_path / "var"))


def _create_key(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["gateway", "create-key", "--role", "ops", "--org", "ops"])
    out, err = capsys.readouterr()
    return status, out, err


def test_create_key_prints_the_key_last(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = _create_key(capsys)
    assert status == 0 and out.strip().splitlines()[-1].startswith("km_")


def test_assign_kiosk_gives_a_kiosk_to_one_dealer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateway", "assign-kiosk", "--kiosk", "dlr-042-k1", "--dealer", "Dealer A"]) == 0
    assert capsys.readouterr().out.strip() == "kiosk dlr-042-k1 now serves only 'Dealer A'"
    assert main(["gateway", "assign-kiosk", "--kiosk", "dlr-042-k1", "--any-dealer"]) == 0
    assert capsys.readouterr().out.strip() == "kiosk dlr-042-k1 now serves any dealer"
    assert main(["gateway", "assign-kiosk", "--kiosk", "not a kiosk", "--dealer", "A"]) == 2
    assert "'not a kiosk' is not a kiosk id" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one of --dealer or --any-dealer
        main(["gateway", "assign-kiosk", "--kiosk", "dlr-042-k1"])


@pytest.mark.parametrize(
    "url",
    ["mysql://user@host/db", "not a url", "postgresql://host:port/db", "postgresql+asyncpg://h/d"],
)
def test_an_unsupported_database_url_is_named(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KIOSKMATCH_DATABASE_URL", url)
    status, _out, err = _create_key(capsys)
    assert status == 2
    assert err.startswith("error: KIOSKMATCH_DATABASE_URL: ") and "postgresql://" in err


def test_an_unreachable_database_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://kiosk:s3cret@127.0.0.1:{free_port()}/kioskmatch"  # nothing listens
    monkeypatch.setenv("KIOSKMATCH_DATABASE_URL", url)
    status, _out, err = _create_key(capsys)
    assert status == 2
    assert "error: cannot reach the database at postgresql+psycopg://kiosk:***@127.0.0.1" in err
    assert "s3cret" not in err


def test_serve_with_an_unreachable_database_exits_2(tmp_path: Path) -> None:
    env = _env(
        KIOSKMATCH_DATA_DIR=str(tmp_path / "var"),
        KIOSKMATCH_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",
        KIOSKMATCH_DATABASE_URL=f"postgresql://kiosk@127.0.0.1:{free_port()}/kioskmatch",
        KIOSKMATCH_HTTP_PORT="0",
    )
    result = kioskmatch("gateway", "serve", env=env, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot reach the database" in result.stderr and "Traceback" not in result.stderr
