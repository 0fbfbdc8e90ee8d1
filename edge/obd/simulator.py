"""An ELM327 adapter + vehicle simulator, served on a pseudo-terminal or a TCP port.

For tests, the demo and dealer training. :class:`Elm327Emulator` is the pure part: it takes one
command line and returns what the adapter prints (AT commands, protocol search, OBD services on
CAN ISO 15765-4 or a legacy protocol, with headers/spaces/linefeeds/echo as set). :class:`Simulator`
serves it on a pty (``.port`` is the slave device path, e.g. ``/dev/pts/5``) or on TCP (``.port``
is ``socket://127.0.0.1:<port>``), in a background thread, with the scenario's faults: latency,
refused AT commands, transient errors, noise, lost frames, and unplugging mid-read.

Usage::

    with start_simulator("malibu_2019") as sim:
        reading = read_vehicle(sim.port)
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge.obd.decoders import Framing, framing_for_protocol
from edge.obd.encoders import (
    encode_dtc_payloads,
    encode_live_value,
    encode_monitor_status,
    encode_response_lines,
    encode_supported_bitmap,
    encode_vin_payload,
    pid_length,
)
from edge.obd.scenario import LIVE_NAMES, Scenario, load_scenario

logger = logging.getLogger(__name__)

__all__ = ["Elm327Emulator", "Simulator", "start_simulator"]

_PROTOCOL_NAMES = {
    "3": "ISO 9141-2",
    "4": "ISO 14230-4 (KWP 5BAUD)",
    "5": "ISO 14230-4 (KWP FAST)",
    "6": "ISO 15765-4 (CAN 11/500)",
    "7": "ISO 15765-4 (CAN 29/500)",
    "8": "ISO 15765-4 (CAN 11/250)",
    "9": "ISO 15765-4 (CAN 29/250)",
}
_NOISE = b"\xff\x00\xfe#@!\x1b~"


@dataclass
class _Settings:
    echo: bool = True
    linefeeds: bool = False
    headers: bool = False
    spaces: bool = True
    protocol: str = "0"  # "0" automatic, else the number set by ATSP/ATTP


@dataclass
class Elm327Emulator:
    """The adapter's command interpreter and the vehicle behind it (no IO, no threads)."""

    scenario: Scenario
    settings: _Settings = field(default_factory=_Settings)
    active_protocol: str | None = None  # found by a search or confirmed by a first request
    obd_requests: int = 0
    last_command: str = ""
    _transients_used: set[int] = field(default_factory=set)

    # ------------------------------------------------------------------ framing helpers
    @property
    def eol(self) -> str:
        return "\r\n" if self.settings.linefeeds else "\r"

    def render(self, raw_command: str, lines: list[str]) -> str:
        """What the adapter prints for a command: echo, lines, blank line, prompt."""
        out = raw_command + self.eol if self.settings.echo else ""
        out += "".join(line + self.eol for line in lines)
        return out + self.eol + ">"

    # ------------------------------------------------------------------ entry point
    def is_obd_request(self, command: str) -> bool:
        text = command.replace(" ", "").upper()
        return bool(text) and not text.startswith("AT")

    def handle(self, raw_command: str) -> tuple[str, list[str]]:
        """Interpret one command line; return (kind, lines) where kind is 'at', 'obd' or
        'refused'. The caller renders the lines (so it can add latency or faults first)."""
        command = raw_command.replace(" ", "").upper()
        if not command:
            command = self.last_command  # a bare CR repeats the last command, as on an ELM327
        else:
            self.last_command = command
        if not command:
            return "at", ["?"]
        if command.startswith("AT"):
            refusal = self._refusal(command)
            if refusal is not None:
                return "refused", [refusal] if refusal else []
            return "at", self._at(command)
        return "obd", self._obd(command)

    def _refusal(self, command: str) -> str | None:
        for refused, reply in self.scenario.adapter.refuse.items():
            if command == refused.replace(" ", "").upper():
                return reply
        return None

    # ------------------------------------------------------------------ AT commands
    def _at(self, command: str) -> list[str]:
        s = self.settings
        arg = command[2:]
        adapter = self.scenario.adapter
        if arg in ("Z", "WS"):
            self.settings = _Settings(protocol=s.protocol)
            self.active_protocol = None
            return ["", adapter.identity]
        if arg == "D":
            self.settings = _Settings(protocol=s.protocol, echo=s.echo)
            return ["OK"]
        if arg == "I":
            return [adapter.identity]
        if arg == "@1":
            return [adapter.description]
        if arg == "RV":
            return [f"{adapter.voltage:.1f}V"]
        toggles = {"E": "echo", "L": "linefeeds", "H": "headers", "S": "spaces"}
        if len(arg) == 2 and arg[0] in toggles and arg[1] in "01":
            setattr(s, toggles[arg[0]], arg[1] == "1")
            return ["OK"]
        if arg.startswith(("SPA", "TPA")) and len(arg) == 4:
            return self._set_protocol(arg[3])
        if arg.startswith(("SP", "TP")) and len(arg) == 3:
            return self._set_protocol(arg[2])
        if arg == "DPN":
            found = self.active_protocol or "0"
            return [("A" + found) if s.protocol == "0" else s.protocol]
        if arg == "DP":
            name = _PROTOCOL_NAMES.get(self.active_protocol or "", "AUTOMATIC")
            return [f"AUTO, {name}" if s.protocol == "0" and self.active_protocol else name]
        if arg in ("AT0", "AT1", "AT2", "CAF0", "CAF1", "M0", "M1", "PC", "LP", "CS"):
            return ["OK"]
        if arg.startswith(("ST", "SH", "CRA", "FCSH", "FCSD", "FCSM", "CEA")):
            return ["OK"]
        return ["?"]

    def _set_protocol(self, number: str) -> list[str]:
        if number != "0" and number not in _PROTOCOL_NAMES and number not in "12AB":
            return ["?"]
        self.settings.protocol = number
        self.active_protocol = None
        return ["OK"]

    # ------------------------------------------------------------------ OBD requests
    def _framing(self, protocol: str) -> Framing:
        framing = framing_for_protocol(protocol, headers=self.settings.headers)
        assert framing is not None  # the schema only allows protocols with a framing
        return framing

    def _obd(self, command: str) -> list[str]:
        self.obd_requests += 1
        number = self.obd_requests
        transient = self.scenario.adapter.transient_errors.get(number)
        if transient is not None and number not in self._transients_used:
            self._transients_used.add(number)
            return [transient]
        vehicle = self.scenario.vehicle
        prefix: list[str] = []
        if self.active_protocol is None:
            if self.settings.protocol == "0":
                prefix.append("SEARCHING...")
                if not vehicle.ignition_on:
                    return [*prefix, "UNABLE TO CONNECT"]
                self.active_protocol = vehicle.protocol
            else:
                legacy = self.settings.protocol in {"3", "4", "5"}
                if not vehicle.ignition_on or self.settings.protocol != vehicle.protocol:
                    return ["BUS INIT: ...ERROR"] if legacy else ["UNABLE TO CONNECT"]
                if legacy:
                    prefix.append("BUS INIT: ...OK")
                self.active_protocol = vehicle.protocol
        if len(command) % 2 or any(c not in "0123456789ABCDEF" for c in command):
            # An odd trailing digit is the ELM's "expected responses" hint: drop it.
            if len(command) % 2 and all(c in "0123456789ABCDEF" for c in command):
                command = command[:-1]
            else:
                return ["?"]
        payloads = self._answer(bytes.fromhex(command))
        if not payloads:
            return [*prefix, "NO DATA"]
        return prefix + encode_response_lines(
            payloads, self._framing(self.active_protocol), spaces=self.settings.spaces
        )

    def _engine_pids(self) -> dict[int, bytes]:
        v = self.scenario.vehicle
        pids: dict[int, bytes] = {}
        # Each ECU's PID 01 counts its own confirmed codes (J1979); the engine stands in for the
        # ECUs modelled without a PID 01 of their own, so the answers always sum to the car's.
        stored_total = len(v.stored) + sum(
            len(e.stored) for e in v.other_ecus if not e.answers_monitor_status
        )
        pids[0x01] = encode_monitor_status(
            mil_on=v.effective_mil,
            dtc_count=stored_total,
            ignition=v.ignition,
            monitors=v.monitors,
        )
        optional = {
            0x21: v.distance_with_mil_km,
            0x30: v.warmups_since_clear,
            0x31: v.distance_since_clear_km,
            0x4E: v.minutes_since_clear,
        }
        for pid, value in optional.items():
            if value is not None:
                pids[pid] = int(value).to_bytes(pid_length(pid), "big")
        for name, live_value in v.live.items():
            pid = LIVE_NAMES[name]
            pids[pid] = encode_live_value(pid, live_value)
        if v.odometer_km is not None:
            pids[0xA6] = round(v.odometer_km * 10).to_bytes(4, "big")
        # Each bitmap PID marks the next one, so the chain reaches the highest PID supported.
        bases = list(range(0, max(pids), 0x20))
        pids.update({base: b"" for base in bases})
        for base in bases:
            pids[base] = encode_supported_bitmap(base, pids)
        return pids

    def _other_ecu_pids(self) -> list[tuple[str, dict[int, bytes]]]:
        """PIDs 0x00 and 0x01 of the further ECUs that answer mode 01 (after the engine, as
        they usually come)."""
        v = self.scenario.vehicle
        tables: list[tuple[str, dict[int, bytes]]] = []
        for ecu in v.other_ecus:
            if ecu.monitors is None:
                continue
            status = encode_monitor_status(
                mil_on=ecu.effective_mil,
                dtc_count=len(ecu.stored),
                ignition=v.ignition,
                monitors=ecu.monitors,
            )
            tables.append((ecu.address, {0x00: encode_supported_bitmap(0, [0x01]), 0x01: status}))
        return tables

    def _answer(self, request: bytes) -> list[tuple[str, bytes]]:
        v = self.scenario.vehicle
        mode = request[0]
        engine = v.engine_address
        if mode == 0x01:
            pids_requested = list(request[1:])
            if not pids_requested:
                return []
            if not v.is_can and len(pids_requested) > 1:
                return []  # legacy ECUs take one PID per request
            if len(pids_requested) > self.scenario.adapter.max_pids_per_request:
                return []
            replies: list[tuple[str, bytes]] = []
            for address, table in [(engine, self._engine_pids()), *self._other_ecu_pids()]:
                body = b"".join(bytes([p]) + table[p] for p in pids_requested if p in table)
                if body:
                    replies.append((address, b"\x41" + body))
            return replies
        if mode in (0x03, 0x07, 0x0A):
            if mode == 0x0A and not v.supports_permanent:
                return []
            kind = {0x03: "stored", 0x07: "pending", 0x0A: "permanent"}[mode]
            framing = self._framing(v.protocol)
            answers: list[tuple[str, bytes]] = []
            ecus: list[tuple[str, list[str]]] = [(engine, list(getattr(v, kind)))]
            ecus += [(e.address, list(getattr(e, kind))) for e in v.other_ecus]
            for address, codes in ecus:
                for payload in encode_dtc_payloads(mode + 0x40, codes, framing):
                    answers.append((address, payload))
            return answers
        if mode == 0x09 and request[1:] == b"\x00":
            supported = [0x02] if v.vin else []
            return [(engine, b"\x49\x00" + encode_supported_bitmap(0, supported))]
        if mode == 0x09 and request[1:] == b"\x02" and v.vin:
            framing = self._framing(v.protocol)
            return [(engine, p) for p in encode_vin_payload(v.vin, framing)]
        return []


