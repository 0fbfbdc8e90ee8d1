"""No appraisal lost or duplicated while the gateway, the broker and a kiosk are killed (-9).

Invariant: the set of appraisals the kiosks created (each kiosk's own appraisal log, written in
the same transaction as the outbox message) equals the set the gateway stored, each exactly once.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from gateway.settings import GatewaySettings
from tests.support.processes import GatewayProcess, start_simulation
from tests.support.services import Mosquitto, Postgres

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]


def _created(outbox_dir: Path) -> list[str]:
    ids: list[str] = []
    for db in sorted(outbox_dir.glob("k*.db")):
        with sqlite3.connect(db) as conn:
            ids += [r[0] for r in conn.execute("SELECT appraisal_id FROM appraisal_log")]
            assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0, (
                f"{db} not drained"
            )
    return ids


def _stored(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT appraisal_id FROM appraisal"))]
    finally:
        engine.dispose()


def _run_faults(tmp_path: Path, broker: Mosquitto, database_url: str | None) -> None:
    gateway = GatewayProcess(tmp_path / "gw", broker.url, database_url)
    gateway.start()
    outbox_dir = tmp_path / "kiosks"
    sim = start_simulation(broker.url, outbox_dir, kiosks=3, appraisals=40, rate=5)
    try:
        time.sleep(1.5)
        gateway.kill()  # mid-stream, possibly mid-commit
        time.sleep(1.0)
        gateway.start()
        time.sleep(1.0)
        broker.kill()  # loses what it acknowledged but had not saved
        time.sleep(1.0)
        broker.start()
        time.sleep(1.0)
        sim.kill()  # every kiosk dies mid-send
        sim.wait(10)
        # The kiosks come back with the same outboxes, make more appraisals and drain.
        sim = start_simulation(broker.url, outbox_dir, kiosks=3, appraisals=5, log_name="sim2.log")
        assert sim.wait(180) == 0, (outbox_dir / "sim2.log").read_text()[-3000:]
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait(10)
    try:
        created = _created(outbox_dir)
        url = GatewaySettings(
            data_dir=tmp_path / "gw", database_url=database_url
        ).resolved_database_url
        stored = _stored(url)
        assert len(created) >= 3 * 5 and len(set(created)) == len(created)
        assert sorted(stored) == sorted(created), "appraisals lost or stored twice"
        ops = gateway.create_key("ops", "ops")
        stats = httpx.get(
            gateway.url + "/v1/ops/stats", headers={"Authorization": f"Bearer {ops}"}
        ).json()
        assert stats["appraisals"] == len(created)
    finally:
        gateway.stop()


def test_faults_on_sqlite(tmp_path: Path, fresh_mosquitto: Mosquitto) -> None:
    _run_faults(tmp_path, fresh_mosquitto, None)


@pytest.mark.postgres
def test_faults_on_postgres(
    tmp_path: Path, fresh_mosquitto: Mosquitto, postgres_db: Postgres
) -> None:
    _run_faults(tmp_path, fresh_mosquitto, postgres_db.url)
