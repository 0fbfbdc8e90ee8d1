"""The kiosk's MQTT uplink (paho-mqtt 2.x): presence, sending the outbox, receipts, commands.

- client id ``kiosk-{kiosk_id}``, ``clean_session=False``, last will ``offline`` (retained);
- before every connect: a new ``online`` and a new ``offline`` will, stamped after it (the gateway
  keeps the newest status by ``created_at`` and stores a ``message_id`` once, so a will made once
  at start would be older than every later ``online``, and the same message each time);
- on every connect: ``online`` (retained), subscribe to its own commands and receipts, and make
  every outbox message due again;
- a sender thread publishes due outbox messages at QoS 1 and schedules their resend; a receipt
  deletes them; ``stop`` publishes ``stopped`` (retained) and disconnects cleanly.

An outbox that fails (disk full, read-only, damaged) stops nothing for good: no callback and no
thread of the uplink dies from it. A receipt that cannot be applied is kept in memory and applied
on the sender's next attempt (receipts are idempotent, and the gateway receipts a resend again);
the sender backs off while the outbox fails and resumes by itself once it works. ``connected``
is true only while paho's network thread runs and holds a connection; :meth:`MqttUplink.health`
says what works and what does not.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge.outbox import OutboxStorageError, SqliteOutbox
from edge.protocol import (
    Channel,
    CommandBody,
    Envelope,
    KioskState,
    MqttEndpoint,
    ProtocolError,
    ReceiptBody,
    StatusBody,
    decode,
    encode,
    make_envelope,
    topic_for,
)

logger = logging.getLogger(__name__)

FAIL_LOG_EVERY_S = 60.0  # how often an unreachable broker (or a failing outbox) is logged again
STORAGE_RETRY_MIN_S = 0.5  # the sender's first wait after the outbox failed; doubles per failure
STORAGE_RETRY_MAX_S = 30.0
NETWORK_RESTART_EVERY_S = 5.0  # at most this often, paho's network thread is started again
MAX_UNAPPLIED_RECEIPTS = 100_000  # ids kept while the outbox cannot delete (the oldest go first)

CommandHandler = Callable[[Envelope[CommandBody]], None]


class UplinkError(ConnectionError):
    """The broker could not be reached or refused the kiosk."""


@dataclass(frozen=True)
class UplinkHealth:
    """What works in the uplink right now (for the kiosk's health and telemetry)."""

    connected: bool  # a live connection, with paho's network thread running
    network_thread: bool  # paho's network thread runs (it reconnects on its own)
    sender_thread: bool  # the thread that sends the outbox runs
    outbox_fault: str | None  # the outbox's storage error, if it is failing
    unapplied_receipts: int  # receipted message ids the outbox could not delete yet

    @property
    def ok(self) -> bool:
        return (
            self.connected
            and self.sender_thread
            and self.outbox_fault is None
            and self.unapplied_receipts == 0
        )


class MqttUplink:
    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        kiosk_id: str,
        outbox: SqliteOutbox,
        on_command: CommandHandler,
        agent_version: str | None = None,
        ca: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        keepalive: int = 30,
    ) -> None:
        self.endpoint = endpoint
        self.kiosk_id = kiosk_id
        self._outbox = outbox
        self._on_command = on_command
        self._agent_version = agent_version
        self._keepalive = keepalive
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failed_attempts = 0
        self._failure_logged_at: float | None = None
        self._sender: threading.Thread | None = None
        self._started = False
        self.receipted = threading.Condition()
        # Receipted ids the outbox has not deleted yet (it failed): applied on the next attempt.
        self._receipts_lock = threading.Lock()
        self._unapplied: dict[str, None] = {}  # insertion-ordered set
        self._reschedule_pending = False
        self._storage_failures = 0  # consecutive failed sender passes, for the backoff
        self._retry_at = 0.0  # monotonic; the sender leaves the outbox alone until then
        self._logged_at: dict[str, float] = {}
        self._network_restarted_at = -NETWORK_RESTART_EVERY_S
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"kiosk-{kiosk_id}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        # An exception escaping a callback would end paho's network thread, and with it every
        # send and receipt: each callback is wrapped (_guard) and paho told to carry on anyway.
        client.suppress_exceptions = True
        if endpoint.username:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls:
            client.tls_set(
                ca_certs=str(ca) if ca else None,
                certfile=str(cert) if cert else None,
                keyfile=str(key) if key else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self._online = b""  # this connection's 'online', made with its will before connecting
        client.on_pre_connect = self._guard(self._handle_pre_connect)
        client.on_connect = self._guard(self._handle_connect)
        client.on_connect_fail = self._guard(self._handle_connect_fail)
        client.on_disconnect = self._guard(self._handle_disconnect)
        client.on_message = self._guard(self._handle_message)
        self._client = client

    def _guard(self, callback: Callable[..., None]) -> Callable[..., None]:
        """``callback`` for paho: what it raises is logged (rate-limited), never raised into
        paho's network thread."""

        def guarded(*args: object) -> None:
            try:
                callback(*args)
            except Exception as exc:
                self._log_every(
                    callback.__name__,
                    logging.ERROR,
                    "kiosk %s: %s failed; the uplink carries on",
                    self.kiosk_id,
                    callback.__name__,
                    exc_info=exc,
                )

        return guarded

    def _status(
        self, state: KioskState, *, created_at: datetime | None = None
    ) -> Envelope[StatusBody]:
        return make_envelope(
            self.kiosk_id,
            StatusBody(state=state, agent_version=self._agent_version),
            seq=None,
            created_at=created_at,
        )

    @property
    def connected(self) -> bool:
        """A live connection to the broker, served by a running network thread."""
        return self._connected.is_set() and self._client.is_connected() and self._network_running()

    def _network_running(self) -> bool:
        # paho clears its private _thread when loop_forever ends, whatever ended it.
        return getattr(self._client, "_thread", None) is not None

    def health(self) -> UplinkHealth:
        with self._receipts_lock:
            unapplied = len(self._unapplied)
        return UplinkHealth(
            connected=self.connected,
            network_thread=self._network_running(),
            sender_thread=self._sender is not None and self._sender.is_alive(),
            outbox_fault=self._outbox.fault,
            unapplied_receipts=unapplied,
        )

    def start(self, *, wait_s: float | None = 15.0) -> None:
        """Connect (retrying in the background) and start sending; ``wait_s`` None: don't wait."""
        try:
            self._client.connect_async(
                self.endpoint.host, self.endpoint.port, keepalive=self._keepalive
            )
        except OSError as exc:
            raise UplinkError(
                f"cannot reach the MQTT broker at {self.endpoint.redacted()}: {exc}"
            ) from exc
        self._client.loop_start()
        self._started = True
        self._sender = threading.Thread(target=self._send_loop, name="uplink-sender", daemon=True)
        self._sender.start()
        if wait_s is not None and not self._connected.wait(wait_s):
            logger.warning(
                "not connected to %s after %.0f s; messages wait in the outbox and go when it is",
                self.endpoint.redacted(),
                wait_s,
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Publish ``stopped`` (retained), then disconnect cleanly (no last will)."""
        self._stop.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout)
        if self._connected.is_set():
            info = self._client.publish(
                topic_for(self.kiosk_id, Channel.STATUS),
                encode(self._status(KioskState.STOPPED)),
                qos=1,
                retain=True,
            )
            try:
                info.wait_for_publish(timeout)
            except RuntimeError:
                logger.warning("could not confirm the 'stopped' status before disconnecting")
        self._client.disconnect()
        self._client.loop_stop()

    def kick(self) -> None:
        """Send what is due now (a message was just queued, so the outbox works: no backoff)."""
        self._retry_at = 0.0
        self._wake.set()

    def _send_loop(self) -> None:
        """Send due messages until stopped; nothing the outbox raises ends this thread."""
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._watch_network()
            except Exception as exc:  # tried again on the next pass
                self._log_every(
                    "watch", logging.ERROR, "cannot restart the MQTT network thread", exc_info=exc
                )
            if time.monotonic() < self._retry_at:
                continue  # the outbox failed a moment ago: back off
            try:
                self._apply_receipts()  # held ones, connected or not
                if self.connected:
                    if self._reschedule_pending:
                        self._outbox.reschedule_all()
                        self._reschedule_pending = False
                    self._send_due()
            except OutboxStorageError as exc:
                self._sender_failed(exc, expected=True)
            except Exception as exc:  # a bug must not stop the kiosk sending for good
                self._sender_failed(exc, expected=False)
            else:
                self._storage_failures, self._retry_at = 0, 0.0

    def _send_due(self) -> None:
        while not self._stop.is_set():
            due = self._outbox.due(limit=100)
            with self._receipts_lock:
                # Receipted but not yet deleted (the outbox failed): no need to send them again.
                items = [i for i in due if i.message_id not in self._unapplied]
            if not items:
                return
            sent = []
            for item in items:
                info = self._client.publish(
                    topic_for(self.kiosk_id, item.channel), item.payload, qos=1
                )
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break  # disconnected: everything left stays due
                sent.append(item.message_id)
            self._outbox.mark_sent(sent)
            if len(sent) < len(items):
                return

    def _sender_failed(self, exc: Exception, *, expected: bool) -> None:
        self._storage_failures += 1
        delay = min(STORAGE_RETRY_MAX_S, STORAGE_RETRY_MIN_S * 2 ** (self._storage_failures - 1))
        delay *= random.uniform(0.8, 1.2)
        self._retry_at = time.monotonic() + delay
        if expected:
            # The outbox logs the fault and what to do; this says what it means for sending.
            self._log_every(
                "sender",
                logging.WARNING,
                "kiosk %s: sending paused, the outbox fails (%s); retrying in %.1f s",
                self.kiosk_id,
                exc,
                delay,
            )
        else:
            self._log_every(
                "sender-bug",
                logging.ERROR,
                "kiosk %s: the uplink sender hit an unexpected error; retrying in %.1f s",
                self.kiosk_id,
                delay,
                exc_info=exc,
            )

    def _watch_network(self) -> None:
        """paho's network thread should never end before stop(); if it did, start another."""
        if not self._started or self._stop.is_set() or self._network_running():
            return
        now = time.monotonic()
        if now - self._network_restarted_at < NETWORK_RESTART_EVERY_S:
            return  # whatever ends it must not make a busy loop of restarts
        self._network_restarted_at = now
        logger.error(
            "kiosk %s: the MQTT network thread ended unexpectedly; starting it again", self.kiosk_id
        )
        # loop_start() makes a new wake-up socket pair; close the dead thread's (paho 2.x's own
        # clean-up, which loop_stop() would have done). The connection may still be up
        # (``connected`` said False meanwhile); if it is not, paho reconnects as usual.
        self._client._reset_sockets(sockpair_only=True)
        self._client.loop_start()

    def _apply_receipts(self) -> None:
        """Delete the receipted messages still waiting; they stay waiting if the outbox fails."""
        with self._receipts_lock:
            ids = list(self._unapplied)
        if not ids:
            return
        removed = self._outbox.ack(ids)
        with self._receipts_lock:
            for message_id in ids:
                self._unapplied.pop(message_id, None)
        logger.debug("receipt for %d message(s), %d removed", len(ids), removed)
        with self.receipted:
            self.receipted.notify_all()

    def _log_every(
        self,
        key: str,
        level: int,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> None:
        """Log at most once per FAIL_LOG_EVERY_S per ``key`` (a fault repeats on every retry)."""
        now = time.monotonic()
        last = self._logged_at.get(key)
        if last is not None and now - last < FAIL_LOG_EVERY_S:
            logger.debug(message, *args)
            return
        self._logged_at[key] = now
        logger.log(level, message, *args, exc_info=exc_info)

    def _handle_pre_connect(self, client: mqtt.Client, _userdata: object) -> None:
        """Before each connection attempt: its ``online``, then its last will, 1 ms newer.

        The will is fixed at connect time and delivered unchanged, so it carries no seq. Being
        newer than this connection's ``online`` and older than the next one's, it counts when
        this connection dies, and not when it arrives late (after a session takeover).
        """
        online = self._status(KioskState.ONLINE)
        offline = self._status(
            KioskState.OFFLINE, created_at=online.created_at + timedelta(milliseconds=1)
        )
        self._online = encode(online)
        client.will_set(
            topic_for(self.kiosk_id, Channel.STATUS), encode(offline), qos=1, retain=True
        )

    def _handle_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: object,
    ) -> None:
        if reason_code.is_failure:
            logger.error(
                "broker %s refused kiosk %s: %s",
                self.endpoint.redacted(),
                self.kiosk_id,
                reason_code,
            )
            return
        client.subscribe(
            [
                (topic_for(self.kiosk_id, Channel.COMMANDS), 1),
                (topic_for(self.kiosk_id, Channel.RECEIPTS), 1),
            ]
        )
        client.publish(topic_for(self.kiosk_id, Channel.STATUS), self._online, qos=1, retain=True)
        try:
            self._outbox.reschedule_all()
        except OutboxStorageError:
            self._reschedule_pending = True  # the sender does it once the outbox works again
        self._connected.set()
        self._wake.set()
        self._failed_attempts, self._failure_logged_at = 0, None
        logger.info("kiosk %s connected to %s", self.kiosk_id, self.endpoint.redacted())

    def _handle_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        """paho could not even open the connection: say so at once, then once a minute."""
        self._failed_attempts += 1
        now = time.monotonic()
        if self._failure_logged_at is None or now - self._failure_logged_at >= FAIL_LOG_EVERY_S:
            self._failure_logged_at = now
            logger.warning(
                "kiosk %s cannot reach the MQTT broker at %s (%d attempts so far); retrying with "
                "backoff, appraisals wait in the outbox; check mqtt.url and the network",
                self.kiosk_id,
                self.endpoint.redacted(),
                self._failed_attempts,
            )

    def _handle_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: object,
    ) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            logger.warning(
                "kiosk %s lost the broker (%s); reconnecting", self.kiosk_id, reason_code
            )
        self._connected.clear()

    def _handle_message(
        self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage
    ) -> None:
        try:
            envelope = decode(msg.topic, bytes(msg.payload))
        except ProtocolError as exc:
            logger.warning("ignoring an invalid message on %s: %s", msg.topic, exc.reason)
            return
        if isinstance(envelope.body, ReceiptBody):
            self._receipt(envelope.body)
        elif isinstance(envelope.body, CommandBody):
            # Commands run on their own thread: paho's network thread must keep going.
            threading.Thread(
                target=self._run_command, args=(envelope,), name="command", daemon=True
            ).start()

    def _receipt(self, body: ReceiptBody) -> None:
        with self._receipts_lock:
            for message_id in body.message_ids:
                self._unapplied[message_id] = None
            while len(self._unapplied) > MAX_UNAPPLIED_RECEIPTS:
                # Dropped ids are only sent again, and receipted again, after their timeout.
                del self._unapplied[next(iter(self._unapplied))]
        try:
            self._apply_receipts()
        except OutboxStorageError as exc:
            self._log_every(
                "receipt",
                logging.WARNING,
                "kiosk %s: a receipt for %d message(s) waits: the outbox fails (%s); it is "
                "applied as soon as the outbox works",
                self.kiosk_id,
                len(body.message_ids),
                exc,
            )
            self._wake.set()  # the sender retries it (after its backoff)

    def _run_command(self, envelope: Envelope[CommandBody]) -> None:
        try:
            self._on_command(envelope)
        except Exception:  # the command handler reports its own failures; this is the backstop
            logger.exception(
                "kiosk %s: command %s could not be handled",
                self.kiosk_id,
                envelope.body.command_id,
            )
