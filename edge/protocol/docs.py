"""JSON Schema export and the generated ``docs/protocol.md``."""

from __future__ import annotations

import json
from typing import Any, cast

from edge.protocol.messages import MAX_PAYLOAD_BYTES, SCHEMAS, Envelope
from edge.protocol.topics import TOPIC_ROOT, Channel


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each whole message (envelope with its body), keyed by schema name."""
    out: dict[str, dict[str, Any]] = {}
    for name, (_, body_type) in SCHEMAS.items():
        schema: dict[str, Any] = cast(Any, Envelope)[body_type].model_json_schema(by_alias=True)
        schema["title"] = name
        out[name] = schema
    return out


_DIRECTION = {
    Channel.APPRAISALS: ("kiosk → gateway", "no"),
    Channel.TELEMETRY: ("kiosk → gateway", "no"),
    Channel.EVENTS: ("kiosk → gateway", "no"),
    Channel.STATUS: ("kiosk → gateway", "yes"),
    Channel.COMMANDS: ("gateway → kiosk", "no"),
    Channel.RECEIPTS: ("gateway → kiosk", "no"),
}


def protocol_markdown() -> str:
    """The text of ``docs/protocol.md``; a test keeps the committed file equal to it."""
    lines = [
        "# kioskmatch wire protocol",
        "",
        "Generated from `edge/protocol` by `kioskmatch protocol docs`; do not edit by hand.",
        "",
        f"Topics live under `{TOPIC_ROOT}/{{kiosk_id}}/`; every message is QoS 1, UTF-8 JSON of "
        f"at most {MAX_PAYLOAD_BYTES} bytes, in the envelope below. Readers ignore fields they "
        "do not know; an unknown schema or major version is a dead letter "
        '("unsupported schema"). No string may hold U+0000 (NUL): such a message is a dead '
        "letter too.",
        "",
        "| topic | direction | retained | schema |",
        "|---|---|---|---|",
    ]
    for name, (channel, _) in SCHEMAS.items():
        direction, retained = _DIRECTION[channel]
        lines.append(f"| `{channel.value}` | {direction} | {retained} | `{name}` |")
    lines += [
        "",
        "Delivery is end to end: the kiosk keeps each message in its outbox until a",
        "`kioskmatch.receipt/1` naming its `message_id` arrives; the gateway commits before it",
        "receipts, and receipts again a `message_id` it already has.",
        "",
    ]
    for name, schema in json_schemas().items():
        lines += [
            f"## `{name}`",
            "",
            "```json",
            json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False),
            "```",
            "",
        ]
    return "\n".join(lines)
