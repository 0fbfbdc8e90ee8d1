"""The kiosk's durable outbox: messages wait here until the gateway's receipt arrives."""

from edge.outbox.sqlite import (
    CommandRecord,
    CommandState,
    OutboxError,
    OutboxFullError,
    OutboxInUseError,
    OutboxItem,
    OutboxStorageError,
    Priority,
    SqliteOutbox,
)

__all__ = [
    "CommandRecord",
    "CommandState",
    "OutboxError",
    "OutboxFullError",
    "OutboxInUseError",
    "OutboxItem",
    "OutboxStorageError",
    "Priority",
    "SqliteOutbox",
]
