"""Pure decoders from raw ELM327 response lines to typed OBD-II values (SAE J1979 / ISO 15031-5).

Two layers, both free of IO:

1. **Framing** (:func:`parse_response`): ELM327 text lines → per-ECU messages. Handles CAN
   (ISO 15765-4, 11- and 29-bit) with headers on (``7E8 10 14 49 02 ...`` ISO-TP first/consecutive
   frames) and off (``014`` / ``0: 49 02 ...`` as the ELM prints multi-frame data without
   headers), and the legacy protocols (ISO 9141-2, ISO 14230-4, J1850) with headers on (3-byte
   header + checksum) and off. Spaces on or off (``ATS0``), linefeeds, NUL bytes, the ELM's status
   lines (``NO DATA``, ``SEARCHING...``, ``BUS INIT: ...OK``, ``UNABLE TO CONNECT``...) and garbage
   are all told apart rather than mis-parsed.
2. **Services**: mode 01 PIDs (several per request), supported-PID bitmaps, 0101 monitor status,
   mode 09 PID 02 VIN, and DTCs of modes 03/07/0A from several ECUs.

Unlike python-obd 0.7.3, the VIN decoder strips only padding bytes (NUL and the CAN item-count
byte), never the characters 0, 1 and 2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

__all__ = [
    "ELM_STATUS_MESSAGES",
    "LIVE_PIDS",
    "MAX_PLAUSIBLE_ODOMETER_KM",
    "PID_LENGTHS",
    "PROTOCOL_FRAMING",
    "DtcEntry",
    "EcuMessage",
    "FrameKind",
    "Framing",
    "Ignition",
    "MonitorState",
    "MonitorStatus",
    "ParsedResponse",
    "PidAnswer",
    "VinRead",
    "decode_dtc",
    "decode_dtcs",
    "decode_live_value",
    "decode_mode01",
    "decode_mode01_answers",
    "decode_monitor_status",
    "decode_odometer_km",
    "decode_supported_pids",
    "decode_u16_km",
    "decode_u16_minutes",
    "decode_vin",
    "decode_warmups",
    "framing_for_protocol",
    "merge_monitor_statuses",
    "mode01_values_for",
    "parse_response",
]


class FrameKind(StrEnum):
    """How an ELM327 prints frames for a protocol family."""

    CAN11 = "can11"
    CAN29 = "can29"
    LEGACY = "legacy"


@dataclass(frozen=True)
class Framing:
    """What a response line looks like: protocol family, and whether headers are shown."""

    kind: FrameKind
    headers: bool
    # ISO 9141-2 and ISO 14230-4 end each frame with an 8-bit sum; J1850 uses a CRC we don't check.
    sum_checksum: bool = False

    @property
    def is_can(self) -> bool:
        return self.kind is not FrameKind.LEGACY


# ELM327 protocol numbers (ATDPN) → frame family. "A" (J1939) is heavy-duty and not read.
PROTOCOL_FRAMING: Mapping[str, tuple[FrameKind, bool]] = {
    "1": (FrameKind.LEGACY, False),
    "2": (FrameKind.LEGACY, False),
    "3": (FrameKind.LEGACY, True),
    "4": (FrameKind.LEGACY, True),
    "5": (FrameKind.LEGACY, True),
    "6": (FrameKind.CAN11, False),
    "7": (FrameKind.CAN29, False),
    "8": (FrameKind.CAN11, False),
    "9": (FrameKind.CAN29, False),
}


def framing_for_protocol(protocol: str, *, headers: bool) -> Framing | None:
    """The framing of an ELM327 protocol number, or None for protocols we do not read."""
    entry = PROTOCOL_FRAMING.get(protocol.upper())
    if entry is None:
        return None
    kind, sum_checksum = entry
    return Framing(kind=kind, headers=headers, sum_checksum=sum_checksum)


# Lines an ELM327 prints instead of (or before) data. Matched as prefixes after upper-casing.
ELM_STATUS_MESSAGES: tuple[str, ...] = (
    "NO DATA",
    "SEARCHING...",
    "UNABLE TO CONNECT",
    "BUS INIT",
    "BUS ERROR",
    "BUS BUSY",
    "CAN ERROR",
    "BUFFER FULL",
    "DATA ERROR",
    "<DATA ERROR",
    "FB ERROR",
    "LV RESET",
    "ACT ALERT",
    "STOPPED",
    "ERR",
    "?",
    "OK",
)
# Status lines that only announce progress: data may follow them in the same response.
_PROGRESS_STATUS = ("SEARCHING...", "BUS INIT: ...OK", "BUS INIT:...OK", "OK")

_HEX = re.compile(r"^[0-9A-F]+$")
_HEADERLESS_CF = re.compile(r"^([0-9A-F]):\s*([0-9A-F ]*)$")
_HEADERLESS_LENGTH = re.compile(r"^[0-9A-F]{3}$")


@dataclass(frozen=True)
class EcuMessage:
    """One reassembled message from one ECU: ``data`` starts with the response service id."""

    ecu: str | None
    data: bytes
    frames: int = 1


@dataclass(frozen=True)
class ParsedResponse:
    """The lines of one response, sorted into messages, ELM status lines and garbage."""

    messages: tuple[EcuMessage, ...] = ()
    status: tuple[str, ...] = ()
    garbage: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def no_data(self) -> bool:
        """The vehicle answered that it has nothing for this request (normal for unsupported)."""
        return not self.messages and any(s.startswith("NO DATA") for s in self.status)

    @property
    def unable_to_connect(self) -> bool:
        return any(
            s.startswith(("UNABLE TO CONNECT", "BUS INIT: ...ERROR", "BUS INIT:...ERROR"))
            for s in self.status
        )

    @property
    def errors(self) -> tuple[str, ...]:
        """Status lines that report a failure (not progress, not NO DATA)."""
        return tuple(
            s for s in self.status if not s.startswith(_PROGRESS_STATUS) and s != "NO DATA"
        )

    def for_service(self, sid: int) -> list[EcuMessage]:
        """Messages answering one service (``sid`` is the response id, e.g. 0x41)."""
        return [m for m in self.messages if m.data[:1] == bytes([sid])]


def _clean_lines(lines: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in lines:
        for part in re.split(r"[\r\n]", raw.replace("\x00", "")):
            text = part.strip().strip(">").strip().upper()
            if text:
                out.append(text)
    return out


def _is_status(line: str) -> bool:
    return line.startswith(ELM_STATUS_MESSAGES)


def _hex_bytes(text: str) -> bytes | None:
    compact = text.replace(" ", "")
    if not compact or len(compact) % 2 or not _HEX.match(compact):
        return None
    return bytes.fromhex(compact)


def _split_header(line: str, framing: Framing) -> tuple[str, bytes] | None:
    """Split a header-on line into (header, frame bytes); None when it is not such a line."""
    compact = line.replace(" ", "")
    if not _HEX.match(compact):
        return None
    header_len = {FrameKind.CAN11: 3, FrameKind.CAN29: 8, FrameKind.LEGACY: 6}[framing.kind]
    header, body_hex = compact[:header_len], compact[header_len:]
    body = _hex_bytes(body_hex)
    if len(header) != header_len or body is None:
        return None
    if framing.kind is FrameKind.LEGACY:
        if len(body) < 2:
            return None
        if framing.sum_checksum:
            total = sum(bytes.fromhex(header)) + sum(body[:-1])
            if total & 0xFF != body[-1]:
                return None
        return header, body[:-1]
    return header, body


def _ecu_of(header: str, framing: Framing) -> str:
    # Legacy headers are priority, target, source: the source address names the ECU.
    return header[4:6] if framing.kind is FrameKind.LEGACY else header


class _IsoTpAssembler:
    """Reassembles ISO-TP frames (single, first, consecutive) per ECU, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[EcuMessage] = []
        self.problems: list[str] = []
        self._open: dict[str, tuple[int, bytearray, int, int]] = {}  # ecu → length, data, seq, n

    def feed(self, ecu: str, frame: bytes) -> bool:
        pci = frame[0] >> 4
        if pci == 0x0:
            length = frame[0] & 0x0F
            if length == 0 or length > len(frame) - 1:
                return False
            self.messages.append(EcuMessage(ecu, bytes(frame[1 : 1 + length])))
            return True
        if pci == 0x1:
            if len(frame) < 3:
                return False
            if ecu in self._open:
                self.problems.append(f"ECU {ecu}: new first frame before the last message ended")
            length = ((frame[0] & 0x0F) << 8) | frame[1]
            self._open[ecu] = (length, bytearray(frame[2:]), 0, 1)
            self._finish_if_complete(ecu)
            return True
        if pci == 0x2:
            if ecu not in self._open:
                self.problems.append(f"ECU {ecu}: consecutive frame without a first frame")
                return False
            length, data, seq, count = self._open[ecu]
            expected = (seq + 1) & 0x0F
            if frame[0] & 0x0F != expected:
                self.problems.append(
                    f"ECU {ecu}: frame {frame[0] & 0x0F} arrived where {expected} was due"
                    " (a frame was lost)"
                )
                del self._open[ecu]
                return False
            data.extend(frame[1:])
            self._open[ecu] = (length, data, expected, count + 1)
            self._finish_if_complete(ecu)
            return True
        return False  # flow control (3) or not ISO-TP

    def _finish_if_complete(self, ecu: str) -> None:
        length, data, _seq, count = self._open[ecu]
        if len(data) >= length:
            self.messages.append(EcuMessage(ecu, bytes(data[:length]), frames=count))
            del self._open[ecu]

    def close(self) -> None:
        for ecu, (length, data, _seq, _count) in self._open.items():
            self.problems.append(
                f"ECU {ecu}: multi-frame message incomplete ({len(data)} of {length} bytes)"
            )
        self._open.clear()


