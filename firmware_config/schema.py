"""The kiosk configuration schema (schema_version 1). Unknown keys are refused everywhere."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from edge.camera.config import CameraConfig
from edge.protocol import MqttEndpoint, ProtocolError
from edge.protocol.topics import KIOSK_ID_PATTERN

CURRENT_SCHEMA_VERSION = 1


class Strict(BaseModel):
    # NaN and infinity pass no bound usefully (``.inf`` seconds is no period at all).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _file_path(value: Any) -> Any:
    """A file's path as written: not blank (``Path("")`` is the current folder) and not a
    folder (``var/kiosk/``, ``.``); pydantic then makes it a Path."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("the path is empty: give the file's path")
        if value.endswith(("/", "\\")) or Path(value).name in ("", ".", ".."):
            raise ValueError(f"{value!r} names a folder: give a file's path in it")
    return value


FilePath = Annotated[Path, BeforeValidator(_file_path)]


def _device(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("the port is empty: give the adapter's device, e.g. /dev/ttyUSB0")
        if value != value.strip():
            raise ValueError(f"{value!r} has spaces around it: remove them")
    return value


DevicePort = Annotated[str, BeforeValidator(_device)]
# ELM327 protocol numbers (ATSP): 0 searches; 1-9 are the OBD-II buses the kiosk reads;
# A is SAE J1939 (heavy-duty), B and C are user-defined CAN settings.
_OBD_PROTOCOL = re.compile(r"[0-9]")
_UNREAD_PROTOCOLS = {
    "A": "SAE J1939 (heavy-duty vehicles), which the kiosk does not read",
    "B": "a user-defined CAN setting (ATPB), which the kiosk does not read",
    "C": "a user-defined CAN setting (ATPB), which the kiosk does not read",
}


class MqttConfig(Strict):
    url: str = Field(
        "mqtt://127.0.0.1:1883",
        description="Broker URL, mqtt://[user:pass@]host:port or mqtts://host:port",
    )
    ca: FilePath | None = Field(None, description="CA bundle that signed the broker's certificate")
    cert: FilePath | None = Field(None, description="This kiosk's X.509 certificate (mqtts)")
    key: FilePath | None = Field(None, description="This kiosk's private key (mqtts)")
    keepalive_s: Annotated[int, Field(ge=5, le=600)] = Field(30, description="MQTT keepalive")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            MqttEndpoint.parse(value)
        except ProtocolError as exc:
            raise ValueError(exc.reason) from None
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> MqttConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both cert and key for mqtts, or neither")
        return self


class SerialObd(Strict):
    type: Literal["serial"] = "serial"
    port: DevicePort = Field("/dev/ttyUSB0", description="Serial device of a USB ELM327 adapter")
    baudrate: Annotated[int, Field(ge=9600, le=2_000_000)] | None = Field(
        None, description="Fixed baud rate; unset: detect (38400 and 115200 are common)"
    )


class BluetoothObd(Strict):
    type: Literal["bluetooth"] = "bluetooth"
    port: DevicePort = Field("/dev/rfcomm0", description="RFCOMM device bound to the adapter")
    baudrate: Annotated[int, Field(ge=9600, le=2_000_000)] | None = Field(
        None, description="Fixed baud rate of the RFCOMM link; unset: detect"
    )


class TcpObd(Strict):
    type: Literal["tcp"] = "tcp"
    host: str = Field("192.168.0.10", description="Wi-Fi adapter address")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(35000, description="Wi-Fi adapter port")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the host is empty: give the adapter's address, e.g. 192.168.0.10")
        if any(c.isspace() for c in value) or any(c in value for c in "/@[]?#"):
            raise ValueError(
                f"{value!r} is not a host name or address: write only the host, e.g. "
                "192.168.0.10 (the port goes in port)"
            )
        if value.count(":") == 1:
            raise ValueError(f"{value!r} includes a port: write the port in port")
        if ":" in value:
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a valid IPv6 address") from None
        return value


ObdTransport = Annotated[SerialObd | BluetoothObd | TcpObd, Field(discriminator="type")]


class ObdConfig(Strict):
    transport: ObdTransport = Field(default_factory=SerialObd)
    timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        60.0, description="Budget for one whole vehicle read"
    )
    protocol: str | None = Field(
        None,
        description="Pinned ELM327 protocol number, 1 to 9 (e.g. '6' for CAN 11-bit 500 kbaud);"
        " unset or 0: automatic search",
    )

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `protocol: 6` written without quotes
        if not isinstance(value, str):
            return value if value is None else _bad_protocol(value)
        number = value.strip().upper()
        if number in _UNREAD_PROTOCOLS:
            raise ValueError(
                f"ELM327 protocol {number} is {_UNREAD_PROTOCOLS[number]}; pin one of 1 to 9,"
                " or leave protocol unset to search"
            )
        if not _OBD_PROTOCOL.fullmatch(number):
            _bad_protocol(value)
        return None if number == "0" else number

    @property
    def port_url(self) -> str:
        """What the OBD reader opens: a device path or socket://host:port."""
        t = self.transport
        if isinstance(t, TcpObd):
            host = f"[{t.host}]" if ":" in t.host else t.host
            return f"socket://{host}:{t.port}"
        return t.port

    @property
    def baudrate(self) -> int | None:
        """The serial link's fixed baud rate, or None to detect it (always None over TCP)."""
        t = self.transport
        return None if isinstance(t, TcpObd) else t.baudrate


