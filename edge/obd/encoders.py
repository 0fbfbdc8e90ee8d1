"""Pure encoders: typed values → the bytes and ELM327 text lines a car and adapter would send.

The inverse of :mod:`edge.obd.decoders`, used by the simulator and by round-trip property tests.
Frames follow ISO 15765-2 (CAN ISO-TP single/first/consecutive frames, padded to 8 bytes as cars
do) and the legacy (ISO 9141-2 / KWP) layout of 3 header bytes, up to 7 data bytes and an 8-bit
sum checksum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from edge.obd.decoders import (
    COMPRESSION_MONITORS,
    CONTINUOUS_MONITORS,
    LIVE_PIDS,
    PID_LENGTHS,
    SPARK_MONITORS,
    FrameKind,
    Framing,
    Ignition,
    MonitorState,
)

__all__ = [
    "encode_can_frames",
    "encode_dtc",
    "encode_dtc_payloads",
    "encode_legacy_frames",
    "encode_live_value",
    "encode_monitor_status",
    "encode_response_lines",
    "encode_supported_bitmap",
    "encode_vin_payload",
    "pid_length",
]

_LETTERS = "PCBU"
_CAN_PAD = 0x00


def encode_dtc(code: str) -> bytes:
    """``P0301`` → two bytes."""
    letter, digit, rest = code[0], int(code[1]), int(code[2:], 16)
    return ((_LETTERS.index(letter) << 14) | (digit << 12) | rest).to_bytes(2, "big")


def encode_supported_bitmap(base: int, supported: Iterable[int]) -> bytes:
    """The 4-byte bitmap answer to PID ``base`` for the PIDs in ``supported``."""
    bits = 0
    for pid in supported:
        if base < pid <= base + 32:
            bits |= 1 << (31 - (pid - base - 1))
    return bits.to_bytes(4, "big")


def encode_monitor_status(
    *,
    mil_on: bool,
    dtc_count: int,
    ignition: Ignition,
    monitors: Mapping[str, MonitorState],
) -> bytes:
    """PID 0x01's four bytes; monitors not named are unsupported."""
    a = (0x80 if mil_on else 0) | min(dtc_count, 0x7F)
    b = 0x08 if ignition is Ignition.COMPRESSION else 0
    c = d = 0
    for bit, name in enumerate(CONTINUOUS_MONITORS):
        state = monitors.get(name, MonitorState.UNSUPPORTED)
        if state is not MonitorState.UNSUPPORTED:
            b |= 1 << bit
            if state is MonitorState.INCOMPLETE:
                b |= 1 << (bit + 4)
    names = COMPRESSION_MONITORS if ignition is Ignition.COMPRESSION else SPARK_MONITORS
    for bit, maybe_name in enumerate(names):
        state = monitors.get(maybe_name or "", MonitorState.UNSUPPORTED)
        if maybe_name is not None and state is not MonitorState.UNSUPPORTED:
            c |= 1 << bit
            if state is MonitorState.INCOMPLETE:
                d |= 1 << bit
    return bytes([a, b, c, d])


def encode_live_value(pid: int, value: float) -> bytes:
    """Engineering value → PID bytes (inverse of ``decode_live_value``, rounded, clamped)."""
    spec = LIVE_PIDS[pid]

    def clamp(raw: float, top: int) -> int:
        return max(0, min(top, round(raw)))

    if pid == 0x04:
        return bytes([clamp(value * 255 / 100, 255)])
    if pid == 0x05:
        return bytes([clamp(value + 40, 255)])
    if pid in (0x06, 0x07):
        return bytes([clamp(value * 128 / 100 + 128, 255)])
    if pid == 0x0C:
        return clamp(value * 4, 0xFFFF).to_bytes(spec.length, "big")
    return clamp(value * 1000, 0xFFFF).to_bytes(spec.length, "big")  # 0x42


