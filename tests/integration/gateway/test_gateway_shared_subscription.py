"""Two ingest workers share one subscription on Mosquitto: every appraisal stored once."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session, func, select

from edge.protocol import Channel, MqttEndpoint, decode, encode, make_envelope, topic_for
from gateway.db import Appraisal, make_engine, migrate
from gateway.ingest import IngestWorker
from gateway.services.ingest import IngestOutcome
from tests.support.factories import appraisal_body
from tests.support.services import Mosquitto

pytestmark = pytest.mark.mosquitto

KIOSK = "shared-kiosk-1"


def test_two_workers_share_the_stream(tmp_path: Path, mosquitto_broker: Mosquitto) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    migrate(engine)
    endpoint = MqttEndpoint.parse(mosquitto_broker.url)
    per_worker = {"a": 0, "b": 0}
    lock = threading.Lock()

    def counter(name: str):  # type: ignore[no-untyped-def]
        def after(outcome: IngestOutcome) -> None:
            with lock:
                per_worker[name] += len(outcome.new_appraisals)  # retained statuses may come too

        return after

    workers = [
        IngestWorker(
            endpoint,
            session_factory=lambda: Session(engine),
            worker_id=f"shared-{name}",
            shared_group="pytest-shared",
            after_commit=counter(name),
            batch_wait_s=0.001,
            batch_max=5,
        )
        for name in per_worker
    ]
    receipted: set[str] = set()
    done = threading.Event()
    total = 300

    def on_receipt(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        receipted.update(decode(msg.topic, bytes(msg.payload)).body.message_ids)
        if len(receipted) >= total:
            done.set()

    kiosk = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"kiosk-{KIOSK}")
    kiosk.on_message = on_receipt
    try:
        for worker in workers:
            worker.start()
        kiosk.connect(endpoint.host, endpoint.port)
        kiosk.subscribe(topic_for(KIOSK, Channel.RECEIPTS), qos=1)
        kiosk.loop_start()
        sent = []
        for seq in range(1, total + 1):
            env = make_envelope(KIOSK, appraisal_body(), seq=seq)
            sent.append(env.message_id)
            kiosk.publish(topic_for(KIOSK, Channel.APPRAISALS), encode(env), qos=1)
        assert done.wait(60), f"{len(receipted)} of {total} receipted"
        assert receipted == set(sent)
    finally:
        kiosk.loop_stop()
        kiosk.disconnect()
        for worker in workers:
            worker.stop()
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Appraisal)).one() == total
    engine.dispose()
    assert per_worker["a"] + per_worker["b"] == total
    assert per_worker["a"] > 0 and per_worker["b"] > 0, per_worker