def _parse_can_headerless(lines: list[str]) -> tuple[list[EcuMessage], list[str], list[str]]:
    """ELM327 CAN output with headers off: single frames are bare data; multi-frame messages
    are a 3-digit byte count followed by ``N:`` lines."""
    messages: list[EcuMessage] = []
    garbage: list[str] = []
    problems: list[str] = []
    pending: tuple[int, bytearray, int] | None = None  # length, data, next index

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            length, data, frames = pending
            if len(data) >= length:
                messages.append(EcuMessage(None, bytes(data[:length]), frames=frames))
            else:
                problems.append(f"multi-frame message incomplete ({len(data)} of {length} bytes)")
            pending = None

    for line in lines:
        cf = _HEADERLESS_CF.match(line)
        if cf is not None:
            payload = _hex_bytes(cf.group(2))
            if pending is None or payload is None:
                garbage.append(line)
                continue
            # The ELM numbers the frames 0, 1, ... F, 0 ...: a skipped number is a lost frame,
            # which the length alone may not show (the ELM prints the last frame's padding).
            expected = pending[2] & 0x0F
            if int(cf.group(1), 16) != expected:
                problems.append(
                    f"frame {cf.group(1)} arrived where {expected:X} was due (a frame was lost)"
                )
                pending = None
                garbage.append(line)
                continue
            pending[1].extend(payload)
            pending = (pending[0], pending[1], pending[2] + 1)
            continue
        if _HEADERLESS_LENGTH.match(line):
            flush()
            pending = (int(line, 16), bytearray(), 0)
            continue
        data = _hex_bytes(line)
        if data is None:
            garbage.append(line)
            continue
        flush()
        messages.append(EcuMessage(None, data))
    flush()
    return messages, garbage, problems


