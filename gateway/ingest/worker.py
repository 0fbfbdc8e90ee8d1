"""The ingest worker: MQTT in, one commit per batch, receipts out, then the MQTT acks.

Order per batch (DESIGN.md, "Delivery is end to end"): commit → publish receipts → ack. A crash
before the commit loses nothing (the broker redelivers the unacknowledged messages to our
persistent session, and the kiosk resends what was not receipted); a crash after it stores
nothing twice (the message_ids are known and are receipted again).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NamedTuple

import paho.mqtt.client as mqtt
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from edge.protocol import (
    UPSTREAM,
    Channel,
    MqttEndpoint,
    encode_receipt,
    subscription,
    topic_for,
)
from gateway.ingest.mqtt import MqttConnection, TlsFiles, monotonic_seq
from gateway.services.fraud import PhotoIndex
from gateway.services.ingest import Inbound, IngestOutcome, ingest_batch, refuse

logger = logging.getLogger(__name__)

RECEIPT_CHUNK = 1000  # message ids per receipt; keeps a receipt far below the 256 KiB limit


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is decoded and stored.

    Under load a batch holds hundreds of decoded reports (dozens of objects each) until its
    commit, then frees them all at once by reference counting. A collection in between walks
    them for nothing and promotes them to older generations that later collections walk again.
    The pause is process-wide and lasts one batch; the collector runs again right after it.
    """
    if not gc.isenabled():  # already off (paused, or by whoever runs us): leave it so
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Pending(NamedTuple):
    """A message taken off the broker, not yet acknowledged (a tuple: one is made per message)."""

    mid: int
    qos: int
    inbound: Inbound


