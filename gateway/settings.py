"""Gateway settings, read once at start from ``KIOSKMATCH_*`` environment variables."""

from __future__ import annotations

import logging
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.protocol import MqttEndpoint, ProtocolError

logger = logging.getLogger(__name__)


_DATABASE_URL_HELP = (
    "use sqlite:///relative/path.db, sqlite:////absolute/path.db or "
    "postgresql://user:password@host:port/database"
)


def _sqlalchemy_url(url: str) -> str:
    """``url`` for SQLAlchemy: psycopg 3 for PostgreSQL; ``ValueError`` for what we cannot use.

    The message never repeats the URL, which may hold a password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            url = "postgresql+psycopg://" + url[len(plain) :]
    try:
        drivername = make_url(url).drivername
    except (ArgumentError, ValueError):
        raise ValueError(f"not a database URL; {_DATABASE_URL_HELP}") from None
    if drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError(
            f"{drivername!r} is not a database kioskmatch runs on (SQLite, or PostgreSQL "
            f"through psycopg 3); {_DATABASE_URL_HELP}"
        )
    return url


class Mode(StrEnum):
    DEV = "dev"
    PRODUCTION = "production"


class GatewaySettings(BaseSettings):
    """Every field can be set as ``KIOSKMATCH_<NAME>``; see the README's settings table."""

    model_config = SettingsConfigDict(
        env_prefix="KIOSKMATCH_", env_file=".env", extra="ignore", validate_default=True
    )

    mode: Mode = Field(Mode.DEV, description="dev generates a secret key; production requires one")
    data_dir: Path = Field(Path("var"), description="Where the SQLite database and keys live")
    mqtt_url: str | None = Field(
        None, description="mqtt://[user:pass@]host:port or mqtts://...; unset: embedded broker"
    )
    mqtt_ca: Path | None = Field(None, description="CA bundle for mqtts://")
    mqtt_cert: Path | None = Field(None, description="Client certificate for mqtts://")
    mqtt_key: Path | None = Field(None, description="Client key for mqtts://")
    mqtt_shared_group: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Shared-subscription group"
    )
    worker_id: str = Field(
        "w1", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="Client id suffix: gateway-{worker_id}"
    )
    database_url: str | None = Field(
        None, description="sqlite:///path or postgresql://...; unset: SQLite under data_dir"
    )
    http_host: str = Field("127.0.0.1", description="HTTP listen address")
    http_port: Annotated[int, Field(ge=0, le=65535)] = Field(8000, description="HTTP port")
    secret_key: SecretStr | None = Field(
        None, description="Key that encrypts personal data (urlsafe base64, 32 bytes)"
    )
    photo_dir: Path | None = Field(
        None, description="Where photos are stored; unset: data_dir/photos"
    )
    history_retention_days: Annotated[float, Field(gt=0, le=3650)] = Field(
        30.0, description="How long kiosk presence and heartbeat history is kept"
    )
    command_ttl_s: Annotated[float, Field(gt=0, le=7 * 86400)] = Field(
        900.0, description="How long a command waits for an offline kiosk before it expires"
    )
    kiosk_silent_after_s: Annotated[float, Field(gt=0, le=7 * 86400)] = Field(
        180.0,
        description="A kiosk whose presence is online but that has sent nothing for this long "
        "(three 60 s heartbeats) is reported silent: one that lost power while the broker was "
        "down never gets its last will published",
    )
    webhook_allow_http: bool = Field(
        False,
        description="Accept plain http:// webhook URLs (local receivers in tests and demos); "
        "off: https only, since a match holds personal data",
    )
    webhook_allow_private_networks: bool = Field(
        False,
        description="Deliver webhooks to loopback and private addresses (127/8, ::1, 10/8, "
        "172.16/12, 192.168/16, 100.64/10, fc00::/7): tests, demos, or receivers on the "
        "operator's own network. Off: public addresses only. Link-local (169.254/16, the cloud "
        "metadata service), multicast, unspecified and reserved addresses are always refused",
    )
    webhook_proxy: str | None = Field(
        None,
        description="An http(s)://host:port proxy that webhook deliveries go through; unset: "
        "they connect directly, ignoring HTTP_PROXY/HTTPS_PROXY",
    )

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value:
            try:
                MqttEndpoint.parse(value)
            except ProtocolError as exc:
                raise ValueError(exc.reason) from None
        return value or None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value:
            _sqlalchemy_url(value)
        return value or None

    @field_validator("webhook_proxy")
    @classmethod
    def _check_webhook_proxy(cls, value: str | None) -> str | None:
        if value:
            # The message never repeats the URL, which may hold a password.
            parts = urlsplit(value)
            try:
                port = parts.port
            except ValueError:
                port = 0
            if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
                raise ValueError(
                    "not a proxy URL; use http://host:port or https://host:port "
                    "(user:password@ before the host if the proxy needs them)"
                )
        return value or None

    @model_validator(mode="after")
    def _production_needs_key(self) -> GatewaySettings:
        if self.mode is Mode.PRODUCTION and self.secret_key is None:
            raise ValueError(
                "KIOSKMATCH_SECRET_KEY is required in production mode: generate one with "
                "`python -c 'import secrets,base64;print(base64.urlsafe_b64encode("
                "secrets.token_bytes(32)).decode())'` and keep it in your secret store"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: psycopg 3 for PostgreSQL, SQLite under data_dir by default."""
        return _sqlalchemy_url(self.database_url or f"sqlite:///{self.data_dir / 'kioskmatch.db'}")

    def resolved_secret_key(self) -> bytes:
        """The data-encryption key; in dev mode one is generated into data_dir with a warning."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_bytes().strip()
        import base64

        key = base64.urlsafe_b64encode(secrets.token_bytes(32))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(key)
        logger.warning(
            "no KIOSKMATCH_SECRET_KEY set: generated a development key at %s; "
            "set KIOSKMATCH_SECRET_KEY (and KIOSKMATCH_MODE=production) before real use",
            path,
        )
        return key