def parse_response(lines: Iterable[str], framing: Framing) -> ParsedResponse:
    """Sort one response's lines into per-ECU messages, ELM status lines and garbage."""
    cleaned = _clean_lines(lines)
    status = [line for line in cleaned if _is_status(line)]
    body = [line for line in cleaned if not _is_status(line)]
    garbage: list[str] = []
    problems: list[str] = []
    messages: list[EcuMessage] = []

    if framing.is_can and not framing.headers:
        messages, garbage, problems = _parse_can_headerless(body)
    elif framing.is_can:
        assembler = _IsoTpAssembler()
        for line in body:
            split = _split_header(line, framing)
            if split is None or not split[1] or not assembler.feed(*split):
                garbage.append(line)
        assembler.close()
        messages, problems = assembler.messages, assembler.problems
    else:
        for line in body:
            if framing.headers:
                split = _split_header(line, framing)
                if split is None or not split[1]:
                    garbage.append(line)
                    continue
                messages.append(EcuMessage(_ecu_of(split[0], framing), split[1]))
            else:
                data = _hex_bytes(line)
                if data is None:
                    garbage.append(line)
                    continue
                messages.append(EcuMessage(None, data))
    # Negative responses (7F sid nrc) are a refusal, not data.
    negative = [m for m in messages if m.data[:1] == b"\x7f"]
    for m in negative:
        status.append(f"NEGATIVE RESPONSE {m.data.hex(' ').upper()}")
    messages = [m for m in messages if m.data[:1] != b"\x7f" and m.data]
    return ParsedResponse(tuple(messages), tuple(status), tuple(garbage), tuple(problems))


