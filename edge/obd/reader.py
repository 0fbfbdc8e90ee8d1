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
from typing import Any, Literal, TypeVar

from edge.obd.decoders import (
    LIVE_PIDS,
    ParsedResponse,
    decode_dtcs,
    decode_live_value,
    decode_mode01,
    decode_monitor_status,
    decode_odometer_km,
    decode_supported_pids,
    decode_u16_km,
    decode_u16_minutes,
    decode_vin,
    decode_warmups,
    mode01_values_for,
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
    AdapterInfo,
    DtcRecord,
    FieldStatus,
    ProtocolInfo,
    Sourced,
    VehicleReading,
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
        self.mode01: dict[int, tuple[str | None, bytes]] = {}
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
    def request(self, command: bytes | Any) -> ParsedResponse:
        """One request (raw bytes or a named ``OBDCommand``) with retries on transient bus
        errors; raises _StopReadingError when the link is gone, after noting why."""
        attempt = 0
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
            if parsed.messages or parsed.no_data or attempt >= self.opts.request_retries:
                return parsed
            transient = [s for s in parsed.errors if s.startswith(_RETRYABLE)]
            if not transient and not parsed.garbage:
                return parsed
            attempt += 1
            logger.info(
                "%s: request answered %s; retry %d",
                self.link.port,
                transient or list(parsed.garbage),
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
        values, _problems = decode_mode01(parsed)
        found = False
        for pids in values.values():
            for base, data in pids.items():
                if base in BITMAP_PIDS and len(data) == 4:
                    self.supported |= decode_supported_pids(base, data)
                    self._bitmaps_read.add(base)
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
            values, problems = decode_mode01(answer)
            got = {pid for per_ecu in values.values() for pid in per_ecu}
            for pid in chunk:
                found = mode01_values_for(values, pid, self.engine_first)
                if found is not None:
                    self.mode01[pid] = found
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
                    svalues, sproblems = decode_mode01(single)
                    found = mode01_values_for(svalues, pid, self.engine_first)
                    if found is not None:
                        self.mode01[pid] = found
                    elif not single.no_data:
                        self.mode01_failed[pid] = self._failure(single) + "; ".join(sproblems)
            elif missing and not answer.no_data:
                self.mode01_failed[missing[0]] = self._failure(answer) + "; ".join(problems)

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
        kinds: tuple[Literal["stored", "pending", "permanent"], ...] = (
            "stored",
            "pending",
            "permanent",
        )
        for kind in kinds:
            command = DTC_COMMANDS[kind]
            mode = command.command.decode()
            answer = self.request(command)
            entries, problems = decode_dtcs(answer, kind, self.framing)
            answered = bool(answer.for_service(int(mode, 16) + 0x40))
            self.dtcs += [
                DtcRecord(code=e.code, kind=e.kind, ecu=e.ecu, source=f"obd:{mode}")
                for e in entries
            ]
            if answered:
                read = _ok(len(entries), f"obd:{mode}")
                if problems:
                    read = read.model_copy(update={"detail": "; ".join(problems)})
                self.dtc_reads[kind] = read
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
                self.partial_reasons.append(f"{kind} DTCs unreadable: {detail}")

    # ------------------------------------------------------------------ result
    def _pid_field(self, pid: int, decode: Callable[[bytes], T]) -> Sourced[T]:
        source = f"obd:01{pid:02X}"
        if pid in self.mode01:
            ecu, data = self.mode01[pid]
            try:
                return _ok(decode(data), _src(f"01{pid:02X}", ecu))
            except ValueError as exc:
                self.partial_reasons.append(f"PID 0x{pid:02X} undecodable: {exc}")
                return _not(FieldStatus.ERROR, source, str(exc))
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
        monitor = self._pid_field(0x01, decode_monitor_status)
        status_value = monitor.value
        fields: dict[str, Any] = {}
        if status_value is not None:
            src = monitor.source or "obd:0101"
            fields["mil_on"] = _ok(status_value.mil_on, src)
            fields["dtc_count"] = _ok(status_value.dtc_count, src)
            fields["ignition_type"] = _ok(status_value.ignition.value, src)
            fields["readiness"] = _ok(dict(status_value.monitors), src)
        else:
            for name in ("mil_on", "dtc_count", "ignition_type", "readiness"):
                fields[name] = monitor.model_copy()
        odometer = self._pid_field(0xA6, decode_odometer_km)
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
        for kind in ("stored", "pending", "permanent"):
            if kind not in self.dtc_reads:
                mode = DTC_COMMANDS[kind].command.decode()
                self.dtc_reads[kind] = _not(
                    FieldStatus.NOT_READ, f"obd:{mode}", "the read stopped before"
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
