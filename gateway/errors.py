"""Gateway domain errors; ``gateway.api.problems`` maps each to an HTTP status in one place.

GatewayError
 +-- BadRequestError      the request is malformed (e.g. a cursor that was not ours)
 +-- NotFoundError        the thing does not exist (or the caller may not see it)
 +-- ForbiddenError       the caller's role or organisation may not do this
 +-- InvalidRequestError  the request is well-formed JSON but cannot be done as asked
 +-- ConflictError        the request clashes with the current state
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of the gateway's domain errors; ``detail`` is a sentence for the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequestError(GatewayError):
    pass


class NotFoundError(GatewayError):
    pass


class ForbiddenError(GatewayError):
    pass


class InvalidRequestError(GatewayError):
    pass


class ConflictError(GatewayError):
    pass
