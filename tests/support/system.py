"""The whole system in one process for end-to-end tests: gateway, simulator, kiosk."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from edge.app import KioskAgent
from firmware_config import KioskConfig
from gateway.runtime import GatewayRuntime
from gateway.settings import GatewaySettings

KIOSK = "e2e-kiosk-1"


@dataclass
class System:
    gateway: GatewayRuntime
    http: httpx.Client
    keys: dict[str, str] = field(default_factory=dict)
    lender_keys: dict[str, str] = field(default_factory=dict)

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@contextlib.contextmanager
def gateway_system(
    tmp_path: Path, *, mqtt_url: str | None = None, database_url: str | None = None
) -> Iterator[System]:
    from gateway.matching import load_programs, sample_programs_dir
    from gateway.services.keys import Role, create_key
    from gateway.services.programs import store_program

    settings = GatewaySettings(
        data_dir=tmp_path / "gw",
        mqtt_url=mqtt_url,
        database_url=database_url,
        http_port=0,
        worker_id=f"e2e{time.monotonic_ns() % 10**9}",
    )
    with GatewayRuntime(settings) as gateway:
        assert gateway.context is not None
        system = System(gateway, httpx.Client(base_url=gateway.http_url, timeout=10))
        with Session(gateway.context.engine) as session:
            for program in load_programs(sample_programs_dir()):
                store_program(session, program, lender_org=program.lender)
                if program.lender not in system.lender_keys:
                    token, _ = create_key(session, role=Role.LENDER, org=program.lender)
                    system.lender_keys[program.lender] = token
            system.keys["dealer"] = create_key(session, role=Role.DEALER, org="E2E Motors")[0]
            system.keys["ops"] = create_key(session, role=Role.OPS, org="ops")[0]
        try:
            yield system
        finally:
            system.http.close()


def kiosk_config(mqtt_url: str, port: str, tmp_path: Path, **extra: Any) -> KioskConfig:
    return KioskConfig.model_validate(
        {
            "kiosk_id": KIOSK,
            "mqtt": {"url": mqtt_url},
            "obd": {"transport": {"type": "serial", "port": port}, "timeout_s": 30},
            "outbox": {"path": str(tmp_path / "kiosk" / "outbox.db"), "resend_after_s": 2},
            **extra,
        }
    )


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_appraisal(system: System, agent: KioskAgent, loan: dict[str, Any]) -> dict[str, Any]:
    dealer = system.auth(system.keys["dealer"])
    wait_for(lambda: system.http.get("/v1/health").status_code == 200, 20, "gateway health")
    response = system.http.post(
        "/v1/dealer/appraisals",
        headers=dealer,
        json={
            "kiosk_id": agent.config.kiosk_id,
            "vehicle": {"model": "Malibu", "trim": "LS Sedan 4D", "body": "Sedan 4D"},
            "loan_request": loan,
        },
    )
    assert response.status_code == 201, response.text
    appraisal_id = response.json()["appraisal_id"]

    def matched() -> dict[str, Any] | None:
        view: dict[str, Any] = system.http.get(
            f"/v1/dealer/appraisals/{appraisal_id}", headers=dealer
        ).json()
        return view if view["loan_requests"][0]["matched_at"] else None

    view: dict[str, Any] = wait_for(matched, 60, "the appraisal to be matched")
    return view