# --------------------------------------------------------------------------- mode 01

# Data bytes after the PID byte, per SAE J1979 mode 01 PID (what a multi-PID walk needs).
PID_LENGTHS: Mapping[int, int] = {
    **{pid: 4 for pid in (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0, 0xE0)},
    0x01: 4,
    0x02: 2,
    0x03: 2,
    0x04: 1,
    0x05: 1,
    0x06: 1,
    0x07: 1,
    0x08: 1,
    0x09: 1,
    0x0A: 1,
    0x0B: 1,
    0x0C: 2,
    0x0D: 1,
    0x0E: 1,
    0x0F: 1,
    0x10: 2,
    0x11: 1,
    0x12: 1,
    0x13: 1,
    **{pid: 2 for pid in range(0x14, 0x1C)},
    0x1C: 1,
    0x1D: 1,
    0x1E: 1,
    0x1F: 2,
    0x21: 2,
    0x22: 2,
    0x23: 2,
    **{pid: 4 for pid in range(0x24, 0x2C)},
    0x2C: 1,
    0x2D: 1,
    0x2E: 1,
    0x2F: 1,
    0x30: 1,
    0x31: 2,
    0x32: 2,
    0x33: 1,
    **{pid: 4 for pid in range(0x34, 0x3C)},
    **{pid: 2 for pid in range(0x3C, 0x40)},
    0x41: 4,
    0x42: 2,
    0x43: 2,
    0x44: 2,
    0x45: 1,
    0x46: 1,
    **{pid: 1 for pid in range(0x47, 0x4D)},
    0x4D: 2,
    0x4E: 2,
    0x4F: 4,
    0x50: 4,
    0x51: 1,
    0x52: 1,
    0x53: 2,
    0x54: 2,
    **{pid: 2 for pid in range(0x55, 0x5A)},
    0x5A: 1,
    0x5B: 1,
    0x5C: 1,
    0x5D: 2,
    0x5E: 2,
    0x5F: 1,
    0xA6: 4,
}


@dataclass(frozen=True)
class PidAnswer:
    """One ECU's value of one mode-01 PID (``ecu`` is None when the adapter shows no headers)."""

    ecu: str | None
    pid: int
    data: bytes


def decode_mode01_answers(parsed: ParsedResponse) -> tuple[list[PidAnswer], list[str]]:
    """Every mode-01 value in a response, one per ECU answer, in arrival order.

    Several ECUs answer the same PID (every emissions ECU answers 0x00 and 0x01); without
    headers they cannot be told apart, so nothing here keeps one answer over another.
    Returns the answers and the problems met (a PID of unknown length, a truncated value): the
    walk stops at the first such PID of a message, keeping what came before it.
    """
    answers: list[PidAnswer] = []
    problems: list[str] = []
    for message in parsed.for_service(0x41):
        data = message.data
        index = 1
        while index < len(data):
            pid = data[index]
            length = PID_LENGTHS.get(pid)
            if length is None:
                problems.append(f"PID 0x{pid:02X} has no known length; rest of message skipped")
                break
            if index + 1 + length > len(data):
                problems.append(f"PID 0x{pid:02X} truncated ({len(data) - index - 1} bytes)")
                break
            answers.append(PidAnswer(message.ecu, pid, data[index + 1 : index + 1 + length]))
            index += 1 + length
    return answers, problems


def decode_mode01(
    parsed: ParsedResponse,
) -> tuple[dict[str | None, dict[int, bytes]], list[str]]:
    """Split mode-01 answers (one or several PIDs per message) into ``{ecu: {pid: data}}``.

    One value per ECU and PID: without headers every answer is ECU ``None`` and the last one
    wins, so callers that must see every answer use :func:`decode_mode01_answers`.
    """
    answers, problems = decode_mode01_answers(parsed)
    values: dict[str | None, dict[int, bytes]] = {}
    for answer in answers:
        values.setdefault(answer.ecu, {})[answer.pid] = answer.data
    return values, problems


