"""The list of subcommand registrars (one per area)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kioskmatch.cli import Registrar

REGISTRARS: list[Registrar] = []
