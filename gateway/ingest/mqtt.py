"""The gateway's MQTT connection (paho-mqtt 2.x, callback API v2, persistent session)."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.reasoncodes import ReasonCode

from edge.protocol import MqttEndpoint

if TYPE_CHECKING:
    from paho.mqtt.client import _InPacket

logger = logging.getLogger(__name__)


class BrokerUnavailableError(ConnectionError):
    """The broker did not accept our connection in time."""


@dataclass(frozen=True)
class TlsFiles:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


MessageHandler = Callable[[mqtt.MQTTMessage], None]

_READ_AHEAD = 256 * 1024  # bytes asked of the kernel per read: dozens of appraisals at once


class ReadAheadSocket:
    """A plain TCP socket whose reads are served from one large ``recv`` at a time.

    paho reads each packet with three or more ``recv`` calls (the type byte, each byte of the
    length, then the rest): several system calls per message, each dropping and retaking the
    interpreter lock that the ingest thread also wants. Through this wrapper one system call
    brings in whatever the kernel holds, and paho's small reads are slices of it. ``pending``
    tells paho that bytes are buffered (the hook it uses for TLS records), so it reads them
    before it waits in ``select`` again. TLS sockets are not wrapped: OpenSSL buffers its
    records already.
    """

    __slots__ = ("_buffer", "_position", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._position = 0

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes: buffered ones first, else one read of all the kernel has."""
        start = self._position
        if start >= len(self._buffer):
            data = self._sock.recv(max(size, _READ_AHEAD))  # raises when nothing is there
            if len(data) <= size:
                return data
            self._buffer, self._position = data, size
            return data[:size]
        self._position = start + size
        return self._buffer[start : start + size]

    def pending(self) -> int:
        """Bytes read from the kernel that paho has not taken yet."""
        return max(0, len(self._buffer) - self._position)

    def take_packet(self) -> tuple[int, int, bytearray] | None:
        """The next whole MQTT packet in the buffer: (first byte, remaining length, the rest).

        ``None`` when the buffer does not hold one whole packet (or its length is malformed):
        then paho's own reader takes over, byte by byte, and reports what is wrong.
        """
        buffer, start = self._buffer, self._position
        end_of_buffer = len(buffer)
        index = start + 1
        length = 0
        shift = 0
        while index < end_of_buffer and shift < 28:  # at most four length bytes
            byte = buffer[index]
            index += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                end = index + length
                if end > end_of_buffer:
                    return None
                self._position = end
                with memoryview(buffer) as view:
                    return buffer[start], length, bytearray(view[index:end])
            shift += 7
        return None

    def send(self, data: bytes | bytearray) -> int:
        return self._sock.send(data)

    def close(self) -> None:
        self._buffer, self._position = b"", 0
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


def _paho_release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


# The paho releases whose private packet handling the two shortcuts below were written against
# and tested with (tests compare them with paho's own code on the same packets). Any other
# release runs paho's own code: slower, never wrong.
_PAHO_SHORTCUTS = _paho_release(paho.mqtt.__version__) in {(2, 1), (2, 2)}


class _Received(mqtt.MQTTMessage):
    """A received message as paho makes one, without the delivery tracker it makes for each.

    paho gives every message an ``MQTTMessageInfo`` (a ``threading.Condition`` inside), which
    only a message *we* publish uses (``wait_for_publish``); a received one shares an inert one.
    """

    __slots__ = ()

    def __init__(self, mid: int, topic: bytes, payload: bytes, qos: int, header: int) -> None:
        self.timestamp = mqtt.time_func()
        self.state = mqtt.mqtt_ms_invalid
        self.dup = bool(header & 0x08)
        self.mid = mid
        self._topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = bool(header & 0x01)
        self.info = _RECEIVED_INFO
        self.properties = None


_RECEIVED_INFO = mqtt.MQTTMessageInfo(0)


def _fresh_in_packet() -> _InPacket:
    """paho's reader state between packets."""
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }


