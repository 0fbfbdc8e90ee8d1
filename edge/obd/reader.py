"""Read a vehicle over OBD-II into one :class:`~edge.obd.reading.VehicleReading`.

:func:`read_vehicle` connects (protocol search with a first-connect budget, or a pinned
protocol with search as fallback; retries with backoff), then reads only what the vehicle says it
supports, several mode-01 PIDs per request on CAN (ELM327 + ISO 15765-4 allow six), and decodes
everything with kioskmatch's own decoders. The whole call is bounded by ``timeout``.

Failures after connecting never raise: the reading comes back with ``partial: true`` and the
reasons (adapter unplugged, timed out, bus errors after retries). Failures before any vehicle
data raise an :class:`~edge.obd.errors.ObdError` naming the port and the likely cause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, TypeVar

from edge.obd.decoders import (
    LIVE_PIDS,
    MAX_PLAUSIBLE_ODOMETER_KM,
    MonitorStatus,
    ParsedResponse,
    PidAnswer,
    decode_dtcs,
    decode_live_value,
    decode_mode01_answers,
    decode_monitor_status,
    decode_odometer_km,
    decode_supported_pids,
    decode_u16_km,
    decode_u16_minutes,
    decode_vin,
    decode_warmups,
    merge_monitor_statuses,
    parse_response,
)
from edge.obd.elm import PROTOCOL_NAMES, ElmLink
from edge.obd.errors import (
    AdapterDisconnected,
    AdapterNotFound,
    AdapterNotResponding,
    NoVehicleData,
    ReadTimeout,
)
from edge.obd.reading import (
    DTC_KINDS,
    AdapterInfo,
    DtcRecord,
    FieldStatus,
    ProtocolInfo,
    Sourced,
    VehicleReading,
    dtc_reason,
    odometer_reason,
)
from edge.obd.session import DTC_COMMANDS, VIN_COMMAND, KioskOBD
from edge.obd.vin import check_vin
from edge.protocol import VinSource

logger = logging.getLogger(__name__)

__all__ = ["ReadOptions", "read_vehicle"]

T = TypeVar("T")

BITMAP_PIDS = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0)
# Status and since-clear PIDs first: they matter most to the appraisal if the read is cut short.
STATUS_PIDS = (0x01, 0x21, 0x30, 0x31, 0x4E, 0xA6)
LIVE_ORDER = (0x0C, 0x05, 0x04, 0x06, 0x07, 0x42)
# Status lines worth retrying: the bus or adapter was momentarily busy, not the car saying no.
_RETRYABLE = (
    "CAN ERROR",
    "BUS BUSY",
    "BUS ERROR",
    "DATA ERROR",
    "<DATA ERROR",
    "BUFFER FULL",
    "FB ERROR",
    "STOPPED",
    "ERR",
    "?",
    "SEARCHING...",
)
# Without headers several answers to one PID cannot be told apart; for these the value that
# best serves the appraisal's checks is kept (J1979: every emissions ECU answers mode 01).
# Since-clear counters: the least (a recent clear is what the appraisal looks for); distance
# with the MIL on: the most. Raw big-endian bytes order like the decoded values.
_HEADERLESS_PICK: dict[int, tuple[str, Callable[[Sequence[bytes]], bytes]]] = {
    0x30: ("least", min),
    0x31: ("least", min),
    0x4E: ("least", min),
    0x21: ("most", max),
}


@dataclass(frozen=True)
class ReadOptions:
    """Tuning of one read; the defaults suit a kiosk with a real adapter."""

    timeout: float = 60.0  # the whole read, connect included
    request_timeout: float = 5.0  # one exchange with the adapter
    search_timeout: float = 20.0  # the first 0100 while the adapter searches protocols
    protocol: str | None = None  # pinned ELM327 protocol number ("6"); search if it fails
    baudrate: int | None = None  # None: detect (device paths), ignored for socket://
    connect_attempts: int = 3
    retry_backoff_s: float = 0.5  # doubled after each failed connect attempt
    request_retries: int = 2  # per request, for CAN ERROR / BUS BUSY / garbage
    multi_pid: bool = True  # several mode-01 PIDs per request on CAN


def read_vehicle(
    port: str,
    *,
    timeout: float = 60.0,
    protocol: str | None = None,
    options: ReadOptions | None = None,
    today: date | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> VehicleReading:
    """Connect to the adapter on ``port`` and read the vehicle, within ``timeout`` seconds.

    ``port`` is a device path (``/dev/ttyUSB0``, ``/dev/rfcomm0``, a simulator's pty) or
    ``socket://host:port``. ``timeout`` and ``protocol`` override the same fields of
    ``options``. Raises :class:`AdapterNotFound`, :class:`AdapterNotResponding`,
    :class:`NoVehicleData` or :class:`ReadTimeout` when no vehicle data could be read at all.
    """
    base = options or ReadOptions()
    opts = ReadOptions(
        **{
            **base.__dict__,
            "timeout": timeout,
            "protocol": protocol if protocol is not None else base.protocol,
        }
    )
    started_at = datetime.now(UTC)
    started = clock()
    deadline = started + opts.timeout
    link = _connect(port, opts, deadline, clock, sleep)
    connected = clock()
    session: KioskOBD | None = None
    try:
        session = KioskOBD(link)
        link.phase = "read"
        plan = _ReadPlan(session, link, opts, clock, sleep, today)
        plan.run()
        reading = plan.build(started_at=started_at, duration=clock() - started)
        return reading.model_copy(update={"connect_s": round(connected - started, 4)})
    finally:
        if session is not None:
            session.close()
        link.close()


def _connect(
    port: str,
    opts: ReadOptions,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> ElmLink:
    """Open and bring up the adapter, retrying with backoff while the budget lasts."""
    backoff = opts.retry_backoff_s
    attempt = 0
    while True:
        attempt += 1
        link = ElmLink(
            port,
            baudrate=opts.baudrate,
            request_timeout=opts.request_timeout,
            search_timeout=opts.search_timeout,
            clock=clock,
        )
        link.deadline = deadline
        try:
            link.open()  # AdapterNotFound is not retried: a missing device won't appear by waiting
            link.initialise()
            link.connect_vehicle(opts.protocol)
            return link
        except AdapterNotFound:
            link.close()
            raise
        except ReadTimeout as exc:
            link.close()
            stage = "the vehicle" if link.identity else "the adapter"
            raise ReadTimeout(
                f"{port}: could not connect to {stage} within the {opts.timeout:g} s budget"
                f" ({exc}); check the adapter is plugged into the car and the ignition is on",
                port=port,
            ) from exc
        except (AdapterNotResponding, NoVehicleData, AdapterDisconnected) as exc:
            link.close()
            remaining = deadline - clock()
            if attempt >= opts.connect_attempts or remaining <= backoff:
                raise
            logger.warning(
                "%s: connect attempt %d failed (%s); retrying in %.1f s",
                port,
                attempt,
                exc,
                backoff,
            )
            sleep(backoff)
            backoff *= 2


class _StopReadingError(Exception):
    """The link is gone (unplugged, silent, out of time): stop reading, keep what we have."""


def _ok(value: T, source: str) -> Sourced[T]:
    return Sourced[T](value=value, status=FieldStatus.OK, source=source)


def _not(status: FieldStatus, source: str, detail: str) -> Sourced[Any]:
    return Sourced[Any](status=status, source=source, detail=detail)


def _src(request: str, ecu: str | None) -> str:
    return f"obd:{request}@{ecu}" if ecu else f"obd:{request}"


class _ReadPlan:
    """The read after connecting: bitmaps, status PIDs, live PIDs, VIN, DTCs."""

    def __init__(
        self,
        session: KioskOBD,
        link: ElmLink,
        opts: ReadOptions,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        today: date | None,
    ) -> None:
        self.session = session
        self.link = link
        self.opts = opts
        self.clock = clock
        self.sleep = sleep
        self.today = today
        self.partial_reasons: list[str] = []
        self.stopped = False
        self.supported: set[int] = set()
        self.mode01: dict[int, list[PidAnswer]] = {}  # every answer, in arrival order
        self.mode01_failed: dict[int, str] = {}
        self.vin: Any = None
        self.vin_status: Sourced[str] = Sourced[str]()
        self.dtcs: list[DtcRecord] = []
        self.dtc_reads: dict[str, Sourced[int]] = {}
        framing = link.framing
        assert framing is not None
        self.framing = framing
        self.engine_first: list[str | None] = ["7E8", "18DAF110", "10"]
        self._bitmaps_read: set[int] = set()

    # ------------------------------------------------------------------ plumbing
    def request(self, command: bytes | Any, *, whole: bool = False) -> ParsedResponse:
        """One request (raw bytes or a named ``OBDCommand``) with retries on transient bus
        errors; raises _StopReadingError when the link is gone, after noting why.

        ``whole``: an answer with framing problems or unreadable lines is asked again too (a
        lost frame of a DTC answer loses codes, and the next answer may well be whole).
        """
        attempt = 0
        flawed_answer: ParsedResponse | None = None
        while True:
            try:
                if isinstance(command, bytes):
                    parsed = self.session.request(command)
                else:
                    parsed = self.session.query_named(command)
            except (AdapterDisconnected, ReadTimeout, AdapterNotResponding) as exc:
                self.partial_reasons.append(str(exc))
                self.stopped = True
                raise _StopReadingError from exc
            flawed = whole and bool(parsed.messages) and bool(parsed.problems or parsed.garbage)
            if flawed:
                flawed_answer = parsed
            if attempt >= self.opts.request_retries or parsed.no_data:
                # A flawed answer still beats none: the codes it carried are kept.
                return flawed_answer if flawed_answer and not parsed.messages else parsed
            if parsed.messages and not flawed:
                return parsed
            transient = [s for s in parsed.errors if s.startswith(_RETRYABLE)]
            if not transient and not parsed.garbage and not flawed:
                return parsed
            attempt += 1
            logger.info(
                "%s: request answered %s; retry %d",
                self.link.port,
                transient or list(parsed.garbage) or list(parsed.problems),
                attempt,
            )
            self.sleep(0.05 * attempt)

    def _failure(self, parsed: ParsedResponse) -> str:
        parts = list(parsed.errors) + [f"unreadable: {g!r}" for g in parsed.garbage[:2]]
        parts += list(parsed.problems)
        return "; ".join(parts) or "no answer"

    # ------------------------------------------------------------------ steps
    def run(self) -> None:
        steps: Sequence[Callable[[], None]] = (
            self.read_supported,
            self.read_status_pids,
            self.read_vin,
            self.read_dtcs,
            self.read_live,
        )
        for step in steps:
            if self.stopped:
                break
            try:
                step()
            except _StopReadingError:
                break
        if self.stopped:
            logger.warning("%s: read stopped early: %s", self.link.port, self.partial_reasons[-1])

    def read_supported(self) -> None:
        """Supported-PID bitmaps: 0100 came with the connect; the rest in one CAN request."""
        self._absorb_bitmaps(parse_response(self.link.first_response, self.framing))
        while True:
            pending = [
                b for b in BITMAP_PIDS if b and b in self.supported and not self._have_bitmap(b)
            ]
            if not pending:
                return
            if self._multi():
                # Ask every later bitmap at once: an ECU answers only those it supports, and
                # ISO 15765-4 allows six supported-PID PIDs in one request.
                batch = [b for b in BITMAP_PIDS if b > min(pending) and not self._have_bitmap(b)][
                    :6
                ]
                batch = sorted(set(batch) | {min(pending)})[:6]
            else:
                batch = pending[:1]
            answer = self.request(b"01" + bytes(batch).hex().upper().encode())
            if not self._absorb_bitmaps(answer):
                self.partial_reasons.append(
                    f"supported-PID bitmap {', '.join(f'0x{b:02X}' for b in batch)}"
                    f" unreadable: {self._failure(answer)}"
                )
                return

    def _have_bitmap(self, base: int) -> bool:
        return base in self._bitmaps_read

    def _unread_bitmap(self, pid: int) -> int | None:
        """The bitmap left unread that would say whether ``pid`` is supported, or None when
        the bitmaps read settle it (each bitmap's last bit says whether the next one exists)."""
        target = ((pid - 1) // 0x20) * 0x20
        base = 0x00
        while base < target:
            if not self._have_bitmap(base):
                return base
            if base + 0x20 not in self.supported:
                return None  # the chain ends here: every later PID is unsupported
            base += 0x20
        return None if self._have_bitmap(target) else target

    def _absorb_bitmaps(self, parsed: ParsedResponse) -> bool:
        # Every ECU's bitmap counts (a PID is there if any ECU has it), with headers or without.
        answers, _problems = decode_mode01_answers(parsed)
        found = False
        for answer in answers:
            if answer.pid in BITMAP_PIDS and len(answer.data) == 4:
                self.supported |= decode_supported_pids(answer.pid, answer.data)
                self._bitmaps_read.add(answer.pid)
                found = True
        self.session.mark_supported(1, self.supported)
        return found

    def _multi(self) -> bool:
        return self.opts.multi_pid and self.framing.is_can

    def _read_pids(self, wanted: Sequence[int]) -> None:
        pids = [p for p in wanted if p in self.supported or p == 0x01]
        size = 6 if self._multi() else 1
        for i in range(0, len(pids), size):
            chunk = pids[i : i + size]
            answer = self.request(b"01" + bytes(chunk).hex().upper().encode())
            answers, problems = decode_mode01_answers(answer)
            self._keep(answers, chunk)
            got = {a.pid for a in answers}
            missing = [p for p in chunk if p not in got]
            if missing and len(chunk) > 1:
                # Some ECUs and clones mishandle multi-PID requests: ask the rest one by one.
                logger.info(
                    "%s: multi-PID request lacked %s; asking one by one",
                    self.link.port,
                    [f"{p:02X}" for p in missing],
                )
                for pid in missing:
                    single = self.request(b"01" + f"{pid:02X}".encode())
                    sanswers, sproblems = decode_mode01_answers(single)
                    if self._keep(sanswers, [pid]):
                        continue
                    if not single.no_data:
                        self.mode01_failed[pid] = self._failure(single) + "; ".join(sproblems)
            elif missing and not answer.no_data:
                self.mode01_failed[missing[0]] = self._failure(answer) + "; ".join(problems)

    def _keep(self, answers: Sequence[PidAnswer], asked: Sequence[int]) -> bool:
        """Keep the answers to the PIDs asked; True if any came."""
        kept = [a for a in answers if a.pid in asked]
        for a in kept:
            self.mode01.setdefault(a.pid, []).append(a)
        return bool(kept)

    def read_status_pids(self) -> None:
        self._read_pids(STATUS_PIDS)

    def read_live(self) -> None:
        self._read_pids(LIVE_ORDER)

    def read_vin(self) -> None:
        answer = self.request(VIN_COMMAND)
        self.vin = decode_vin(answer, self.framing)
        if self.vin.vin:
            self.vin_status = _ok(self.vin.raw_hex, _src("0902", self.vin.ecu))
        elif answer.no_data:
            self.vin_status = _not(
                FieldStatus.UNSUPPORTED,
                "obd:0902",
                "the vehicle does not report its VIN over OBD (NO DATA)",
            )
        else:
            detail = self._failure(answer)
            self.vin_status = _not(FieldStatus.ERROR, "obd:0902", f"VIN unreadable: {detail}")
            self.partial_reasons.append(f"VIN unreadable: {detail}")

    def read_dtcs(self) -> None:
        for kind in DTC_KINDS:
            command = DTC_COMMANDS[kind]
            mode = command.command.decode()
            answer = self.request(command, whole=True)
            entries, problems = decode_dtcs(answer, kind, self.framing)
            answered = bool(answer.for_service(int(mode, 16) + 0x40))
            self.dtcs += [
                DtcRecord(code=e.code, kind=e.kind, ecu=e.ecu, source=f"obd:{mode}")
                for e in entries
            ]
            if answered:
                # Codes lost in transit (a missing frame, fewer codes than announced, an ECU's
                # line garbled) would pass for "no codes": the read is incomplete, not ok.
                gaps = list(answer.problems) + problems
                gaps += [f"unreadable line {g!r}" for g in answer.garbage[:2]]
                if gaps:
                    detail = "; ".join(gaps)
                    self.dtc_reads[kind] = Sourced[int](
                        value=len(entries),
                        status=FieldStatus.ERROR,
                        source=f"obd:{mode}",
                        detail=f"incomplete ({len(entries)} code(s) read): {detail}",
                    )
                    self.partial_reasons.append(dtc_reason(kind, "incomplete", detail))
                else:
                    self.dtc_reads[kind] = _ok(len(entries), f"obd:{mode}")
            elif answer.no_data:
                detail = (
                    ("the vehicle does not support permanent codes (mode 0A, mandatory from 2010)")
                    if kind == "permanent"
                    else "no ECU answered (NO DATA)"
                )
                self.dtc_reads[kind] = _not(
                    FieldStatus.UNSUPPORTED if kind == "permanent" else FieldStatus.NO_DATA,
                    f"obd:{mode}",
                    detail,
                )
            else:
                detail = self._failure(answer)
                self.dtc_reads[kind] = _not(FieldStatus.ERROR, f"obd:{mode}", detail)
                self.partial_reasons.append(dtc_reason(kind, "unreadable", detail))

    # ------------------------------------------------------------------ result
    def _answers(self, pid: int) -> list[PidAnswer]:
        """The answers to ``pid`` that count: one per ECU with headers (its last), every one
        without (ECUs cannot be told apart, and no ELM repeats an answer)."""
        answers = self.mode01.get(pid, [])
        if self.framing.headers:
            return list({a.ecu: a for a in answers}.values())
        return list(answers)

    def _choose(self, pid: int, answers: list[PidAnswer]) -> tuple[PidAnswer, str | None]:
        """The one answer a single-valued PID takes, and a note on how it was chosen.

        Raises ValueError (with the sentence) when several ECUs disagree and none can be
        preferred: without headers the engine's answer is not known.
        """
        if len(answers) == 1:
            return answers[0], None
        if self.framing.headers:
            for ecu in self.engine_first:
                for answer in answers:
                    if answer.ecu == ecu:
                        return answer, None
            return answers[0], None
        values = sorted({a.data for a in answers})
        if len(values) == 1:
            return answers[0], None
        listed = ", ".join(v.hex(" ").upper() for v in values)
        why = f"{len(answers)} ECUs answered ({listed}) and the adapter shows no headers"
        if pid in _HEADERLESS_PICK:
            word, pick = _HEADERLESS_PICK[pid]
            chosen = pick([a.data for a in answers])
            return next(a for a in answers if a.data == chosen), f"{why}: the {word} kept"
        if pid in LIVE_PIDS:
            return answers[0], f"{why}: the first kept (a live snapshot)"
        raise ValueError(f"{why} to tell the engine's answer apart")

    def _pid_field(self, pid: int, decode: Callable[[bytes], T]) -> Sourced[T]:
        source = f"obd:01{pid:02X}"
        answers = self._answers(pid)
        if answers:
            try:
                answer, note = self._choose(pid, answers)
                value = decode(answer.data)
            except ValueError as exc:
                self.partial_reasons.append(f"PID 0x{pid:02X} undecodable: {exc}")
                return _not(FieldStatus.ERROR, source, str(exc))
            field = _ok(value, _src(f"01{pid:02X}", answer.ecu))
            return field.model_copy(update={"detail": note}) if note else field
        return self._pid_missing(pid)

    def _monitor_status(self) -> Sourced[MonitorStatus]:
        """PID 0x01 from every ECU that answered it, merged as J1979 asks (see
        :func:`merge_monitor_statuses`): the last of several answers must not simply win."""
        answers = self._answers(0x01)
        if not answers:
            return self._pid_missing(0x01)
        try:
            statuses = [decode_monitor_status(a.data) for a in answers]
        except ValueError as exc:
            self.partial_reasons.append(f"PID 0x01 undecodable: {exc}")
            return _not(FieldStatus.ERROR, "obd:0101", str(exc))
        merged = merge_monitor_statuses(statuses)
        if len(answers) == 1:
            return _ok(merged, _src("0101", answers[0].ecu))
        if self.framing.headers:
            ecus = "+".join(sorted(a.ecu or "?" for a in answers))
            return _ok(merged, _src("0101", ecus))
        note = (
            f"{len(answers)} ECUs answered and the adapter shows no headers: merged as J1979"
            " asks (MIL on if any ECU says so, codes summed, a monitor incomplete if any ECU"
            " says so)"
        )
        return _ok(merged, "obd:0101").model_copy(update={"detail": note})

    def _pid_missing(self, pid: int) -> Sourced[Any]:
        source = f"obd:01{pid:02X}"
        if pid in self.mode01_failed:
            detail = self.mode01_failed[pid]
            self.partial_reasons.append(f"PID 0x{pid:02X} unreadable: {detail}")
            return _not(FieldStatus.ERROR, source, detail)
        if self.stopped and (pid in self.supported or pid == 0x01):
            return _not(FieldStatus.NOT_READ, source, "the read stopped before this PID")
        if pid not in self.supported and pid != 0x01:
            unread = self._unread_bitmap(pid)
            if unread is not None:
                # Not knowing whether the car has a PID is not the car saying it has not.
                return _not(
                    FieldStatus.NOT_READ,
                    source,
                    f"the supported-PID bitmap 0x{unread:02X} was not read"
                    + (" (the read stopped before it)" if self.stopped else ""),
                )
            return _not(
                FieldStatus.UNSUPPORTED, source, "not in the vehicle's supported-PID bitmap"
            )
        return _not(FieldStatus.NO_DATA, source, "the vehicle answered NO DATA")

    def build(self, *, started_at: datetime, duration: float) -> VehicleReading:
        link = self.link
        monitor = self._monitor_status()
        status_value = monitor.value
        fields: dict[str, Any] = {}
        if status_value is not None:
            src = monitor.source or "obd:0101"
            note = {"detail": monitor.detail}
            fields["mil_on"] = _ok(status_value.mil_on, src).model_copy(update=note)
            fields["dtc_count"] = _ok(status_value.dtc_count, src).model_copy(update=note)
            fields["ignition_type"] = _ok(status_value.ignition.value, src).model_copy(update=note)
            fields["readiness"] = _ok(dict(status_value.monitors), src).model_copy(update=note)
            self._check_dtc_count(status_value)
        else:
            for name in ("mil_on", "dtc_count", "ignition_type", "readiness"):
                fields[name] = monitor.model_copy()
        odometer = self._plausible_odometer(self._pid_field(0xA6, decode_odometer_km))
        if odometer.status is FieldStatus.UNSUPPORTED:
            odometer = odometer.model_copy(
                update={
                    "detail": "PID 0xA6 not supported (normal before about 2019): read the"
                    " odometer from the dashboard"
                }
            )
        live = {
            spec.name: self._pid_field(pid, partial(decode_live_value, pid))
            for pid, spec in LIVE_PIDS.items()
        }

        vin_fields = self._vin_fields()
        if self.stopped and not self.vin_status.source:
            self.vin_status = _not(FieldStatus.NOT_READ, "obd:0902", "the read stopped before")
        for kind in DTC_KINDS:
            if kind not in self.dtc_reads:
                mode = DTC_COMMANDS[kind].command.decode()
                self.dtc_reads[kind] = _not(
                    FieldStatus.NOT_READ, f"obd:{mode}", "the read stopped before"
                )
                # "No codes" must not look like "codes not read" in the appraisal.
                self.partial_reasons.append(
                    dtc_reason(kind, "not read", f"the read stopped before mode {mode}")
                )
        reasons = list(dict.fromkeys(self.partial_reasons))
        return VehicleReading(
            port=link.port,
            started_at=started_at,
            completed_at=datetime.now(UTC),
            duration_s=round(duration, 4),
            requests=link.requests,
            vin_read=self.vin_status,
            **vin_fields,
            odometer_km=odometer,
            dtcs=self.dtcs,
            dtc_reads=self.dtc_reads,
            warmups_since_clear=self._pid_field(0x30, decode_warmups),
            distance_since_clear_km=self._pid_field(0x31, lambda d: float(decode_u16_km(d))),
            minutes_since_clear=self._pid_field(0x4E, decode_u16_minutes),
            distance_with_mil_km=self._pid_field(0x21, lambda d: float(decode_u16_km(d))),
            live=live,
            supported_pids={"01": [f"{p:02X}" for p in sorted(self.supported)]}
            if self.supported
            else {},
            protocol=ProtocolInfo(
                number=link.protocol_number,
                name=PROTOCOL_NAMES.get(link.protocol_number or ""),
                headers=link.headers,
                pinned=link.protocol_pinned,
            ),
            adapter=AdapterInfo(
                identity=link.identity,
                description=link.description,
                voltage_v=link.voltage,
                quirks=list(link.quirks),
            ),
            partial=bool(reasons),
            partial_reasons=reasons,
            raw=list(link.exchanges),
            **fields,
        )

    def _check_dtc_count(self, status: MonitorStatus) -> None:
        """Fewer stored codes than PID 0x01 announces means codes were lost on the way."""
        stored = self.dtc_reads.get("stored")
        if stored is None or stored.status is not FieldStatus.OK:
            return
        received = sum(1 for d in self.dtcs if d.kind == "stored")
        if received < status.dtc_count:
            detail = (
                f"PID 0x01 reports {status.dtc_count} confirmed code(s), mode 03 returned"
                f" {received}"
            )
            self.dtc_reads["stored"] = stored.model_copy(
                update={"status": FieldStatus.ERROR, "detail": f"incomplete: {detail}"}
            )
            self.partial_reasons.append(dtc_reason("stored", "incomplete", detail))

    def _plausible_odometer(self, odometer: Sourced[float]) -> Sourced[float]:
        """An odometer no car can have (``FF FF FF FF`` is 429,496,729.5 km) is not a reading:
        it becomes unknown, with the raw answer in the reason."""
        value = odometer.value
        if odometer.status is not FieldStatus.OK or value is None:
            return odometer
        if value <= MAX_PLAUSIBLE_ODOMETER_KM:
            return odometer
        raw = round(value * 10).to_bytes(4, "big").hex(" ").upper()
        detail = (
            f"PID 0xA6 reads {value:,.1f} km ({raw}), more than any car covers"
            f" ({MAX_PLAUSIBLE_ODOMETER_KM:,} km): read the odometer from the dashboard"
        )
        self.partial_reasons.append(odometer_reason(detail))
        return _not(FieldStatus.ERROR, odometer.source or "obd:01A6", detail)

    def _vin_fields(self) -> dict[str, Any]:
        read = self.vin
        if read is None or not read.vin:
            return {}
        check = check_vin(read.vin, today=self.today)
        problems = list(check.problems) + list(read.problems)
        fields: dict[str, Any] = {
            "vin": check.vin,
            "vin_source": VinSource.OBD,
            "vin_valid": check.valid and not read.problems,
            "vin_problems": problems,
            "vin_decoded": check,
        }
        if check.valid and check.manufacturer:
            fields["make"] = _ok(check.manufacturer, "vininfo")
        elif check.valid:
            fields["make"] = _not(FieldStatus.NO_DATA, "vininfo", "WMI not known to vininfo")
        if check.valid and check.model_year is not None:
            fields["model_year"] = _ok(check.model_year, "vin:position10")
        return fields
