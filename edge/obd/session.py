"""python-obd carries the session: ``obd.OBD`` driven over kioskmatch's :class:`ElmLink`.

python-obd 0.7.3 has no command for the odometer (PID 0xA6) or permanent DTCs (mode 0A), damages
VINs (it strips 0/1/2 from both ends), and cannot send several PIDs in one request. So the
session issues kioskmatch's own ``obd.OBDCommand`` definitions whose decoder hands the raw
response lines back; :mod:`edge.obd.decoders` turns them into values with the session's framing.
python-obd's stock commands (``obd.commands.RPM`` ...) keep working on the same session.
"""

from __future__ import annotations

import logging
from typing import Any

import obd
from obd.protocols.protocol import ECU, Message

from edge.obd.decoders import ParsedResponse, parse_response
from edge.obd.elm import ElmLink
from edge.obd.errors import NoVehicleData

logger = logging.getLogger(__name__)

__all__ = ["KioskOBD", "raw_command"]


def _raw_lines(messages: list[Message]) -> list[str]:
    """OBDCommand decoder: the raw lines of every frame, in arrival order per ECU."""
    return [frame.raw for message in messages for frame in message.frames]


def raw_command(command: bytes, name: str | None = None, description: str = "") -> Any:
    """An ``obd.OBDCommand`` whose value is the list of raw response lines.

    ``_bytes=0`` stops python-obd from padding or cutting the data, ``ECU.ALL`` keeps answers
    from every ECU (several ECUs answer DTC and VIN requests), ``fast=False`` keeps python-obd
    from appending a response-count digit that some clones mishandle.
    """
    return obd.OBDCommand(
        name or f"KIOSK_{command.decode()}",
        description or f"kioskmatch raw request {command.decode()}",
        command,
        0,
        _raw_lines,
        ECU.ALL,
        False,
    )


# The requests python-obd has no command for, named for logs and audits.
VIN_COMMAND = raw_command(b"0902", "KIOSK_VIN", "VIN (mode 09 PID 02), decoded by kioskmatch")
ODOMETER_COMMAND = raw_command(b"01A6", "KIOSK_ODOMETER", "Odometer (PID 0xA6)")
DTC_COMMANDS = {
    "stored": raw_command(b"03", "KIOSK_DTC_STORED", "Stored DTCs (mode 03)"),
    "pending": raw_command(b"07", "KIOSK_DTC_PENDING", "Pending DTCs (mode 07)"),
    "permanent": raw_command(b"0A", "KIOSK_DTC_PERMANENT", "Permanent DTCs (mode 0A)"),
}


class KioskOBD(obd.OBD):  # type: ignore[misc]  # python-obd ships no type information
    """``obd.OBD`` over an already connected :class:`ElmLink`.

    python-obd's constructor opens its own ``ELM327`` in the private ``__connect`` hook and then
    queries supported PIDs in ``__load_commands``; both are replaced (python-obd is pinned at
    0.7.3, where these names are stable): the link is ours, and supported PIDs are discovered by
    the reader with multi-PID requests, then registered with :meth:`mark_supported`.
    """

    def __init__(self, link: ElmLink) -> None:
        if link.framing is None:
            raise NoVehicleData(
                f"{link.port}: connect the link to the vehicle first", port=link.port
            )
        self.link = link
        super().__init__(portstr=link.port, fast=False, check_voltage=False)

    def _OBD__connect(self, *_args: object, **_kwargs: object) -> None:  # noqa: N802
        self.interface = self.link

    def _OBD__load_commands(self) -> None:  # noqa: N802
        return None

    def mark_supported(self, mode: int, pids: set[int]) -> None:
        """Tell python-obd which of its stock commands the vehicle supports."""
        for pid in pids:
            if obd.commands.has_pid(mode, pid):
                self.supported_commands.add(obd.commands[mode][pid])

    def request(self, command: bytes) -> ParsedResponse:
        """Send a raw request through python-obd and parse the lines with our framing."""
        return self._query_parsed(raw_command(command))

    def query_named(self, command: Any) -> ParsedResponse:
        """Send one of this module's named commands (VIN, odometer, DTCs)."""
        return self._query_parsed(command)

    def _query_parsed(self, command: Any) -> ParsedResponse:
        """Query through python-obd, then parse every line the adapter printed.

        python-obd hands back only the messages it could assemble: an ECU whose multi-frame
        answer lost a frame (or a line its frame parser refused) vanishes without a trace, and
        the answer would look complete. So the lines come from the link's record of the exchange,
        where :func:`parse_response` sees the gap and reports it.
        """
        framing = self.link.framing
        assert framing is not None
        before = len(self.link.exchanges)
        response = self.query(command, force=True)
        seen: list[str] = response.value or []
        exchanges = self.link.exchanges[before:]
        if not exchanges:
            return parse_response(seen, framing)
        lines = list(exchanges[-1].lines)
        if len(seen) < len(lines):
            logger.debug(
                "%s: python-obd kept %d of the %d lines answering %s; parsing all of them",
                self.link.port,
                len(seen),
                len(lines),
                exchanges[-1].request,
            )
        return parse_response(lines, framing)