class IngestWorker:
    """Subscribes to every kiosk's upstream topics and commits what arrives.

    Three threads: paho's network loop appends what arrives to an inbox; the ingest thread takes
    it in batches (commit → receipts → acks); a post-commit thread runs ``after_commit`` (matching,
    command delivery) on what was committed, so that work never holds up the next commit. Several
    batches' outcomes that wait for it are handed over as one.
    """

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
        # deque appends and pops are atomic: the network thread never waits for the ingest one.
        self._inbox: deque[_Pending] = deque()
        self._arrived = threading.Event()
        self._committed: deque[IngestOutcome] = deque()
        self._has_committed = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_seq = monotonic_seq()
        self.connection = MqttConnection(
            endpoint,
            client_id=f"gateway-{worker_id}",
            subscriptions=[subscription(ch, shared_group) for ch in UPSTREAM],
            on_message=self._enqueue,
            tls=tls,
        )

    def start(self, timeout: float = 15.0) -> None:
        self._threads = [threading.Thread(target=self._run, name="ingest-worker", daemon=True)]
        if self._after_commit is not None:
            self._threads.append(
                threading.Thread(target=self._run_after_commit, name="post-commit", daemon=True)
            )
        for thread in self._threads:
            thread.start()
        self.connection.start(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand and its post-commit work, then disconnect.

        Unacknowledged messages stay with the broker.
        """
        self._stop.set()
        self._arrived.set()
        ingest, post = self._threads[:1], self._threads[1:]
        for thread in ingest:
            thread.join(timeout)
        self._has_committed.set()  # after the last commit, so its outcome is not left behind
        for thread in post:
            thread.join(timeout)
        self._threads = []
        self.connection.stop()

    @property
    def connected(self) -> bool:
        return self.connection.connected

    @property
    def ingesting(self) -> bool:
        """Whether the ingest (and post-commit) threads are running."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def publish(self, topic: str, payload: bytes) -> None:
        self.connection.publish(topic, payload)

    def next_seq(self) -> int:
        return self._next_seq()

    def _enqueue(self, msg: mqtt.MQTTMessage) -> None:
        inbound = Inbound(msg.topic, bytes(msg.payload), datetime.now(UTC), bool(msg.retain))
        self._inbox.append(_Pending(msg.mid, msg.qos, inbound))
        if not self._arrived.is_set():
            self._arrived.set()

    def _take_batch(self) -> list[_Pending]:
        inbox = self._inbox
        if not inbox:
            self._arrived.wait(0.2)
        self._arrived.clear()
        # Let more arrive, unless a full batch waits: a batch's cost is mostly per message, but
        # its receipts (one per kiosk) and statements are per batch, so small batches cost more
        # per message. Sleeping, not waking per message, leaves the network thread the GIL.
        if inbox and len(inbox) < self._batch_max and not self._stop.is_set():
            time.sleep(self._batch_wait_s)
        batch: list[_Pending] = []
        while inbox and len(batch) < self._batch_max:
            batch.append(inbox.popleft())
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if batch:
                self._process(batch)

    def _process(self, batch: list[_Pending]) -> None:
        outcome = self._commit(batch)
        if outcome is None:
            return  # stopping: the batch stays unacknowledged with the broker
        self._send_receipts(outcome)
        self.connection.ack_many([p.mid for p in batch if p.qos == 1])
        for pending in batch:
            if pending.qos == 2:  # not with our QoS 1 subscriptions, but never leave one hanging
                self.connection.ack(pending.mid, 2)
        if self._after_commit is not None and (outcome.new_appraisals or outcome.kiosks_online):
            self._committed.append(outcome)
            self._has_committed.set()

    def _commit(self, batch: list[_Pending]) -> IngestOutcome | None:
        """Commit a batch: what ``ingest_batch`` returns, or ``None`` when stopping first.

        A database that is down or locked (``OperationalError``) is waited for, the batch kept.
        Any other refusal from the database (a value the protocol let through but a column
        cannot hold, a driver bug) must not end ingest: the batch is committed one message at a
        time, and a message the database still refuses becomes a dead letter with the reason.
        """
        delay = 0.5
        while True:
            try:
                with collector_paused(), self._session_factory() as session:
                    return ingest_batch(
                        session, [p.inbound for p in batch], photo_index=self._photo_index
                    )
            except OperationalError as exc:
                # The database is down or locked: keep the batch (unacknowledged) and retry.
                logger.error(
                    "cannot commit %d messages (%s); retrying in %.1f s",
                    len(batch),
                    exc.orig,
                    delay,
                )
            except Exception as exc:
                if len(batch) > 1:
                    logger.warning(
                        "the database refused a batch of %d messages (%s); committing them one "
                        "by one",
                        len(batch),
                        exc,
                        exc_info=True,
                    )
                    merged = IngestOutcome()
                    for pending in batch:
                        one = self._commit([pending])
                        if one is None:
                            return None
                        merged.merge(one)
                    return merged
                refused = self._refuse(batch[0].inbound, exc)
                if refused is not None:
                    return refused
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, 30.0)

    def _refuse(self, inbound: Inbound, exc: Exception) -> IngestOutcome | None:
        """A message the database refused, kept as a dead letter; ``None`` if even that fails."""
        reason = f"the database refused it: {type(exc).__name__}: {exc}"
        logger.error("dead letter on %s: %s", inbound.topic[:200], reason)
        try:
            with self._session_factory() as session:
                return refuse(session, inbound, reason)
        except Exception:
            logger.exception("cannot store the dead letter either; retrying")
            return None

    def _run_after_commit(self) -> None:
        """Matching and command delivery for what was committed, off the ingest thread.

        A crash between a commit and this work loses none of it: the gateway matches every
        loan request still unmatched when it starts, and kiosks announce themselves online on
        every reconnect.
        """
        assert self._after_commit is not None
        while True:
            self._has_committed.wait()
            self._has_committed.clear()
            merged = IngestOutcome()
            while self._committed:
                outcome = self._committed.popleft()
                merged.new_appraisals += outcome.new_appraisals
                merged.kiosks_online += outcome.kiosks_online
            if merged.new_appraisals or merged.kiosks_online:
                try:
                    self._after_commit(merged)
                except Exception:  # matching or command delivery must never stop ingest
                    logger.exception("post-commit work failed; ingest continues")
            if self._stop.is_set() and not self._committed:
                return

    def _send_receipts(self, outcome: IngestOutcome) -> None:
        for kiosk_id, ids in outcome.receipts.items():
            topic = topic_for(kiosk_id, Channel.RECEIPTS)
            for start in range(0, len(ids), RECEIPT_CHUNK):
                chunk = ids[start : start + RECEIPT_CHUNK]
                payload = encode_receipt(kiosk_id, chunk, seq=self._next_seq())
                self.connection.publish(topic, payload)
