"""The gateway's paho client decodes and hands over messages as paho does, for less work."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

from edge.protocol import MqttEndpoint
from gateway.ingest.mqtt import MqttConnection

TOPIC = "kioskmatch/v1/kiosks/kiosk-1/appraisals"


def _message(topic: str = TOPIC, mid: int = 7) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    message.qos = 1
    message.payload = b"{}"
    return message


def _connection(on_message: list[mqtt.MQTTMessage]) -> MqttConnection:
    # Never started: the dispatch under test needs no broker.
    return MqttConnection(
        MqttEndpoint.parse("mqtt://127.0.0.1:1"),
        client_id="dispatch-test",
        subscriptions=[],
        on_message=on_message.append,
    )


def test_every_message_reaches_on_message_and_leaves_no_cyclic_garbage() -> None:
    got: list[mqtt.MQTTMessage] = []
    client = _connection(got).client
    messages = [_message(mid=mid) for mid in range(1, 201)]
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for message in messages:
            client._handle_on_message(message)
        # paho's matcher left a reference cycle (a recursive closure) per message.
        assert gc.get_count()[0] - before < 50
    finally:
        gc.enable()
    assert got == messages


def test_per_topic_callbacks_still_take_their_messages() -> None:
    got: list[mqtt.MQTTMessage] = []
    filtered: list[mqtt.MQTTMessage] = []
    client = _connection(got).client
    client.message_callback_add(TOPIC, lambda _c, _u, message: filtered.append(message))
    ours, other = _message(), _message("kioskmatch/v1/kiosks/kiosk-2/appraisals")
    client._handle_on_message(ours)
    client._handle_on_message(other)
    assert filtered == [ours]
    assert got == [other]


def test_an_exception_in_on_message_is_raised_as_paho_does() -> None:
    def fail(_message: mqtt.MQTTMessage) -> None:
        raise RuntimeError("boom")

    connection = MqttConnection(
        MqttEndpoint.parse("mqtt://127.0.0.1:1"),
        client_id="dispatch-test",
        subscriptions=[],
        on_message=fail,
    )
    with pytest.raises(RuntimeError, match="boom"):
        connection.client._handle_on_message(_message())
    connection.client.suppress_exceptions = True
    connection.client._handle_on_message(_message())  # logged by paho, not raised


def _publish_packet(topic: bytes, payload: bytes, *, qos: int, mid: int = 0) -> bytearray:
    packet = bytearray(len(topic).to_bytes(2, "big") + topic)
    if qos:
        packet += mid.to_bytes(2, "big")
    return packet + payload


def _received(
    handle: Callable[[Any], MQTTErrorCode],
    client: mqtt.Client,
    got: list[mqtt.MQTTMessage],
    header: int,
    packet: bytearray,
) -> tuple[object, ...]:
    client._in_packet["command"] = header
    client._in_packet["packet"] = packet
    rc = handle(client)
    message = got.pop()
    fields = ("topic", "payload", "mid", "qos", "dup", "retain", "properties", "state")
    return (rc, type(message.payload), *(getattr(message, name) for name in fields))


@pytest.mark.parametrize(
    ("header", "packet"),
    [
        (0x30, _publish_packet(TOPIC.encode(), b"", qos=0)),
        (0x32, _publish_packet(TOPIC.encode(), b'{"a": 1}' * 600, qos=1, mid=65535)),
        (0x3B, _publish_packet("kioskmatch/v1/kiosks/é/status".encode(), b"x", qos=1, mid=1)),
        (0x33, _publish_packet(b"t", b"\x00\xff", qos=1, mid=300)),
    ],
)
def test_a_publish_is_decoded_as_paho_decodes_it(header: int, packet: bytearray) -> None:
    got: list[mqtt.MQTTMessage] = []
    client = _connection(got).client
    with pytest.MonkeyPatch.context() as patch:  # ours does not fall back to paho's decoder
        patch.setattr(_packet, "decode_publish", None)
        ours = _received(type(client)._handle_publish, client, got, header, bytearray(packet))
    paho = _received(mqtt.Client._handle_publish, client, got, header, bytearray(packet))
    assert ours == paho


@pytest.mark.parametrize(
    ("header", "packet"),
    [
        (0x32, bytearray(b"\x00")),  # no room for the topic length
        (0x32, _publish_packet(b"", b"x", qos=1, mid=1)),  # empty topic
        (0x32, bytearray(b"\x00\x10abc")),  # topic longer than the packet
        (0x32, bytearray(b"\x00\x01t\x00")),  # no room for the packet id
    ],
)
def test_a_malformed_publish_is_refused_as_paho_refuses_it(header: int, packet: bytearray) -> None:
    got: list[mqtt.MQTTMessage] = []
    client = _connection(got).client
    client._in_packet["command"] = header
    client._in_packet["packet"] = packet
    with pytest.raises(MalformedPacket):
        client._handle_publish()
    assert got == []


def test_a_paho_release_the_shortcuts_were_not_checked_against_runs_pahos_own_code() -> None:
    from gateway.ingest import mqtt as ours

    assert ours._paho_release("2.2.0") == (2, 2) and ours._paho_release("3.0.0rc1") == (3, 0)
    got: list[mqtt.MQTTMessage] = []
    client = _connection(got).client
    packet = _publish_packet(TOPIC.encode(), b"{}", qos=1, mid=9)
    calls: list[bytes] = []
    decode = _packet.decode_publish

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(b"")
        return decode(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ours, "_PAHO_SHORTCUTS", False)
        patch.setattr(_packet, "decode_publish", counted)
        rc, *_ = _received(type(client)._handle_publish, client, got, 0x32, bytearray(packet))
    assert rc == MQTTErrorCode.MQTT_ERR_SUCCESS and len(calls) == 1
