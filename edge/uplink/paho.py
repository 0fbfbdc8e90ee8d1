"""The kiosk's MQTT uplink (paho-mqtt 2.x): presence, sending the outbox, receipts, commands.

- client id ``kiosk-{kiosk_id}``, ``clean_session=False``, last will ``offline`` (retained);
- before every connect: a new ``online`` and a new ``offline`` will, stamped after it (the gateway
  keeps the newest status by ``created_at`` and stores a ``message_id`` once, so a will made once
  at start would be older than every later ``online``, and the same message each time);
- on every connect: ``online`` (retained), subscribe to its own commands and receipts, and make
  every outbox message due again;
- a sender thread publishes due outbox messages at QoS 1 and schedules their resend; a receipt
  deletes them; ``stop`` publishes ``stopped`` (retained) and disconnects cleanly.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge.outbox import SqliteOutbox
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

FAIL_LOG_EVERY_S = 60.0  # how often an unreachable broker is logged again

CommandHandler = Callable[[Envelope[CommandBody]], None]


class UplinkError(ConnectionError):
    """The broker could not be reached or refused the kiosk."""


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
        self.receipted = threading.Condition()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"kiosk-{kiosk_id}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
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
        client.on_pre_connect = self._handle_pre_connect
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        self._client = client

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
        return self._connected.is_set()

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
        """Send what is due now (a message was just queued)."""
        self._wake.set()

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            if not self._connected.is_set():
                continue
            while not self._stop.is_set():
                items = self._outbox.due(limit=100)
                if not items:
                    break
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
                    break

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
        self._outbox.reschedule_all()
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
            removed = self._outbox.ack(envelope.body.message_ids)
            logger.debug(
                "receipt for %d message(s), %d removed", len(envelope.body.message_ids), removed
            )
            with self.receipted:
                self.receipted.notify_all()
        elif isinstance(envelope.body, CommandBody):
            # Commands run on their own thread: paho's network thread must keep going.
            threading.Thread(
                target=self._on_command, args=(envelope,), name="command", daemon=True
            ).start()
