"""The HTTP API: app factory, dependencies, routers per audience, problem+json errors."""

from gateway.api.app import create_app

__all__ = ["create_app"]
