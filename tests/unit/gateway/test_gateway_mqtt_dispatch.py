"""The gateway's paho client hands messages to ``on_message`` as paho does, minus the matcher."""

from __future__ import annotations

import gc

import paho.mqtt.client as mqtt
import pytest

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
