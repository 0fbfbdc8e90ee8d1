"""Errors raised by the wire contract.

ProtocolError            a topic or payload that does not satisfy the contract
 +-- UnsupportedSchemaError    a schema name or major version this reader does not know
 +-- PayloadTooLargeError      a payload over MAX_PAYLOAD_BYTES
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """A message or topic that breaks the contract. ``reason`` is a sentence for a dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedSchemaError(ProtocolError):
    """The envelope names a schema (or major version) this reader does not know."""


class PayloadTooLargeError(ProtocolError):
    """The payload is larger than the contract allows."""
