"""The ELM327 link: opens the port, brings the adapter up, finds the protocol, exchanges lines.

It replaces python-obd's ``ELM327`` class behind ``obd.OBD`` (same small interface: ``status``,
``send_and_parse``, ``close``, ``protocol_name``...) because python-obd's own:

- gives up on common "v1.5" clones that answer ``ATH1``/``ATL0`` with ``ERROR`` or an empty
  prompt — here a refusal is recorded as a quirk and the framing adapts (headers off);
- sleeps fixed seconds during connect and reads with a 10 s serial timeout — here every
  exchange is bounded by a per-request timeout *and* the caller's overall deadline, so an
  adapter that falls silent or is unplugged ends the read instead of hanging it.

Ports are opened with pyserial's ``serial_for_url``: a device path (``/dev/ttyUSB0``,
``/dev/rfcomm0`` for Bluetooth SPP) or ``socket://host:port`` (Wi-Fi adapters).
"""

from __future__ import annotations

import logging
import re
import termios
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import serial
from obd.protocols import (
    ISO_9141_2,
    SAE_J1850_PWM,
    SAE_J1850_VPW,
    ISO_14230_4_5baud,
    ISO_14230_4_fast,
    ISO_15765_4_11bit_250k,
    ISO_15765_4_11bit_500k,
    ISO_15765_4_29bit_250k,
    ISO_15765_4_29bit_500k,
)
from obd.protocols.protocol import ECU, Frame, Message
from obd.utils import OBDStatus

from edge.obd.decoders import (
    FrameKind,
    Framing,
    ParsedResponse,
    framing_for_protocol,
    parse_response,
)
from edge.obd.errors import (
    AdapterDisconnected,
    AdapterNotFound,
    AdapterNotResponding,
    NoVehicleData,
    ReadTimeout,
)
from edge.obd.reading import RawExchange

logger = logging.getLogger(__name__)

__all__ = ["PROTOCOL_NAMES", "ElmLink"]

PROMPT = b">"
PROTOCOL_NAMES = {
    "1": "SAE J1850 PWM",
    "2": "SAE J1850 VPW",
    "3": "ISO 9141-2",
    "4": "ISO 14230-4 (KWP 5BAUD)",
    "5": "ISO 14230-4 (KWP FAST)",
    "6": "ISO 15765-4 (CAN 11/500)",
    "7": "ISO 15765-4 (CAN 29/500)",
    "8": "ISO 15765-4 (CAN 11/250)",
    "9": "ISO 15765-4 (CAN 29/250)",
}
_PYOBD_PROTOCOLS: dict[str, Any] = {
    "1": SAE_J1850_PWM,
    "2": SAE_J1850_VPW,
    "3": ISO_9141_2,
    "4": ISO_14230_4_5baud,
    "5": ISO_14230_4_fast,
    "6": ISO_15765_4_11bit_500k,
    "7": ISO_15765_4_29bit_500k,
    "8": ISO_15765_4_11bit_250k,
    "9": ISO_15765_4_29bit_250k,
}
# Serial bauds an ELM327 boots at (38400, 9600) first, then the fast ones clones ship with.
_TRY_BAUDS = (38400, 9600, 115200, 230400, 57600, 19200)
_POLL_S = 0.02  # serial read granularity: short so deadlines are honoured promptly
# What a vanished device raises: pyserial's errors, OS errors, and termios (tcdrain on a dead pty).
_PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class _HeaderlessProtocol:
    """python-obd protocol stand-in for adapters that will not show headers.

    Each hex line becomes one message tagged as the engine's, which is right for the one-line
    answers python-obd's own commands expect; kioskmatch's decoders re-read the raw lines.
    """

    ELM_NAME = ""
    ELM_ID = ""

    def __init__(self, number: str) -> None:
        self.ELM_ID = number
        self.ELM_NAME = PROTOCOL_NAMES.get(number, "")
        self.ecu_map: dict[int, int] = {}

    def __call__(self, lines: Sequence[str]) -> list[Message]:
        messages: list[Message] = []
        for line in lines:
            message = Message([Frame(line)])
            compact = line.replace(" ", "")
            if re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", compact):
                message.data = bytearray.fromhex(compact)
                message.ecu = ECU.ENGINE
            messages.append(message)
        return messages