class _Client(mqtt.Client):
    """paho's client, its plain TCP socket wrapped in a :class:`ReadAheadSocket`, and its
    messages handed to ``on_message`` without the topic matcher while no per-topic callback
    (``message_callback_add``) is registered.

    paho matches every message's topic against the per-topic callbacks, even when there are
    none, and its matcher makes a recursive closure per message: a reference cycle that only
    the cyclic garbage collector frees, so under load it ran every couple of thousand messages.
    """

    _topic_callbacks = False

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        # Exactly a TCP socket: TLS (SSLSocket), WebSocket and proxy sockets stay as paho made them.
        return ReadAheadSocket(sock) if type(sock) is socket.socket else sock

    def message_callback_add(self, sub: str, callback: mqtt.CallbackOnMessage) -> None:
        self._topic_callbacks = True  # from now on, paho's own dispatch
        super().message_callback_add(sub, callback)

    def _packet_read(self) -> MQTTErrorCode:
        """paho's, except that every whole packet the read-ahead buffer holds is handled here.

        paho handles one packet per pass of its network loop (a ``select`` system call and
        several reads through its byte-by-byte state machine each); a kernel read brings in
        dozens. Between packets, and for a packet cut at the buffer's end, paho's own code runs.
        """
        sock = self._sock
        if (
            not _PAHO_SHORTCUTS
            or not isinstance(sock, ReadAheadSocket)
            or self._in_packet["command"] != 0  # paho is in the middle of a packet
        ):
            return super()._packet_read()
        reader: ReadAheadSocket = sock
        handled = 0
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            packet = reader.take_packet()
            if packet is None:
                break
            command, length, body = packet
            # The state paho's reader leaves when a packet is complete, then the fresh one.
            self._in_packet = {
                "command": command,
                "have_remaining": 1,
                "remaining_count": [],
                "remaining_mult": 1,
                "remaining_length": length,
                "packet": body,
                "to_process": 0,
                "pos": 0,
            }
            try:
                rc = self._packet_handle()
            except MalformedPacket as exc:
                self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
            self._in_packet = _fresh_in_packet()
            handled += 1
            if self._sock is not reader:  # the handler closed the connection
                break
        if not handled:
            return super()._packet_read()
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        """paho's, for a well-formed MQTT 3.1.1 PUBLISH at QoS 0 or 1 (all the gateway gets).

        paho's decoder copies the payload three times through ``struct`` formats it builds per
        packet, and formats a debug line even when nothing logs it; here each field is one
        slice. Any other packet, or a client that logs (``on_log``, ``enable_logger``), goes to
        paho's own, which also names what is wrong with a malformed one.
        """
        if not _PAHO_SHORTCUTS:
            return super()._handle_publish()
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        packet = self._in_packet["packet"]
        if (
            self._protocol != mqtt.MQTTv311
            or qos > 1
            or self.on_log is not None
            or self._logger is not None
            or len(packet) < 2
        ):
            return super()._handle_publish()
        topic_end = 2 + int.from_bytes(packet[:2], "big")
        payload_start = topic_end + 2 if qos else topic_end
        if topic_end == 2 or len(packet) < payload_start:  # empty topic, or cut short
            return super()._handle_publish()
        with memoryview(packet) as view:
            message = _Received(
                int.from_bytes(view[topic_end:payload_start], "big") if qos else 0,
                bytes(view[2:topic_end]),
                bytes(view[payload_start:]),
                qos,
                header,
            )
        self._handle_on_message(message)
        if qos == 0 or self._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._send_puback(message.mid)

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        if self._topic_callbacks or not _PAHO_SHORTCUTS:
            super()._handle_on_message(message)
            return
        # What paho's does when no per-topic callback matches.
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise


_PUBACK = struct.Struct("!BBH")  # fixed header (type, remaining length 2), packet id


class MqttConnection:
    """One paho client with a fixed client id and ``clean_session=False``.

    ``subscriptions`` are (re)made on every connect, so a broker that lost our session (restart
    without persistence) still delivers to us. Messages are acknowledged by the caller
    (``manual_ack``) once they are committed.
    """

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        client_id: str,
        subscriptions: list[str],
        on_message: MessageHandler,
        on_connected: Callable[[], None] | None = None,
        tls: TlsFiles | None = None,
        keepalive: int = 30,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._on_connected_cb = on_connected
        self._connected = threading.Event()
        self._stopping = False
        self._keepalive = keepalive
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if endpoint.username:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls:
            files = tls or TlsFiles()
            client.tls_set(
                ca_certs=str(files.ca) if files.ca else None,
                certfile=str(files.cert) if files.cert else None,
                keyfile=str(files.key) if files.key else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        self.client = client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self, timeout: float = 15.0) -> None:
        """Connect and start paho's network thread; raise when the broker does not answer."""
        try:
            self.client.connect(self.endpoint.host, self.endpoint.port, keepalive=self._keepalive)
        except OSError as exc:
            raise BrokerUnavailableError(
                f"cannot reach the MQTT broker at {self.endpoint.redacted()}: {exc}; check "
                "KIOSKMATCH_MQTT_URL and that the broker is running"
            ) from exc
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            raise BrokerUnavailableError(
                f"the MQTT broker at {self.endpoint.redacted()} did not accept the connection "
                f"within {timeout:.0f} s; check credentials and TLS settings"
            )

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue a QoS 1 publish; paho resends it on reconnect until the broker acknowledges."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            logger.warning("publish to %s failed with %s", topic, mqtt.error_string(info.rc))

    def ack(self, mid: int, qos: int) -> None:
        self.client.ack(mid, qos)

    def ack_many(self, mids: list[int]) -> None:
        """Acknowledge QoS 1 messages (``manual_ack``), in the order given, in one write.

        ``Client.ack`` queues one 4-byte PUBACK per message, and paho's network thread writes each
        with its own send, which the broker then reads one by one: at thousands of messages per
        second that is a large share of both processes' CPU. The same PUBACK packets, queued as
        one buffer, cost one send. Falls back to ``ack`` on a paho without that queue.
        """
        if not mids:
            return
        queue_packet = getattr(self.client, "_packet_queue", None)
        if queue_packet is None:
            for mid in mids:
                self.client.ack(mid, 1)
            return
        packets = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
        queue_packet(mqtt.PUBACK, packets, 0, 0)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

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
                "MQTT broker %s refused %s: %s",
                self.endpoint.redacted(),
                self.client_id,
                reason_code,
            )
            return
        for pattern in self._subscriptions:
            client.subscribe(pattern, qos=1)
        self._connected.set()
        logger.info("connected to MQTT broker %s as %s", self.endpoint.redacted(), self.client_id)
        if self._on_connected_cb is not None:
            self._on_connected_cb()

    def _handle_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: object,
    ) -> None:
        if self._connected.is_set() and not self._stopping:
            logger.warning(
                "disconnected from MQTT broker %s (%s); paho reconnects with backoff",
                self.endpoint.redacted(),
                reason_code,
            )
        self._connected.clear()

    def _handle_message(
        self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage
    ) -> None:
        self._on_message(msg)


def monotonic_seq() -> Callable[[], int]:
    """A per-process counter for the seq of gateway-sent messages: microseconds, never repeating."""
    last = 0
    lock = threading.Lock()

    def next_seq() -> int:
        nonlocal last
        with lock:
            last = max(last + 1, time.time_ns() // 1000)
            return last

    return next_seq