def decode_supported_pids(base: int, data: bytes) -> set[int]:
    """PIDs a bitmap answer to PID ``base`` (0x00, 0x20, ...) marks supported (MSB = base+1)."""
    if len(data) != 4:
        raise ValueError(f"a supported-PID bitmap has 4 bytes, got {len(data)}")
    bits = int.from_bytes(data, "big")
    return {base + i + 1 for i in range(32) if bits & (1 << (31 - i))}


class Ignition(StrEnum):
    SPARK = "spark"
    COMPRESSION = "compression"


class MonitorState(StrEnum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    UNSUPPORTED = "unsupported"


# Continuous monitors (byte B bits 0-2) and the non-continuous ones of byte C/D per ignition.
CONTINUOUS_MONITORS = ("misfire", "fuel_system", "components")
SPARK_MONITORS: tuple[str | None, ...] = (
    "catalyst",
    "heated_catalyst",
    "evaporative_system",
    "secondary_air_system",
    "ac_refrigerant",
    "oxygen_sensor",
    "oxygen_sensor_heater",
    "egr_vvt_system",
)
COMPRESSION_MONITORS: tuple[str | None, ...] = (
    "nmhc_catalyst",
    "nox_scr_monitor",
    None,
    "boost_pressure",
    None,
    "exhaust_gas_sensor",
    "pm_filter",
    "egr_vvt_system",
)


@dataclass(frozen=True)
class MonitorStatus:
    """Mode 01 PID 01: MIL, number of confirmed DTCs and readiness monitors since clear."""

    mil_on: bool
    dtc_count: int
    ignition: Ignition
    monitors: dict[str, MonitorState] = field(default_factory=dict)

    @property
    def incomplete(self) -> list[str]:
        return [n for n, s in self.monitors.items() if s is MonitorState.INCOMPLETE]


def _state(available: bool, incomplete: bool) -> MonitorState:
    if not available:
        return MonitorState.UNSUPPORTED
    return MonitorState.INCOMPLETE if incomplete else MonitorState.COMPLETE


def decode_monitor_status(data: bytes) -> MonitorStatus:
    """Decode PID 0x01's four bytes (A: MIL + count, B: continuous, C: available, D: incomplete)."""
    if len(data) != 4:
        raise ValueError(f"PID 0x01 has 4 data bytes, got {len(data)}")
    a, b, c, d = data
    ignition = Ignition.COMPRESSION if b & 0x08 else Ignition.SPARK
    monitors: dict[str, MonitorState] = {}
    for bit, name in enumerate(CONTINUOUS_MONITORS):
        monitors[name] = _state(bool(b & (1 << bit)), bool(b & (1 << (bit + 4))))
    names = COMPRESSION_MONITORS if ignition is Ignition.COMPRESSION else SPARK_MONITORS
    for bit, maybe_name in enumerate(names):
        if maybe_name is not None:
            monitors[maybe_name] = _state(bool(c & (1 << bit)), bool(d & (1 << bit)))
    return MonitorStatus(
        mil_on=bool(a & 0x80), dtc_count=a & 0x7F, ignition=ignition, monitors=monitors
    )


def merge_monitor_statuses(statuses: Sequence[MonitorStatus]) -> MonitorStatus:
    """One car's status from every ECU's answer to PID 0x01, as SAE J1979 combines them.

    Each ECU reports its own MIL request, its own count of confirmed codes and its own monitors:
    the MIL is on if any ECU asks for it, the car's count is the sum, a monitor is supported if
    any ECU supports it and complete only if every ECU that supports it has completed it. The
    ignition type is compression if any ECU says so (a transmission ECU of a diesel may not set
    the bit; none of a petrol car sets it); monitors named for the other ignition type (byte C/D
    mean different monitors for each) are left out.
    """
    if not statuses:
        raise ValueError("no PID 0x01 answers to merge")
    if len(statuses) == 1:
        return statuses[0]
    ignition = (
        Ignition.COMPRESSION
        if any(s.ignition is Ignition.COMPRESSION for s in statuses)
        else Ignition.SPARK
    )
    names = [
        *CONTINUOUS_MONITORS,
        *(
            n
            for n in (COMPRESSION_MONITORS if ignition is Ignition.COMPRESSION else SPARK_MONITORS)
            if n is not None
        ),
    ]
    monitors: dict[str, MonitorState] = {}
    for name in names:
        states = {s.monitors.get(name, MonitorState.UNSUPPORTED) for s in statuses}
        if MonitorState.INCOMPLETE in states:
            monitors[name] = MonitorState.INCOMPLETE
        elif MonitorState.COMPLETE in states:
            monitors[name] = MonitorState.COMPLETE
        else:
            monitors[name] = MonitorState.UNSUPPORTED
    return MonitorStatus(
        mil_on=any(s.mil_on for s in statuses),
        dtc_count=sum(s.dtc_count for s in statuses),
        ignition=ignition,
        monitors=monitors,
    )


def _expect(data: bytes, length: int, pid: int) -> None:
    if len(data) != length:
        raise ValueError(f"PID 0x{pid:02X} has {length} data bytes, got {len(data)}")


#: No car has covered more (the valuation's bound too): past it an odometer is a data error, such
#: as ``FF FF FF FF`` (429,496,729.5 km), the all-ones "not available" pattern of some ECUs.
MAX_PLAUSIBLE_ODOMETER_KM = 3_000_000


def decode_odometer_km(data: bytes) -> float:
    """PID 0xA6: odometer, 4 bytes unsigned big-endian in 0.1 km (not checked for plausibility:
    compare with :data:`MAX_PLAUSIBLE_ODOMETER_KM`)."""
    _expect(data, 4, 0xA6)
    return int.from_bytes(data, "big") / 10


def decode_u16_km(data: bytes) -> int:
    """PIDs 0x21 (distance with MIL on) and 0x31 (distance since codes cleared), km."""
    if len(data) != 2:
        raise ValueError(f"a distance PID has 2 data bytes, got {len(data)}")
    return int.from_bytes(data, "big")


def decode_u16_minutes(data: bytes) -> int:
    """PID 0x4E: minutes (engine run time) since codes cleared."""
    _expect(data, 2, 0x4E)
    return int.from_bytes(data, "big")


def decode_warmups(data: bytes) -> int:
    """PID 0x30: warm-ups since codes cleared (saturates at 255)."""
    _expect(data, 1, 0x30)
    return data[0]


@dataclass(frozen=True)
class LivePid:
    pid: int
    name: str
    unit: str
    length: int


# The snapshot of live data the appraisal keeps; names are the keys in ``ObdSummary.live``.
LIVE_PIDS: Mapping[int, LivePid] = {
    0x04: LivePid(0x04, "engine_load_pct", "%", 1),
    0x05: LivePid(0x05, "coolant_temp_c", "°C", 1),
    0x06: LivePid(0x06, "short_fuel_trim_bank1_pct", "%", 1),
    0x07: LivePid(0x07, "long_fuel_trim_bank1_pct", "%", 1),
    0x0C: LivePid(0x0C, "engine_rpm", "rpm", 2),
    0x42: LivePid(0x42, "control_module_voltage_v", "V", 2),
}


def decode_live_value(pid: int, data: bytes) -> float:
    """Decode one live PID of :data:`LIVE_PIDS` into SI units (J1979 scaling)."""
    spec = LIVE_PIDS.get(pid)
    if spec is None:
        raise ValueError(f"PID 0x{pid:02X} is not a live PID this reader decodes")
    _expect(data, spec.length, pid)
    if pid == 0x04:
        return round(data[0] * 100 / 255, 2)
    if pid == 0x05:
        return float(data[0] - 40)
    if pid in (0x06, 0x07):
        return round((data[0] - 128) * 100 / 128, 2)
    if pid == 0x0C:
        return int.from_bytes(data, "big") / 4
    return int.from_bytes(data, "big") / 1000  # 0x42


# --------------------------------------------------------------------------- mode 09


@dataclass(frozen=True)
class VinRead:
    """What mode 09 PID 02 answered: the VIN text (not yet validated) and how it was found."""

    vin: str | None
    ecu: str | None = None
    raw_hex: str = ""
    problems: tuple[str, ...] = ()


def _vin_text(payload: bytes) -> str:
    # Leading bytes below '0' are padding (NUL) or the CAN item count; trailing NUL/space padding.
    start = 0
    while start < len(payload) and payload[start] < 0x30:
        start += 1
    return payload[start:].rstrip(b"\x00 ").decode("ascii", errors="replace")


def decode_vin(parsed: ParsedResponse, framing: Framing) -> VinRead:
    """Reassemble the VIN from mode 09 PID 02 (CAN ISO-TP or legacy sequenced frames)."""
    answers = [m for m in parsed.for_service(0x49) if m.data[1:2] == b"\x02"]
    if not answers:
        return VinRead(None, problems=("no answer to 0902",) if not parsed.no_data else ())
    by_ecu: dict[str | None, bytes] = {}
    problems: list[str] = []
    if framing.is_can:
        for m in answers:
            by_ecu.setdefault(m.ecu, m.data[2:])
    else:
        frames: dict[str | None, list[EcuMessage]] = {}
        for m in answers:
            frames.setdefault(m.ecu, []).append(m)
        for ecu, items in frames.items():
            ordered = sorted((m for m in items if len(m.data) >= 3), key=lambda m: m.data[2])
            indices = [m.data[2] for m in ordered]
            if indices != list(range(1, len(ordered) + 1)):
                problems.append(f"ECU {ecu}: VIN frames {indices} are not 1..{len(ordered)}")
            by_ecu[ecu] = b"".join(m.data[3:] for m in ordered)
    texts = {ecu: _vin_text(payload) for ecu, payload in by_ecu.items()}
    distinct = sorted({t for t in texts.values() if t})
    if len(distinct) > 1:
        problems.append("ECUs report different VINs: " + ", ".join(distinct))
    ecu, payload = next(iter(by_ecu.items()))
    return VinRead(
        vin=texts[ecu] or None,
        ecu=ecu,
        raw_hex=payload.hex().upper(),
        problems=tuple(problems),
    )


# --------------------------------------------------------------------------- DTCs

_DTC_LETTERS = "PCBU"
DtcKind = Literal["stored", "pending", "permanent"]
_DTC_SERVICE: Mapping[DtcKind, int] = {"stored": 0x43, "pending": 0x47, "permanent": 0x4A}


def decode_dtc(pair: bytes) -> str:
    """Two bytes → ``P0301`` style code (bits 15-14 system letter, 13-12 digit, 3 nibbles)."""
    if len(pair) != 2:
        raise ValueError(f"a DTC has 2 bytes, got {len(pair)}")
    value = int.from_bytes(pair, "big")
    return f"{_DTC_LETTERS[value >> 14]}{(value >> 12) & 0x3}{value & 0xFFF:03X}"


@dataclass(frozen=True)
class DtcEntry:
    code: str
    kind: DtcKind
    ecu: str | None


def decode_dtcs(
    parsed: ParsedResponse, kind: DtcKind, framing: Framing
) -> tuple[list[DtcEntry], list[str]]:
    """DTCs of one kind from every answering ECU, de-duplicated per ECU, in order.

    CAN answers carry a count byte (``43 02 ...``); legacy answers carry three code slots per
    frame, ``00 00`` padding the last.
    """
    sid = _DTC_SERVICE[kind]
    entries: list[DtcEntry] = []
    problems: list[str] = []
    seen: set[tuple[str | None, str]] = set()
    for message in parsed.for_service(sid):
        if framing.is_can:
            count = message.data[1] if len(message.data) > 1 else 0
            body = message.data[2 : 2 + 2 * count]
            if len(body) < 2 * count:
                problems.append(
                    f"ECU {message.ecu}: {count} codes announced, {len(body) // 2} received"
                )
        else:
            body = message.data[1:]
        for offset in range(0, len(body) - 1, 2):
            pair = body[offset : offset + 2]
            if pair == b"\x00\x00":
                continue
            code = decode_dtc(pair)
            if (message.ecu, code) not in seen:
                seen.add((message.ecu, code))
                entries.append(DtcEntry(code, kind, message.ecu))
    return entries, problems


def mode01_values_for(
    values: Mapping[str | None, Mapping[int, bytes]], pid: int, preferred: Sequence[str | None]
) -> tuple[str | None, bytes] | None:
    """The value of a PID from the preferred ECU (engine first), else from any ECU."""
    for ecu in preferred:
        if ecu in values and pid in values[ecu]:
            return ecu, values[ecu][pid]
    for ecu, pids in values.items():
        if pid in pids:
            return ecu, pids[pid]
    return None
