"""Errors raised by the OBD package. Each names the port and says what to check.

::

    ObdError                      any failure to talk to the adapter or the vehicle
    ├── AdapterNotFound           the port cannot be opened (missing device, cable, permissions)
    ├── AdapterNotResponding      the port opened but no ELM327 answers on it (or stopped answering)
    ├── AdapterDisconnected       the adapter went away during the session (unplugged)
    ├── NoVehicleData             the adapter works but the vehicle does not answer (ignition off)
    └── ReadTimeout               the whole-read time budget ran out

A reading that fails part-way is not an error: :func:`edge.obd.reader.read_vehicle` returns a
partial :class:`~edge.obd.reading.VehicleReading` with the reasons. Only a failure before any
vehicle data could be read raises.
"""

from __future__ import annotations

__all__ = [
    "AdapterDisconnected",
    "AdapterNotFound",
    "AdapterNotResponding",
    "NoVehicleData",
    "ObdError",
    "ReadTimeout",
]


class ObdError(Exception):
    """Base of every OBD error; ``port`` is the device path or URL concerned."""

    def __init__(self, message: str, *, port: str) -> None:
        super().__init__(message)
        self.port = port


class AdapterNotFound(ObdError):  # noqa: N818 (httpx-style names)
    """The port does not exist or cannot be opened."""


class AdapterNotResponding(ObdError):  # noqa: N818 (httpx-style names)
    """Something is on the port but it does not answer like an ELM327."""


class AdapterDisconnected(ObdError):  # noqa: N818 (httpx-style names)
    """The adapter disappeared mid-session (the device closed or the socket dropped)."""


class NoVehicleData(ObdError):  # noqa: N818 (httpx-style names)
    """The adapter answers but no vehicle ECU does (ignition off, not plugged into a car)."""


class ReadTimeout(ObdError):  # noqa: N818 (httpx-style names)
    """The time budget for the whole read ran out."""
