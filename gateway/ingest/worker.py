"""The ingest worker: MQTT in, one commit per batch, receipts out, then the MQTT acks.

Order per batch (DESIGN.md, "Delivery is end to end"): commit → publish receipts → ack. A crash
before the commit loses nothing (the broker redelivers the unacknowledged messages to our
persistent session, and the kiosk resends what was not receipted); a crash after it stores
nothing twice (the message_ids are known and are receipted again).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from edge.protocol import (
    UPSTREAM,
    Channel,
    MqttEndpoint,
    ReceiptBody,
    encode,
    make_envelope,
    subscription,
    topic_for,
)
from gateway.ingest.mqtt import MqttConnection, TlsFiles, monotonic_seq
from gateway.services.fraud import PhotoIndex
from gateway.services.ingest import Inbound, IngestOutcome, ingest_batch

logger = logging.getLogger(__name__)

RECEIPT_CHUNK = 1000  # message ids per receipt; keeps a receipt far below the 256 KiB limit


@dataclass(frozen=True)
class _Pending:
    mid: int
    qos: int
    inbound: Inbound


class IngestWorker:
    """Subscribes to every kiosk's upstream topics and commits what arrives."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        session_factory: Callable[[], Session],
        worker_id: str = "w1",
        shared_group: str | None = None,
        tls: TlsFiles | None = None,
        after_commit: Callable[[IngestOutcome], None] | None = None,
        photo_index: PhotoIndex | None = None,
        batch_max: int = 500,
        batch_wait_s: float = 0.01,
    ) -> None:
        self._session_factory = session_factory
        self._photo_index = photo_index
        self._after_commit = after_commit
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_seq = monotonic_seq()
        self.connection = MqttConnection(
            endpoint,
            client_id=f"gateway-{worker_id}",
            subscriptions=[subscription(ch, shared_group) for ch in UPSTREAM],
            on_message=self._enqueue,
            tls=tls,
        )

    def start(self, timeout: float = 15.0) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest-worker", daemon=True)
        self._thread.start()
        self.connection.start(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, then disconnect; unacked messages stay with the broker."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.connection.stop()

    @property
    def connected(self) -> bool:
        return self.connection.connected

    def publish(self, topic: str, payload: bytes) -> None:
        self.connection.publish(topic, payload)

    def next_seq(self) -> int:
        return self._next_seq()

    def _enqueue(self, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(_Pending(msg.mid, msg.qos, Inbound(msg.topic, bytes(msg.payload))))

    def _take_batch(self) -> list[_Pending]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self._batch_wait_s
        while len(batch) < self._batch_max:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=max(remaining, 0))
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if batch:
                self._process(batch)

    def _process(self, batch: list[_Pending]) -> None:
        delay = 0.5
        while True:
            try:
                with self._session_factory() as session:
                    outcome = ingest_batch(
                        session, [p.inbound for p in batch], photo_index=self._photo_index
                    )
                break
            except OperationalError as exc:
                # The database is down or locked: keep the batch (unacknowledged) and retry.
                if self._stop.is_set():
                    return
                logger.error(
                    "cannot commit %d messages (%s); retrying in %.1f s",
                    len(batch),
                    exc.orig,
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        self._send_receipts(outcome)
        for pending in batch:
            if pending.qos > 0:
                self.connection.ack(pending.mid, pending.qos)
        if self._after_commit is not None:
            try:
                self._after_commit(outcome)
            except Exception:  # matching or command delivery must never stop ingest
                logger.exception("post-commit work failed; ingest continues")

    def _send_receipts(self, outcome: IngestOutcome) -> None:
        for kiosk_id, ids in outcome.receipts.items():
            for start in range(0, len(ids), RECEIPT_CHUNK):
                body = ReceiptBody(message_ids=ids[start : start + RECEIPT_CHUNK])
                envelope = make_envelope(kiosk_id, body, seq=self._next_seq())
                self.connection.publish(topic_for(kiosk_id, Channel.RECEIPTS), encode(envelope))