def encode_vin_payload(vin: str, framing: Framing) -> list[bytes]:
    """Mode 09 PID 02 service data: one CAN message, or five legacy frames (NUL-padded to 20)."""
    text = vin.encode("ascii")
    if framing.is_can:
        return [b"\x49\x02\x01" + text]
    padded = text.rjust(20, b"\x00")
    return [b"\x49\x02" + bytes([i + 1]) + padded[i * 4 : i * 4 + 4] for i in range(5)]


def encode_dtc_payloads(sid: int, codes: Sequence[str], framing: Framing) -> list[bytes]:
    """DTC service data: CAN carries a count byte; legacy carries 3 codes per frame, 0-padded."""
    raw = b"".join(encode_dtc(c) for c in codes)
    if framing.is_can:
        return [bytes([sid, len(codes)]) + raw]
    if not raw:
        raw = b"\x00" * 6
    raw = raw.ljust(-(-len(raw) // 6) * 6, b"\x00")
    return [bytes([sid]) + raw[i : i + 6] for i in range(0, len(raw), 6)]


def encode_can_frames(payload: bytes) -> list[bytes]:
    """ISO-TP frames (8 bytes, padded) carrying ``payload``."""
    if len(payload) <= 7:
        return [bytes([len(payload)]) + payload.ljust(7, bytes([_CAN_PAD]))]
    frames = [bytes([0x10 | (len(payload) >> 8), len(payload) & 0xFF]) + payload[:6]]
    rest, seq = payload[6:], 1
    while rest:
        chunk, rest = rest[:7], rest[7:]
        frames.append(bytes([0x20 | (seq & 0x0F)]) + chunk.ljust(7, bytes([_CAN_PAD])))
        seq += 1
    return frames


def encode_legacy_frames(payload: bytes, ecu_address: int) -> bytes:
    """One legacy frame: header ``48 6B <ecu>``, data and the 8-bit sum checksum."""
    frame = bytes([0x48, 0x6B, ecu_address]) + payload
    return frame + bytes([sum(frame) & 0xFF])


def _text(data: bytes, spaces: bool) -> str:
    return data.hex(" ").upper() if spaces else data.hex().upper()


def encode_response_lines(
    payloads: Sequence[tuple[str, bytes]],
    framing: Framing,
    *,
    spaces: bool = True,
) -> list[str]:
    """ELM327 output lines for service payloads ``[(ecu_header, data), ...]``.

    ``ecu_header`` is the CAN id (``7E8``, ``18DAF110``) or, on legacy protocols, the source
    address in hex (``10``). Output matches an ELM327 with CAN auto-formatting on (``ATCAF1``).
    """
    lines: list[str] = []
    sep = " " if spaces else ""
    for ecu, payload in payloads:
        if framing.kind is FrameKind.LEGACY:
            frame = encode_legacy_frames(payload, int(ecu, 16))
            lines.append(_text(frame if framing.headers else payload, spaces))
            continue
        if framing.headers:
            for frame in encode_can_frames(payload):
                # ELM with headers: on 11-bit the id is 3 digits; on 29-bit 4 bytes.
                header = (
                    ecu if framing.kind is FrameKind.CAN11 else _text(bytes.fromhex(ecu), spaces)
                )
                lines.append(header + sep + _text(frame, spaces))
            continue
        if len(payload) <= 7:
            lines.append(_text(payload, spaces))
            continue
        lines.append(f"{len(payload):03X}")
        lines.append("0:" + sep + _text(payload[:6], spaces))
        rest, seq = payload[6:], 1
        while rest:
            # The ELM prints the whole last frame, padding included; the length line bounds it.
            chunk, rest = rest[:7].ljust(7, bytes([_CAN_PAD])), rest[7:]
            lines.append(f"{seq & 0x0F:X}:" + sep + _text(chunk, spaces))
            seq += 1
    return lines


def pid_length(pid: int) -> int:
    """Data length of a mode-01 PID (for the simulator's multi-PID answers)."""
    return PID_LENGTHS[pid]
