"""The whole path, real at every hop: ELM327 simulator on a pty → python-obd → TFLite valuation →
outbox → paho → broker → ingest worker → database → matching → lender pull over HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.adapters import build_agent
from edge.obd import start_simulator
from edge.protocol import Channel, MqttEndpoint, topic_for
from tests.support.services import Mosquitto, Postgres
from tests.support.system import gateway_system, kiosk_config, run_appraisal, wait_for

pytestmark = pytest.mark.slow

LOAN = {
    "loan_kind": "purchase",
    "amount_minor": 1_250_000,
    "down_payment_minor": 250_000,
    "term_months": 48,
    "monthly_income_minor": 550_000,
    "credit_score": 722,
    "consent": True,
}


def _whole_path(tmp_path: Path, mqtt_url: str | None, database_url: str | None = None) -> None:
    with gateway_system(tmp_path, mqtt_url=mqtt_url, database_url=database_url) as system:
        broker_url = system.gateway.mqtt_url
        assert broker_url is not None
        with start_simulator("malibu_2019", latency_s=0) as sim:
            agent = build_agent(kiosk_config(broker_url, sim.port, tmp_path))
            agent.start()
            try:
                view = run_appraisal(system, agent, LOAN)
                assert agent.wait_until_drained(30), "the kiosk never got its receipts"
            finally:
                agent.stop()

        report = view["report"]
        vehicle = report["vehicle"]
        # The VIN starts with 1: python-obd alone would have damaged it.
        assert vehicle["vin"].startswith("1G1") and len(vehicle["vin"]) == 17
        assert vehicle["vin_valid"] is True and vehicle["make"] == "Chevrolet"
        assert vehicle["model_year"] == 2019 and vehicle["odometer_source"] == "obd"
        valuation = report["valuation"]
        assert valuation["status"] == "valued"
        assert valuation["low_minor"] < valuation["value_minor"] < valuation["high_minor"]
        assert [f["code"] for f in valuation["factors"]][:3] == [
            "catalogue_base",
            "ageing",
            "price_level",
        ]
        assert len(valuation["residual_curve"]) == 85

        offers = view["offers"]
        in_force = {o["lender"] for o in offers}
        assert len(offers) >= 3 and in_force <= set(system.lender_keys)
        for offer in offers:
            assert offer["eligible"] or offer["result"]["reasons"], "a refusal must say why"

        # Each lender pulls its own matches, and only those.
        for lender, key in system.lender_keys.items():
            page = system.http.get("/v1/lender/matches", headers=system.auth(key)).json()
            assert all(m["lender"] == lender for m in page["items"])
            assert len(page["items"]) == sum(o["lender"] == lender for o in offers)

        stats = system.http.get("/v1/ops/stats", headers=system.auth(system.keys["ops"])).json()
        assert stats["appraisals"] == 1 and stats["dead_letters"] == 0


def test_whole_path_on_the_embedded_broker(tmp_path: Path) -> None:
    _whole_path(tmp_path, mqtt_url=None)


@pytest.mark.mosquitto
def test_whole_path_on_mosquitto(tmp_path: Path, mosquitto_broker: Mosquitto) -> None:
    _whole_path(tmp_path, mqtt_url=mosquitto_broker.url)


@pytest.mark.mosquitto
@pytest.mark.postgres
def test_whole_path_on_postgres(
    tmp_path: Path, mosquitto_broker: Mosquitto, postgres_db: Postgres
) -> None:
    _whole_path(tmp_path, mqtt_url=mosquitto_broker.url, database_url=postgres_db.url)


@pytest.mark.mosquitto
def test_malformed_payload_is_a_dead_letter_and_the_worker_keeps_going(
    tmp_path: Path, mosquitto_broker: Mosquitto
) -> None:
    with gateway_system(tmp_path, mqtt_url=mosquitto_broker.url) as system:
        endpoint = MqttEndpoint.parse(mosquitto_broker.url)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-garbage")
        client.connect(endpoint.host, endpoint.port)
        client.loop_start()
        try:
            for payload in (b"{broken", b'{"schema": "kioskmatch.appraisal/7"}', b"\x00\xff"):
                client.publish(
                    topic_for("e2e-kiosk-9", Channel.APPRAISALS), payload, qos=1
                ).wait_for_publish(5)
        finally:
            client.loop_stop()
            client.disconnect()
        ops = system.auth(system.keys["ops"])
        wait_for(
            lambda: system.http.get("/v1/ops/stats", headers=ops).json()["dead_letters"] == 3,
            20,
            "three dead letters",
        )
        # ... and the worker still ingests good messages.
        with start_simulator("malibu_2019", latency_s=0) as sim:
            agent = build_agent(kiosk_config(mosquitto_broker.url, sim.port, tmp_path))
            agent.start()
            try:
                agent.appraise(hints={"model": "Malibu", "trim": "LS Sedan 4D"})
                assert agent.wait_until_drained(30)
            finally:
                agent.stop()
        stats = system.http.get("/v1/ops/stats", headers=ops).json()
        assert stats["appraisals"] == 1 and stats["dead_letters"] == 3


def test_whole_path_with_photos_uploaded_and_offers(tmp_path: Path) -> None:
    """With a camera: masked photos reach the gateway, and lenders that require them offer."""
    import cv2

    from edge.camera import ALL_VIEWS
    from edge.camera.synthetic import car_scene
    from gateway.services.keys import Role, create_key

    photos = tmp_path / "camera"
    photos.mkdir()
    for i, camera_view in enumerate(ALL_VIEWS):
        cv2.imwrite(str(photos / f"{camera_view.value}.jpg"), car_scene(seed=40 + i))
    with gateway_system(tmp_path, mqtt_url=None) as system:
        assert system.gateway.context is not None and system.gateway.mqtt_url is not None
        with system.gateway.context.session() as s:
            kiosk_key, _ = create_key(s, role=Role.KIOSK, org="e2e-kiosk-1")
        with start_simulator("malibu_2019", latency_s=0) as sim:
            config = kiosk_config(
                system.gateway.mqtt_url,
                sim.port,
                tmp_path,
                camera={"source": {"type": "folder", "path": str(photos)}},
                gateway={"url": system.gateway.http_url, "api_key": kiosk_key},
            )
            agent = build_agent(config)
            agent.start()
            try:
                view = run_appraisal(system, agent, LOAN)
                assert agent.wait_until_drained(30)
                wait_for(lambda: agent.outbox.upload_depth() == 0, 30, "the photo uploads")
            finally:
                agent.stop()
        records = view["report"]["photos"]
        assert {r["view"] for r in records} == {v.value for v in ALL_VIEWS}
        assert all(r["passed"] for r in records)
        plates = [(r["view"], m) for r in records for m in r["masked"] if m["kind"] == "plate"]
        assert plates, "plates must be masked before photos leave the kiosk"
        assert {v for v, _ in plates} <= {
            "front",
            "rear",
            "left",
            "right",
        }  # VIN plate stays legible
        dealer = system.auth(system.keys["dealer"])
        for record in records:
            photo = system.http.get(f"/v1/photos/{record['sha256']}", headers=dealer)
            assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
            assert hashlib.sha256(photo.content).hexdigest() == record["sha256"]
        offers = [o for o in view["offers"] if o["eligible"]]
        assert len(offers) >= 2, [o["result"]["reasons"] for o in view["offers"]]
        assert view["apr_spread"] is not None
