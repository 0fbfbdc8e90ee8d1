"""The kiosk's durable outbox: messages wait here until the gateway's receipt arrives."""

from edge.outbox.sqlite import (
    OutboxFullError,
    OutboxInUseError,
    OutboxItem,
    Priority,
    SqliteOutbox,
)

__all__ = ["OutboxFullError", "OutboxInUseError", "OutboxItem", "Priority", "SqliteOutbox"]
