"""The gateway's MQTT reads: many packets per system call, none lost, split or reordered."""

from __future__ import annotations

import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.protocol import MqttEndpoint
from gateway.ingest.mqtt import MqttConnection, ReadAheadSocket
from tests.support.services import Mosquitto


def test_reads_are_slices_of_one_kernel_read_and_pending_counts_the_rest() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    sock = ReadAheadSocket(ours)
    try:
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # nothing there: paho's "try again later"
        theirs.sendall(b"\x30\x05hello\x40\x02\x00\x01")
        time.sleep(0.05)
        assert sock.recv(1) == b"\x30"  # one system call took all 11 bytes
        assert sock.pending() == 10
        assert sock.recv(1) == b"\x05"
        assert sock.recv(5) == b"hello"
        assert sock.recv(100) == b"\x40\x02\x00\x01"  # a short read, as recv gives
        assert sock.pending() == 0
        with pytest.raises(BlockingIOError):
            sock.recv(1)
        assert sock.send(b"ping") == 4
        assert theirs.recv(4) == b"ping"
        theirs.close()
        assert sock.recv(1) == b""  # the peer closed: paho sees a lost connection
    finally:
        sock.close()


@pytest.mark.mosquitto
def test_a_burst_arrives_whole_and_in_order(
    mosquitto_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hundreds of 5 KB messages queued at the broker before the gateway reads any."""
    taken: list[int] = []
    take_packet = ReadAheadSocket.take_packet

    def counted(self: ReadAheadSocket) -> tuple[int, int, bytearray] | None:
        packet = take_packet(self)
        if packet is not None:
            taken.append(packet[0])
        return packet

    monkeypatch.setattr(ReadAheadSocket, "take_packet", counted)
    endpoint = MqttEndpoint.parse(mosquitto_broker.url)
    topic = "kioskmatch/v1/kiosks/burst-k1/appraisals"
    payloads = [(f"{i:06d}".encode() * 800)[: 4000 + i] for i in range(400)]
    got: list[bytes] = []
    done = threading.Event()

    def on_message(msg: mqtt.MQTTMessage) -> None:
        got.append(bytes(msg.payload))
        connection.ack(msg.mid, msg.qos)
        if len(got) == len(payloads):
            done.set()

    connection = MqttConnection(
        endpoint, client_id="read-ahead-test", subscriptions=[topic], on_message=on_message
    )
    connection.start()
    connection.stop()  # the broker keeps the session and queues what comes meanwhile
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="read-ahead-publisher")
    publisher.connect(endpoint.host, endpoint.port)
    publisher.loop_start()
    try:
        for payload in payloads:
            publisher.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    connection = MqttConnection(
        endpoint, client_id="read-ahead-test", subscriptions=[topic], on_message=on_message
    )
    connection.start()
    try:
        assert done.wait(30), f"{len(got)} of {len(payloads)} arrived"
        assert isinstance(connection.client._sock, ReadAheadSocket)  # what was under test
        # Most came as whole packets out of the buffer, the rest through paho's own reader.
        assert taken.count(0x32) > len(payloads) // 2
    finally:
        connection.stop()
    assert got == payloads


def test_whole_packets_are_taken_from_the_buffer_and_partial_ones_left() -> None:
    """What the client's reader takes between paho's packets: (first byte, length, the rest)."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    sock = ReadAheadSocket(ours)
    big = bytes(range(256)) * 2  # 512 bytes: a two-byte remaining length
    try:
        assert sock.take_packet() is None  # nothing buffered
        theirs.sendall(b"\x30\x05hello" + b"\xd0\x00" + b"\x32\x80\x04" + big + b"\x30\x09par")
        time.sleep(0.05)
        # paho reads a packet through its own reader (the client takes whole packets only
        # between two of paho's, where the buffer is at a packet boundary):
        assert sock.recv(1) == b"\x30"
        assert sock.recv(1) == b"\x05" and sock.recv(5) == b"hello"
        assert sock.take_packet() == (0xD0, 0, bytearray())  # PINGRESP
        assert sock.take_packet() == (0x32, 512, bytearray(big))
        assert sock.take_packet() is None  # cut short: left for paho
        assert sock.pending() == 5
        assert sock.recv(5) == b"\x30\x09par"
        theirs.sendall(b"\x30\xff\xff\xff\xff\x01")  # five length bytes: malformed
        time.sleep(0.05)
        assert sock.recv(1) == b"\x30"
        sock._position -= 1  # as if paho had not read it
        assert sock.take_packet() is None  # paho's reader reports it
    finally:
        sock.close()
        theirs.close()