class ElmLink:
    """One session with an ELM327 adapter (not thread-safe; one reader at a time)."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int | None = None,
        request_timeout: float = 5.0,
        search_timeout: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        serial_factory: Callable[..., Any] = serial.serial_for_url,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.request_timeout = request_timeout
        self.search_timeout = search_timeout
        self.deadline: float | None = None
        self.exchanges: list[RawExchange] = []
        self.quirks: list[str] = []
        self.identity: str | None = None
        self.description: str | None = None
        self.voltage: float | None = None
        self.protocol_number: str | None = None
        self.protocol_pinned = False
        self.headers = True
        self.framing: Framing | None = None
        self.first_response: list[str] = []  # the 0100 answer that found the protocol
        self.phase: Literal["connect", "read"] = "connect"
        self.requests = 0  # OBD requests sent in the read phase
        self._clock = clock
        self._serial_factory = serial_factory
        self._serial: Any = None
        self._status = OBDStatus.NOT_CONNECTED
        self._protocol: Any = None

    # ------------------------------------------------------------------ opening
    def open(self) -> None:
        """Open the port; :class:`AdapterNotFound` names it and what to check."""
        try:
            self._serial = self._serial_factory(
                self.port, baudrate=self.baudrate or 38400, timeout=_POLL_S, write_timeout=2.0
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise AdapterNotFound(_not_found_message(self.port, exc), port=self.port) from exc

    def _is_virtual(self) -> bool:
        return self.port.startswith(("socket://", "rfc2217://", "loop://", "/dev/pts/"))

    def initialise(self) -> None:
        """Reset and configure the adapter, tolerating clones that refuse some commands."""
        if self._serial is None:
            self.open()
        if self.baudrate is None and not self._is_virtual():
            self._find_baudrate()
        # A reset answer can be slow and noisy; what matters is that a prompt comes back.
        self.exchange(b"ATZ", timeout=min(5.0, self.request_timeout + 2.0))
        echo_off = self.exchange(b"ATE0")
        if not any("OK" in line for line in echo_off):
            raise AdapterNotResponding(
                f"{self.port}: the device answered {echo_off!r} to ATE0; it does not behave like"
                " an ELM327 (wrong port, or an adapter that needs a different baud rate)",
                port=self.port,
            )
        self._status = OBDStatus.ELM_CONNECTED
        self.headers = self._optional(b"ATH1")
        self._optional(b"ATL0")  # refusal only means \r\n line ends, which the parser accepts
        identity = self.exchange(b"ATI")
        self.identity = next((line for line in identity if line not in {"?", "OK"}), None)
        description = self._optional_text(b"AT@1")
        self.description = description
        voltage_lines = self._optional_text(b"ATRV")
        self.voltage = _parse_voltage(voltage_lines)
        if self.voltage is not None and self.voltage >= 6.0:
            self._status = OBDStatus.OBD_CONNECTED

    def _optional(self, command: bytes) -> bool:
        lines = self.exchange(command)
        if lines == ["OK"] or (lines and lines[-1] == "OK"):
            return True
        reply = lines[0] if lines else "an empty prompt"
        self.quirks.append(f"{command.decode()} refused ({reply})")
        logger.info(
            "%s: adapter answered %s to %s; carrying on without it",
            self.port,
            reply,
            command.decode(),
        )
        return False

    def _optional_text(self, command: bytes) -> str | None:
        lines = self.exchange(command)
        if not lines or lines[0] in {"?", "ERROR"}:
            self.quirks.append(f"{command.decode()} refused ({lines[0] if lines else 'empty'})")
            return None
        return lines[0]

    def _find_baudrate(self) -> None:
        for baud in _TRY_BAUDS:
            self._serial.baudrate = baud
            self._serial.reset_input_buffer()
            # 0x7F is not a command an ELM could act on, so no stale command is repeated.
            self._serial.write(b"\x7f\x7f\r")
            if PROMPT in self._read_until_prompt(0.3, allow_timeout=True):
                logger.debug("%s: adapter answers at %d baud", self.port, baud)
                self.baudrate = baud
                return
        raise AdapterNotResponding(
            f"{self.port}: no ELM327 prompt at any of {', '.join(map(str, _TRY_BAUDS))} baud;"
            " check that this is the OBD adapter's port and that the adapter has power",
            port=self.port,
        )

    # ------------------------------------------------------------------ protocol
    def connect_vehicle(self, protocol: str | None = None) -> None:
        """Find the vehicle's protocol (searching, or the pinned one first) with ``0100``.

        Raises :class:`NoVehicleData` when no ECU answers (ignition off, or not in a car).
        """
        attempts: list[str | None] = [protocol, None] if protocol else [None]
        last: ParsedResponse | None = None
        for choice in attempts:
            self.exchange(b"ATSP" + (choice or "0").encode())
            lines = self.exchange(b"0100", timeout=self.search_timeout)
            parsed = parse_response(
                lines, Framing(kind=FrameKind(_guess_kind(lines)), headers=True)
            )
            last = parsed
            if parsed.unable_to_connect or not any(_looks_like_data(line) for line in lines):
                if choice:
                    logger.warning(
                        "%s: pinned protocol %s did not answer; searching all protocols",
                        self.port,
                        choice,
                    )
                continue
            self.first_response = lines
            self.protocol_pinned = choice is not None
            self._settle_protocol(choice, lines)
            return
        reasons = ", ".join(last.status) if last and last.status else "no answer"
        voltage = f" (the adapter reads {self.voltage:.1f} V)" if self.voltage is not None else ""
        raise NoVehicleData(
            f"{self.port}: the adapter works but no vehicle ECU answered ({reasons}){voltage}:"
            " switch the ignition on (engine running or key at ON) and check the adapter is"
            " fully seated in the car's OBD socket",
            port=self.port,
        )

    def _settle_protocol(self, pinned: str | None, lines: list[str]) -> None:
        number = pinned
        answer = self.exchange(b"ATDPN")
        if answer and re.fullmatch(r"A?[1-9A-C]", answer[0]):
            number = answer[0][-1]
        else:
            self.quirks.append(f"ATDPN refused ({answer[0] if answer else 'empty'})")
            name = self._optional_text(b"ATDP") or ""
            number = number or next((n for n, v in PROTOCOL_NAMES.items() if v in name), None)
        if number is None:
            number = "6" if _guess_kind(lines) == "can11" else "3"
            self.quirks.append(f"protocol inferred from the answer format ({number})")
        # The adapter may claim headers while a clone silently ignored ATH1: trust the data.
        self.headers = self.headers and _has_headers(lines)
        framing = framing_for_protocol(number, headers=self.headers)
        if framing is None:
            raise NoVehicleData(
                f"{self.port}: the vehicle speaks protocol {number}"
                f" ({PROTOCOL_NAMES.get(number, 'J1939 / unknown')}), which the kiosk does not"
                " read (heavy-duty J1939 vehicles are out of scope)",
                port=self.port,
            )
        self.protocol_number = number
        self.framing = framing
        if self.headers:
            self._protocol = _PYOBD_PROTOCOLS[number](lines)
        else:
            self._protocol = _HeaderlessProtocol(number)
        self._status = OBDStatus.CAR_CONNECTED
        logger.info(
            "%s: connected, protocol %s (%s), headers %s",
            self.port,
            number,
            PROTOCOL_NAMES.get(number),
            "on" if self.headers else "off",
        )

    # ------------------------------------------------------------------ exchanges
    def exchange(self, command: bytes, *, timeout: float | None = None) -> list[str]:
        """Send one command and return the answer's lines (echo and prompt removed).

        Raises :class:`ReadTimeout` when the overall deadline has passed,
        :class:`AdapterNotResponding` when no prompt comes within the timeout, and
        :class:`AdapterDisconnected` when the port fails. Answers are returned as they are:
        callers judge them.
        """
        if self._serial is None:
            raise AdapterDisconnected(f"{self.port}: the port is closed", port=self.port)
        limit = self._budget(timeout if timeout is not None else self.request_timeout)
        started = self._clock()
        text = command.decode("ascii", errors="replace")
        if self.phase == "read" and not text.upper().startswith("AT"):
            self.requests += 1
        try:
            self._serial.reset_input_buffer()
            self._serial.write(command + b"\r")
            self._serial.flush()
            raw = self._read_until_prompt(limit)
        except _PORT_ERRORS as exc:
            self._record(text, [], started, "disconnected")
            self._lost()
            raise AdapterDisconnected(
                f"{self.port}: the adapter disconnected during {text!r} ({exc}); check the"
                " cable / that the adapter is still plugged in",
                port=self.port,
            ) from exc
        except _PromptTimeoutError as exc:
            self._record(text, _split_lines(exc.partial, text), started, "timeout")
            if self.deadline is not None and self._clock() >= self.deadline:
                raise ReadTimeout(
                    f"{self.port}: the time budget ran out waiting for the answer to {text!r}",
                    port=self.port,
                ) from None
            if self.phase == "connect":
                cause = (
                    "nothing answers like an ELM327 on this port: check it is the OBD adapter's"
                    " port and that the adapter is plugged into the car (it is powered from there)"
                )
            else:
                cause = "the adapter stopped responding (unplugged from the car, or out of power?)"
            raise AdapterNotResponding(
                f"{self.port}: no answer to {text!r} within {limit:.1f} s; {cause}",
                port=self.port,
            ) from None
        lines = _split_lines(raw, text)
        self._record(text, lines, started, "ok")
        return lines

    def request(self, command: bytes, *, timeout: float | None = None) -> ParsedResponse:
        """Send an OBD request and parse the answer with this session's framing."""
        if self.framing is None:
            raise NoVehicleData(f"{self.port}: not connected to a vehicle", port=self.port)
        return parse_response(self.exchange(command, timeout=timeout), self.framing)

    def _budget(self, timeout: float) -> float:
        if self.deadline is None:
            return timeout
        remaining = self.deadline - self._clock()
        if remaining <= 0:
            raise ReadTimeout(f"{self.port}: the time budget for the read ran out", port=self.port)
        return min(timeout, remaining)

    def _read_until_prompt(self, limit: float, *, allow_timeout: bool = False) -> bytes:
        end = self._clock() + limit
        buffer = bytearray()
        while True:
            waiting = self._serial.in_waiting
            chunk = self._serial.read(waiting or 1)
            if chunk:
                buffer.extend(chunk)
                if buffer.rstrip(b"\r\n \x00").endswith(PROMPT):
                    return bytes(buffer)
            if self._clock() >= end:
                if allow_timeout:
                    return bytes(buffer)
                raise _PromptTimeoutError(bytes(buffer))

    def _record(
        self,
        request: str,
        lines: list[str],
        started: float,
        outcome: Literal["ok", "timeout", "disconnected"],
    ) -> None:
        self.exchanges.append(
            RawExchange(
                phase=self.phase,
                request=request,
                lines=lines,
                elapsed_s=round(self._clock() - started, 4),
                outcome=outcome,
            )
        )

    def _lost(self) -> None:
        self._status = OBDStatus.NOT_CONNECTED
        try:
            if self._serial is not None:
                self._serial.close()
        except _PORT_ERRORS:
            logger.debug("%s: closing a lost port failed", self.port, exc_info=True)
        self._serial = None

    # ------------------------------------------------------------------ python-obd interface
    def status(self) -> str:
        return str(self._status)

    def send_and_parse(self, cmd: bytes) -> list[Message]:
        """python-obd's entry point: send, then split into python-obd ``Message`` objects."""
        if self._protocol is None:
            return []
        return list(self._protocol(self.exchange(cmd)))

    def protocol_name(self) -> str:
        return PROTOCOL_NAMES.get(self.protocol_number or "", "")

    def protocol_id(self) -> str:
        return self.protocol_number or ""

    def port_name(self) -> str:
        return self.port

    def ecus(self) -> list[int]:
        return list(getattr(self._protocol, "ecu_map", {}).values())

    def low_power(self) -> None:
        return None

    def normal_power(self) -> None:
        return None

    def close(self) -> None:
        """Close the port (idempotent). The adapter is left as configured: no reset."""
        self._status = OBDStatus.NOT_CONNECTED
        if self._serial is not None:
            try:
                self._serial.close()
            except _PORT_ERRORS:
                logger.debug("%s: error while closing", self.port, exc_info=True)
            self._serial = None


