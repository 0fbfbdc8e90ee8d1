"""The kiosk's durable outbox: messages wait here until the gateway's receipt arrives."""

from edge.outbox.sqlite import OutboxFullError, OutboxItem, Priority, SqliteOutbox

__all__ = ["OutboxFullError", "OutboxItem", "Priority", "SqliteOutbox"]
