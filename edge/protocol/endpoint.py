"""Broker addresses as both sides write them: ``mqtt://[user:pass@]host:port`` or ``mqtts://``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from edge.protocol.errors import ProtocolError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttEndpoint:
        """Parse a broker URL; raise ``ProtocolError`` naming the problem and the expected form."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            raise ProtocolError(
                f"broker URL {url!r} must start with mqtt:// or mqtts:// "
                "(for example mqtt://127.0.0.1:1883)"
            )
        if not parts.hostname:
            raise ProtocolError(f"broker URL {url!r} has no host")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ProtocolError(f"broker URL {url!r} has an invalid port") from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def redacted(self) -> str:
        """The URL with any password hidden, for logs."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"