Transport = Literal["pty", "tcp"]


class Simulator:
    """Serves an :class:`Elm327Emulator` on a pty or TCP port from a background thread.

    Use as a context manager; ``port`` is what to pass to the reader (a device path or a
    ``socket://`` URL). ``requests`` counts OBD requests answered so far.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path = "malibu_2019",
        *,
        transport: Transport = "pty",
        tcp_port: int = 0,
        host: str = "127.0.0.1",
        latency_s: float | None = None,
    ) -> None:
        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        if latency_s is not None:
            loaded = loaded.model_copy(
                update={"adapter": loaded.adapter.model_copy(update={"latency_s": latency_s})}
            )
        self.scenario = loaded
        self.emulator = Elm327Emulator(loaded)
        self.transport = transport
        self._host = host
        self._tcp_port = tcp_port
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._master = -1
        self._slave = -1
        self._listener: socket.socket | None = None
        self._unplugged = False
        self.port = ""

    @property
    def requests(self) -> int:
        return self.emulator.obd_requests

    @property
    def unplugged(self) -> bool:
        return self._unplugged

    def start(self) -> Simulator:
        """Open the pty or listening socket and start serving."""
        self._wake_r, self._wake_w = os.pipe()
        if self.transport == "pty":
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)  # no line discipline: bytes pass exactly as an adapter's
            self.port = os.ttyname(self._slave)
            target = self._serve_pty
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self._host, self._tcp_port))
            listener.listen(1)
            self._listener = listener
            host, port = listener.getsockname()[:2]
            self.port = f"socket://{host}:{port}"
            target = self._serve_tcp
        self._thread = threading.Thread(
            target=target, name=f"elm327-sim-{self.scenario.name}", daemon=True
        )
        self._thread.start()
        logger.info("ELM327 simulator %r serving on %s", self.scenario.name, self.port)
        return self

    def stop(self) -> None:
        """Stop serving and release the pty/socket (idempotent)."""
        self._stop.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd_name in ("_master", "_slave", "_wake_r", "_wake_w"):
            fd = getattr(self, fd_name)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, fd_name, -1)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving
    def _respond(self, raw_command: str) -> bytes | None:
        """Bytes to send back for one command line; None once unplugged."""
        if self._unplugged:
            return None
        adapter = self.scenario.adapter
        emulator = self.emulator
        if emulator.is_obd_request(raw_command) or (
            not raw_command.strip() and emulator.is_obd_request(emulator.last_command)
        ):
            limit = adapter.unplug_after_requests
            if limit is not None and emulator.obd_requests >= limit:
                self._unplug()
                return None
            first_search = emulator.active_protocol is None
            delay = adapter.latency_s + (adapter.search_latency_s if first_search else 0.0)
            if delay and self._stop.wait(delay):
                return None
        kind, lines = emulator.handle(raw_command)
        lost = adapter.lost_lines.get(emulator.last_command) if kind == "obd" else None
        if lost:
            lines = [line for i, line in enumerate(lines) if i not in lost]
        text = emulator.render(raw_command, lines).encode("ascii", errors="replace")
        if kind == "obd" and emulator.obd_requests in adapter.garbage_before_requests:
            text = _NOISE + b"\r" + text
        return text

    def _unplug(self) -> None:
        logger.info("simulated adapter unplugged (%s)", self.scenario.adapter.unplug_mode)
        self._unplugged = True
        if self.scenario.adapter.unplug_mode == "close":
            if self.transport == "pty":
                # Closing both ends makes the client's next read fail (EIO), as when a USB
                # adapter is pulled; the device path disappears.
                for fd_name in ("_master", "_slave"):
                    fd = getattr(self, fd_name)
                    if fd >= 0:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                        setattr(self, fd_name, -1)
            elif self._listener is not None:
                # A pulled Wi-Fi adapter refuses new connections too.
                self._listener.close()
                self._listener = None
            self._stop.set()

    def _serve_pty(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            master = self._master
            if master < 0:
                return
            try:
                readable, _, _ = select.select([master, self._wake_r], [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in readable or self._stop.is_set():
                return
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            for reply in self._consume(buffer, chunk):
                if reply is None:
                    continue
                try:
                    os.write(master, reply)
                except OSError:
                    return

    def _serve_tcp(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([listener.fileno(), self._wake_r], [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in readable:
                return
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                self._serve_connection(conn)

    def _serve_connection(self, conn: socket.socket) -> None:
        wake = self._wake_r
        buffer = bytearray()
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([conn.fileno(), wake], [], [])
            except (OSError, ValueError):
                return
            if wake in readable:
                return
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return  # client closed: wait for the next one
            for reply in self._consume(buffer, chunk):
                if reply is not None:
                    with contextlib.suppress(OSError):
                        conn.sendall(reply)
            if self._unplugged and self.scenario.adapter.unplug_mode == "close":
                return

    def _consume(self, buffer: bytearray, chunk: bytes) -> Iterator[bytes | None]:
        """Split input into CR-terminated commands and answer each."""
        buffer.extend(chunk)
        while b"\r" in buffer:
            line, _, rest = bytes(buffer).partition(b"\r")
            buffer[:] = rest
            text = line.replace(b"\n", b"").replace(b"\x00", b"").decode("ascii", "replace")
            # An ELM ignores control noise some hosts send to wake it (python-obd sends 0x7F).
            text = "".join(c for c in text if c.isprintable())
            yield self._respond(text)


@contextlib.contextmanager
def start_simulator(
    scenario: Scenario | str | Path = "malibu_2019",
    *,
    transport: Transport = "pty",
    tcp_port: int = 0,
    latency_s: float | None = None,
) -> Iterator[Simulator]:
    """Start a simulator for a scenario (name, path or object) and stop it on exit.

    ``latency_s`` overrides the scenario's per-request latency (tests use 0).
    """
    simulator = Simulator(scenario, transport=transport, tcp_port=tcp_port, latency_s=latency_s)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()
