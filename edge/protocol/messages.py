"""The envelope and the non-appraisal bodies, plus encode/decode of whole messages.

Every message is UTF-8 JSON of at most ``MAX_PAYLOAD_BYTES``::

    {"schema": "kioskmatch.<kind>/<major>", "message_id": UUID, "kiosk_id": ...,
     "seq": int | absent on status, "created_at": RFC 3339 UTC, "body": {...}}
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar, cast

from pydantic import (
    AwareDatetime,
    Field,
    ValidationError,
    field_serializer,
    model_validator,
)

from edge.protocol.appraisal import INT64_MAX, AppraisalBody, UUIDStr, WireModel
from edge.protocol.errors import PayloadTooLargeError, ProtocolError, UnsupportedSchemaError
from edge.protocol.topics import KIOSK_ID_PATTERN, Channel, ParsedTopic, parse_topic

MAX_PAYLOAD_BYTES = 256 * 1024


class TelemetryBody(WireModel):
    uptime_s: float = Field(ge=0)
    cpu_percent: float | None = Field(None, ge=0)
    memory_percent: float | None = Field(None, ge=0, le=100)
    disk_free_bytes: int | None = Field(None, ge=0)
    temperature_c: float | None = None
    outbox_depth: int = Field(0, ge=0)
    outbox_oldest_age_s: float | None = Field(None, ge=0)
    disk_alarm: bool = False
    model_versions: dict[str, str] = Field(default_factory=dict)
    config_version: str | None = None
    obd_adapter_state: str | None = None
    agent_version: str | None = Field(None, max_length=64)


class EventKind(StrEnum):
    COMMAND_ACCEPTED = "command_accepted"
    COMMAND_REJECTED = "command_rejected"
    COMMAND_DONE = "command_done"
    COMMAND_FAILED = "command_failed"
    INSPECTION_PROGRESS = "inspection_progress"


class EventBody(WireModel):
    kind: EventKind
    command_id: str | None = None
    appraisal_id: str | None = None
    state: str | None = Field(None, description="Inspection state, for progress events")
    detail: str | None = None


class KioskState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    STOPPED = "stopped"


class StatusBody(WireModel):
    state: KioskState
    agent_version: str | None = Field(None, max_length=64)


class CommandKind(StrEnum):
    START_APPRAISAL = "start_appraisal"
    CONFIG_UPDATE = "config_update"
    MODEL_UPDATE = "model_update"


class CommandBody(WireModel):
    command_id: UUIDStr
    kind: CommandKind
    expires_at: AwareDatetime
    params: dict[str, Any] = Field(default_factory=dict)


class ReceiptBody(WireModel):
    message_ids: list[UUIDStr] = Field(min_length=1, description="Committed by the gateway")


BodyT = TypeVar("BodyT", bound=WireModel)


class Envelope(WireModel, Generic[BodyT]):
    schema_: str = Field(alias="schema", pattern=r"^kioskmatch\.[a-z]+/[0-9]+$")
    message_id: UUIDStr
    kiosk_id: str = Field(pattern=KIOSK_ID_PATTERN)
    seq: int | None = Field(None, ge=0, le=INT64_MAX)
    created_at: AwareDatetime
    body: BodyT

    model_config = WireModel.model_config | {"populate_by_name": True}

    @field_serializer("created_at")
    def _utc(self, value: datetime) -> str:
        return _rfc3339(value)

    @model_validator(mode="after")
    def _seq_rule(self) -> Envelope[BodyT]:
        if self.schema_.startswith("kioskmatch.status/"):
            if self.seq is not None:
                raise ValueError("status messages carry no seq")
        elif self.seq is None:
            raise ValueError("seq is required on every message but status")
        return self


SCHEMAS: dict[str, tuple[Channel, type[WireModel]]] = {
    "kioskmatch.appraisal/1": (Channel.APPRAISALS, AppraisalBody),
    "kioskmatch.telemetry/1": (Channel.TELEMETRY, TelemetryBody),
    "kioskmatch.event/1": (Channel.EVENTS, EventBody),
    "kioskmatch.status/1": (Channel.STATUS, StatusBody),
    "kioskmatch.command/1": (Channel.COMMANDS, CommandBody),
    "kioskmatch.receipt/1": (Channel.RECEIPTS, ReceiptBody),
}
SCHEMA_FOR_CHANNEL: dict[Channel, str] = {ch: name for name, (ch, _) in SCHEMAS.items()}

AnyEnvelope = Envelope[Any]


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_ms(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


def utc_now() -> datetime:
    """Now in UTC, to the millisecond (the wire's precision, so a message equals its decoding)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_id() -> str:
    return str(uuid.uuid4())


def make_envelope(
    kiosk_id: str,
    body: BodyT,
    *,
    seq: int | None,
    message_id: str | None = None,
    created_at: datetime | None = None,
) -> Envelope[BodyT]:
    """A new envelope for ``body``; its schema follows from the body's type."""
    schema = next((name for name, (_, cls) in SCHEMAS.items() if isinstance(body, cls)), None)
    if schema is None:
        raise ProtocolError(f"{type(body).__name__} is not a message body")
    envelope_type = cast(Any, Envelope)[type(body)]
    result: Envelope[BodyT] = envelope_type(
        schema=schema,
        message_id=message_id or new_id(),
        kiosk_id=kiosk_id,
        seq=seq,
        created_at=_to_ms(created_at) if created_at else utc_now(),
        body=body,
    )
    return result


def encode(envelope: Envelope[Any]) -> bytes:
    """UTF-8 JSON bytes for the wire; raises ``PayloadTooLargeError`` past the limit."""
    # ``seq`` is absent (not null) on status messages, as the contract says.
    exclude = {"seq"} if envelope.seq is None else None
    data = envelope.model_dump_json(by_alias=True, exclude=exclude).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"payload is {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES}"
        )
    return data


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_KIOSK_ID = re.compile(KIOSK_ID_PATTERN)


