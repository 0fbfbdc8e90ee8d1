"""What a gateway process shares between its HTTP app and its ingest worker."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.photos import PhotoStore
from gateway.services.keys import Principal
from gateway.services.sealing import Sealer
from gateway.services.webhook_policy import DEFAULT_POLICY, Resolver, WebhookPolicy, resolve_host


class Link(Protocol):
    """The part of the MQTT connection the services use to send commands."""

    @property
    def connected(self) -> bool: ...

    @property
    def ingesting(self) -> bool:
        """Whether the threads that store what arrives are running."""
        ...

    def publish(self, topic: str, payload: bytes) -> None: ...

    def next_seq(self) -> int: ...


class PrincipalCache:
    """Recently authenticated keys, so a lender polling every second costs no key lookup.

    A revoked key stops working within ``ttl_s``; unknown keys are not cached.
    """

    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, lookup: Callable[[str], Principal | None]) -> Principal | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = lookup(token)
        if principal is not None:
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[digest] = (now + self.ttl_s, principal)
        return principal


@dataclass
class GatewayContext:
    engine: Engine
    sealer: Sealer
    link: Link | None = None
    photos: PhotoStore | None = None
    command_ttl: timedelta = field(default_factory=lambda: timedelta(minutes=15))
    kiosk_silent_after: timedelta = field(default_factory=lambda: timedelta(minutes=3))
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    webhook_policy: WebhookPolicy = DEFAULT_POLICY
    webhook_resolver: Resolver = resolve_host

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)
