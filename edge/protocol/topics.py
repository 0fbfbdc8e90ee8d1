"""MQTT topic names: build and parse ``kioskmatch/v1/kiosks/{kiosk_id}/{channel}``."""

from __future__ import annotations

import functools
import re
from enum import StrEnum
from typing import NamedTuple

from edge.protocol.errors import ProtocolError

TOPIC_ROOT = "kioskmatch/v1/kiosks"
KIOSK_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,63}$"
_KIOSK_ID_RE = re.compile(KIOSK_ID_PATTERN)


class Channel(StrEnum):
    """The per-kiosk topics. Every one is QoS 1; only ``status`` is retained."""

    APPRAISALS = "appraisals"
    TELEMETRY = "telemetry"
    EVENTS = "events"
    STATUS = "status"
    COMMANDS = "commands"
    RECEIPTS = "receipts"


#: Channels a kiosk publishes on (the gateway subscribes to these).
UPSTREAM: tuple[Channel, ...] = (
    Channel.APPRAISALS,
    Channel.TELEMETRY,
    Channel.EVENTS,
    Channel.STATUS,
)
#: Channels the gateway publishes on (a kiosk subscribes to its own).
DOWNSTREAM: tuple[Channel, ...] = (Channel.COMMANDS, Channel.RECEIPTS)


class ParsedTopic(NamedTuple):
    kiosk_id: str
    channel: Channel


def is_valid_kiosk_id(kiosk_id: str) -> bool:
    """True when ``kiosk_id`` matches ``[a-z0-9][a-z0-9-]{2,63}``."""
    return bool(_KIOSK_ID_RE.fullmatch(kiosk_id))


def topic_for(kiosk_id: str, channel: Channel) -> str:
    """The topic a message for ``kiosk_id`` on ``channel`` travels on."""
    if not is_valid_kiosk_id(kiosk_id):
        raise ProtocolError(
            f"invalid kiosk id {kiosk_id!r}: use 3-64 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return f"{TOPIC_ROOT}/{kiosk_id}/{channel.value}"


def subscription(channel: Channel, shared_group: str | None = None) -> str:
    """The wildcard subscription for ``channel`` across all kiosks, shared when a group is set."""
    pattern = f"{TOPIC_ROOT}/+/{channel.value}"
    return f"$share/{shared_group}/{pattern}" if shared_group else pattern


# Remembered: the gateway parses the topic of every message, and a fleet has a few topics per
# kiosk. Bounded, so a flood of made-up topics only churns it; errors are not remembered.
@functools.lru_cache(maxsize=4096)
def parse_topic(topic: str) -> ParsedTopic:
    """Split a kiosk topic into its kiosk id and channel; raise ``ProtocolError`` otherwise."""
    prefix = TOPIC_ROOT + "/"
    if not topic.startswith(prefix):
        raise ProtocolError(f"topic {topic!r} is not under {TOPIC_ROOT}/")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2:
        raise ProtocolError(f"topic {topic!r} is not {TOPIC_ROOT}/{{kiosk_id}}/{{channel}}")
    kiosk_id, channel = parts
    if not is_valid_kiosk_id(kiosk_id):
        raise ProtocolError(f"topic {topic!r} has an invalid kiosk id {kiosk_id!r}")
    try:
        return ParsedTopic(kiosk_id, Channel(channel))
    except ValueError:
        raise ProtocolError(f"topic {topic!r} has an unknown channel {channel!r}") from None