def encode_receipt(
    kiosk_id: str,
    message_ids: Sequence[str],
    *,
    seq: int,
    message_id: str | None = None,
    created_at: datetime | None = None,
) -> bytes:
    """The bytes of ``encode(make_envelope(kiosk_id, ReceiptBody(message_ids=...), seq=seq))``.

    The same checks and the same bytes, without building the models: the gateway sends a receipt
    per kiosk per committed batch, and the models cost more than the commit's share of it.
    Raises ``ProtocolError`` for an id, kiosk id or seq the models would refuse.
    """
    if not message_ids:
        raise ProtocolError("a receipt names at least one message_id")
    bad = next((m for m in message_ids if not _UUID.fullmatch(m)), None)
    if bad is not None:
        raise ProtocolError(f"{bad!r} is not a lower-case UUID")
    if not _KIOSK_ID.fullmatch(kiosk_id):
        raise ProtocolError(f"{kiosk_id!r} is not a kiosk id")
    if not 0 <= seq <= INT64_MAX:
        raise ProtocolError(f"seq must be from 0 to {INT64_MAX}")
    envelope = {
        "schema": SCHEMA_FOR_CHANNEL[Channel.RECEIPTS],
        "message_id": message_id or new_id(),
        "kiosk_id": kiosk_id,
        "seq": seq,
        "created_at": _rfc3339(_to_ms(created_at) if created_at else utc_now()),
        "body": {"message_ids": list(message_ids)},
    }
    data = json.dumps(envelope, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"payload is {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES}"
        )
    return data


_SCHEMA_PEEK = re.compile(rb'"schema"\s*:\s*"([^"\\]{1,64})"')
# ``\u0000`` escaped in JSON: after an even number of backslashes (an odd one is an escaped
# backslash followed by the text "u0000").
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_ENVELOPE_TYPES: dict[str, Any] = {
    name: cast(Any, Envelope)[body_type] for name, (_, body_type) in SCHEMAS.items()
}


def decode(topic: str, payload: bytes) -> Envelope[Any]:
    """Parse and validate a message received on ``topic``.

    Raises ``ProtocolError`` (with a ``reason`` fit for a dead letter) when the topic, the JSON, the
    schema, the body or the kiosk id do not satisfy the contract.
    """
    parsed_topic = parse_topic(topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}"
        )
    # No field has a use for U+0000, and PostgreSQL text cannot hold it: refused here, the
    # message is a dead letter instead of a commit that fails. Scanned for first (fast: most
    # payloads hold no backslash at all, and one memchr says so).
    if b"\x00" in payload or (
        b"\\" in payload and b"\\u0000" in payload and _NUL_ESCAPE.search(payload)
    ):
        raise ProtocolError("payload holds a NUL character (U+0000), which no field may contain")
    # One pass in the common case: find the schema without parsing, then validate the bytes.
    # When that fails, or found a "schema" that is not the envelope's (say, a key nested in a
    # body that comes first), parse the whole payload to be sure and to name the problem.
    peek = _SCHEMA_PEEK.search(payload)
    if peek is not None:
        schema = peek.group(1).decode("ascii", "replace")
        try:
            envelope = _validate(parsed_topic, schema, payload)
        except ProtocolError:
            pass
        else:
            if envelope.schema_ == schema:
                return envelope
    return _validate(parsed_topic, _schema_slow(payload), payload)


def _validate(parsed_topic: ParsedTopic, schema: str, payload: bytes) -> Envelope[Any]:
    entry = SCHEMAS.get(schema)
    if entry is None:
        raise UnsupportedSchemaError(f"unsupported schema {schema!r}")
    if entry[0] is not parsed_topic.channel:
        raise ProtocolError(
            f"schema {schema!r} does not belong on the {parsed_topic.channel.value!r} topic"
        )
    try:
        # Strict: a wrong JSON type ("12" for a number) is an error, not something to coerce.
        envelope: Envelope[Any] = _ENVELOPE_TYPES[schema].model_validate_json(payload, strict=True)
    except ValidationError as exc:
        raise ProtocolError(_describe(exc)) from None
    if envelope.kiosk_id != parsed_topic.kiosk_id:
        raise ProtocolError(
            f"kiosk_id {envelope.kiosk_id!r} in the body does not match the topic's "
            f"{parsed_topic.kiosk_id!r}"
        )
    return envelope


def _schema_slow(payload: bytes) -> str:
    """The envelope's schema, parsing the whole payload; raises naming what is wrong."""
    try:
        # Numbers stay text here (only the schema is wanted): a 5,000-digit number would stop
        # int() before validation could name the field that holds it.
        raw = json.loads(
            payload.decode("utf-8"), parse_int=str, parse_float=str, parse_constant=str
        )
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"payload is not JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise ProtocolError("payload is not JSON this reader accepts: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ProtocolError("payload is not a JSON object")
    schema = raw.get("schema")
    if not isinstance(schema, str):
        raise ProtocolError("envelope has no 'schema' string")
    return schema


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    suffix = f" (and {more} more)" if more > 0 else ""
    return "invalid message: " + "; ".join(parts) + suffix