def _bad_protocol(value: object) -> NoReturn:
    raise ValueError(
        f"{value!r} is not an ELM327 protocol number the kiosk reads: pin one of 1 to 9"
        " (6 is CAN 11-bit 500 kbaud, the usual one since 2008), or leave protocol unset to search"
    )


class OutboxConfig(Strict):
    path: FilePath = Field(Path("var/kiosk/outbox.db"), description="SQLite outbox file")
    max_bytes: Annotated[int, Field(ge=1_000_000)] = Field(
        200_000_000, description="Telemetry is dropped (oldest first) past this; appraisals never"
    )
    max_age_s: Annotated[float, Field(ge=60)] = Field(
        7 * 86400, description="Telemetry older than this is dropped; appraisals never"
    )
    resend_after_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        10.0, description="Resend a message not receipted after this long (then backoff)"
    )


class GatewayHttpConfig(Strict):
    """The gateway's HTTP API, where the kiosk uploads photos."""

    url: str = Field(description="Base URL, e.g. https://gateway.example.com")
    api_key: str = Field(
        min_length=8, description="A kiosk key from `gateway create-key --role kiosk`"
    )
    ca: FilePath | None = Field(None, description="CA bundle for https, when not the system's")
    chunk_bytes: Annotated[int, Field(ge=16_384, le=16_777_216)] = Field(
        262_144, description="Upload chunk size; a broken upload resumes from the last chunk"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")


class KioskConfig(Strict):
    """A kiosk's whole configuration (defaults, then per-site, then per-kiosk YAML)."""

    schema_version: Literal[1] = Field(1, description="Configuration schema version")
    kiosk_id: str = Field(pattern=KIOSK_ID_PATTERN, description="This kiosk's id, e.g. dlr-042-k1")
    site: str | None = Field(None, max_length=128, description="Dealer site name")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    obd: ObdConfig = Field(default_factory=ObdConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    camera: CameraConfig | None = Field(
        None, description="Photo capture; unset: appraisals carry no photos"
    )
    gateway: GatewayHttpConfig | None = Field(
        None, description="Where photos are uploaded; required when a camera is configured"
    )
    heartbeat_s: Annotated[float, Field(ge=1, le=3600)] = Field(
        60.0, description="Telemetry period"
    )
    config_version: str = Field("1", max_length=64, description="Reported in every heartbeat")

    @model_validator(mode="after")
    def _cross_checks(self) -> KioskConfig:
        return _camera_needs_gateway(self)


def _camera_needs_gateway(config: KioskConfig) -> KioskConfig:
    if config.camera is not None and config.gateway is None:
        raise ValueError(
            "a camera is configured but no gateway: add a gateway section (url, api_key) so "
            "photos can be uploaded"
        )
    return config