class _PromptTimeoutError(Exception):
    def __init__(self, partial: bytes) -> None:
        super().__init__("no prompt")
        self.partial = partial


def _split_lines(raw: bytes, command: str) -> list[str]:
    text = raw.replace(b"\x00", b"").decode("ascii", errors="replace")
    text = text.rstrip().removesuffix(">")
    lines = [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]
    # Drop the echo if the adapter still echoes (ATE0 refused or not yet sent).
    if lines and lines[0].replace(" ", "").upper() == command.replace(" ", "").upper():
        lines = lines[1:]
    return lines


def _parse_voltage(line: str | None) -> float | None:
    match = re.search(r"(\d+(?:\.\d+)?)\s*V?", line or "")
    return float(match.group(1)) if match else None


def _guess_kind(lines: Sequence[str]) -> Literal["can11", "can29", "legacy"]:
    """Best guess at the frame family from a 0100 answer (used before ATDPN is known)."""
    for line in lines:
        compact = line.replace(" ", "").upper()
        if compact.startswith("4100"):
            return "can11"  # headerless: framing is irrelevant for single frames
        if re.fullmatch(r"7E[89A-F][0-9A-F]+", compact):
            return "can11"
        if re.fullmatch(r"18DA[0-9A-F]+", compact):
            return "can29"
        if re.fullmatch(r"486B[0-9A-F]+", compact) or re.fullmatch(r"4[18]6B[0-9A-F]+", compact):
            return "legacy"
    return "can11"


def _looks_like_data(line: str) -> bool:
    compact = line.replace(" ", "").upper()
    return bool(re.fullmatch(r"(?:[0-9A-F]+:)?[0-9A-F]{6,}", compact)) and "4100" in compact


def _has_headers(lines: Sequence[str]) -> bool:
    """Headers are on if the 0100 answer does not start with the service bytes ``41 00``."""
    data = [line.replace(" ", "").upper() for line in lines if _looks_like_data(line)]
    return bool(data) and not all(d.startswith("4100") for d in data)


def _not_found_message(port: str, exc: BaseException) -> str:
    if port.startswith("socket://"):
        return (
            f"{port}: cannot connect to the Wi-Fi OBD adapter ({exc}); check the kiosk is on the"
            " adapter's Wi-Fi network and the host:port (often 192.168.0.10:35000)"
        )
    return (
        f"{port}: cannot open the OBD adapter port ({exc}); check the adapter's USB cable is"
        " plugged in (or Bluetooth is paired and bound to this rfcomm device), that the device"
        " path is right (ls /dev/ttyUSB* /dev/ttyACM* /dev/rfcomm*), and that this user may open"
        " it (member of the dialout group)"
    )
