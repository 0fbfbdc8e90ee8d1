"""What a gateway process shares between its HTTP app and its ingest worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.photos import PhotoStore
from gateway.services.sealing import Sealer


class Link(Protocol):
    """The part of the MQTT connection the services use to send commands."""

    @property
    def connected(self) -> bool: ...

    def publish(self, topic: str, payload: bytes) -> None: ...

    def next_seq(self) -> int: ...


@dataclass
class GatewayContext:
    engine: Engine
    sealer: Sealer
    link: Link | None = None
    photos: PhotoStore | None = None
    command_ttl: timedelta = field(default_factory=lambda: timedelta(minutes=15))

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)
