"""A gateway's MQTT link, recorded instead of sent, and an API context that uses it."""

from __future__ import annotations

import base64
from pathlib import Path

from edge.protocol import decode
from gateway.context import GatewayContext
from gateway.db import make_engine, migrate
from gateway.services.sealing import Sealer


class FakeLink:
    """Keeps what the gateway publishes; connected, and ingesting, until a test says not."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.connected = True
        self.ingesting = True

    def publish(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, payload))

    def next_seq(self) -> int:
        return len(self.sent) + 1

    def command_ids(self) -> list[str]:
        return [decode(topic, payload).body.command_id for topic, payload in self.sent]


def linked_context(database: Path, link: FakeLink | None = None) -> GatewayContext:
    """A gateway context on a new, migrated SQLite database at ``database``, publishing to
    ``link`` (a new :class:`FakeLink` by default). Dispose of its engine when done."""
    engine = make_engine(f"sqlite:///{database}")
    migrate(engine)
    return GatewayContext(
        engine=engine,
        sealer=Sealer(base64.urlsafe_b64encode(b"k" * 32)),
        link=link if link is not None else FakeLink(),
    )
