"""Command line for OBD: ``kioskmatch kiosk read-obd`` and ``kioskmatch obd-sim``.

- ``register_kiosk(kiosk_subparsers)`` adds ``read-obd`` to the shared ``kiosk`` group.
- ``register(subparsers)`` adds the top-level ``obd-sim`` command (simulator for the demo and
  dealer training).

Exit status: 0 a full or partial reading; 2 no adapter / no vehicle data (the message names the
port and the likely cause); 1 anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["register", "register_kiosk"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNREACHABLE = 2


def register_kiosk(kiosk_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``read-obd`` to the ``kiosk`` command group."""
    parser = kiosk_subparsers.add_parser(
        "read-obd",
        help="read the vehicle over OBD-II (VIN, odometer, codes, readiness, live data)",
        description="Connect to an ELM327 adapter and read the vehicle. PORT is a device path"
        " (/dev/ttyUSB0, /dev/rfcomm0) or socket://host:port for Wi-Fi adapters.",
    )
    parser.add_argument("--port", required=True, help="device path or socket://host:port")
    parser.add_argument("--json", action="store_true", help="print the reading as JSON on stdout")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds for the whole command (default 60)"
    )
    parser.add_argument(
        "--protocol",
        default=None,
        help="pin the ELM327 protocol number (e.g. 6 = CAN 11/500); searched if it fails",
    )
    parser.add_argument("--no-raw", action="store_true", help="leave raw exchanges out of JSON")
    parser.set_defaults(func=_read_obd)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the top-level ``obd-sim`` command (ELM327 simulator)."""
    parser = subparsers.add_parser(
        "obd-sim",
        help="run an ELM327 + vehicle simulator on a pseudo-terminal or TCP port",
        description="Serve a simulated ELM327 adapter and vehicle until Ctrl-C, for the demo and"
        " dealer training. Point `kioskmatch kiosk read-obd --port` at the printed port.",
    )
    parser.add_argument("--scenario", default="malibu_2019", help="scenario name or YAML path")
    parser.add_argument(
        "--tcp",
        type=int,
        metavar="PORT",
        default=None,
        help="serve on TCP PORT (0: any free port) instead of a pty",
    )
    parser.add_argument("--host", default="127.0.0.1", help="TCP address to bind (default local)")
    parser.add_argument("--latency", type=float, default=None, help="seconds per OBD request")
    parser.add_argument("--list", action="store_true", help="list bundled scenarios and exit")
    parser.add_argument("--json", action="store_true", help="print the port as JSON")
    parser.set_defaults(func=_simulate)


def _quiet_libraries() -> None:
    # python-obd's unit registry makes pint log redefinition warnings at import: not actionable.
    logging.getLogger("pint").setLevel(logging.ERROR)
    logging.getLogger("pint.util").setLevel(logging.ERROR)
    logging.getLogger("obd").setLevel(logging.WARNING)


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _read_obd(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from edge.obd.errors import ObdError
    from edge.obd.reader import read_vehicle

    try:
        reading = read_vehicle(args.port, timeout=args.timeout, protocol=args.protocol)
    except ObdError as exc:
        logger.error("%s", exc)
        if args.json:
            kind = type(exc).__name__
            _write(json.dumps({"error": kind, "message": str(exc), "port": exc.port, "vin": None}))
        return EXIT_UNREACHABLE
    if args.json:
        payload = json.loads(reading.to_json(indent=None))
        if args.no_raw:
            payload.pop("raw", None)
        _write(json.dumps(payload, indent=2))
    else:
        _write(_summary(reading))
    if not reading.has_vehicle_data:
        logger.error(
            "%s: the adapter connected but the vehicle returned no data (%s); check the ignition"
            " is on and the adapter is seated",
            args.port,
            "; ".join(reading.partial_reasons) or "no answers",
        )
        return EXIT_UNREACHABLE
    if reading.partial:
        logger.warning("partial reading: %s", "; ".join(reading.partial_reasons))
    return EXIT_OK


def _summary(reading: Any) -> str:
    """A short human-readable view of a reading."""
    from edge.obd.reading import FieldStatus

    lines = [f"Port:        {reading.port}  ({reading.protocol.name or 'protocol unknown'})"]
    adapter = reading.adapter
    lines.append(
        f"Adapter:     {adapter.identity or '?'}"
        + (f", {adapter.voltage_v:.1f} V" if adapter.voltage_v is not None else "")
        + (f"  quirks: {'; '.join(adapter.quirks)}" if adapter.quirks else "")
    )
    validity = "valid" if reading.vin_valid else "NOT VALID: " + "; ".join(reading.vin_problems)
    lines.append(f"VIN:         {reading.vin or '(not read)'}  {validity if reading.vin else ''}")
    if reading.make.value or reading.model_year.value:
        lines.append(f"Vehicle:     {reading.model_year.value or ''} {reading.make.value or ''}")
    odo = reading.odometer_km
    lines.append(
        "Odometer:    "
        + (
            f"{odo.value:,.1f} km"
            if odo.value is not None
            else f"{odo.status.value} ({odo.detail})"
        )
    )
    mil = reading.mil_on.value
    lines.append(f"MIL:         {'ON' if mil else 'off' if mil is not None else '?'}")
    codes = ", ".join(f"{d.code} ({d.kind}{', ' + d.ecu if d.ecu else ''})" for d in reading.dtcs)
    # "none" only for the kinds the car actually answered: an unread mode is not a clean one.
    unread = [
        f"{kind} {read.status.value}"
        for kind, read in reading.dtc_reads.items()
        if read.status not in (FieldStatus.OK, FieldStatus.UNSUPPORTED, FieldStatus.NO_DATA)
    ]
    not_known = f"  (not known: {', '.join(unread)})" if unread else ""
    lines.append(f"DTCs:        {codes or 'none'}{not_known}")
    readiness = reading.readiness.value
    if readiness is None:
        lines.append(f"Monitors:    ? ({reading.readiness.status.value})")
    else:
        incomplete = [name for name, state in readiness.items() if state == "incomplete"]
        lines.append(
            f"Monitors:    {'incomplete: ' + ', '.join(incomplete) if incomplete else 'ready'}"
        )
    since = [
        f"{reading.warmups_since_clear.value} warm-ups"
        if reading.warmups_since_clear.value is not None
        else None,
        f"{reading.distance_since_clear_km.value:g} km"
        if reading.distance_since_clear_km.value is not None
        else None,
        f"{reading.minutes_since_clear.value} min"
        if reading.minutes_since_clear.value is not None
        else None,
    ]
    lines.append(f"Since clear: {', '.join(s for s in since if s) or '?'}")
    live = ", ".join(f"{k}={v.value:g}" for k, v in reading.live.items() if v.value is not None)
    lines.append(f"Live:        {live or 'none'}")
    lines.append(
        "Reading:     "
        + ("PARTIAL: " + "; ".join(reading.partial_reasons) if reading.partial else "complete")
        + f"  ({reading.requests} requests, {reading.duration_s:.2f} s)"
    )
    return "\n".join(lines)


def _simulate(args: argparse.Namespace) -> int:
    from edge.obd.scenario import ScenarioError, bundled_scenarios, load_scenario
    from edge.obd.simulator import Simulator

    if args.list:
        for name in bundled_scenarios():
            scenario = load_scenario(name)
            _write(f"{name:18} {scenario.description}")
        return EXIT_OK
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        logger.error("%s", exc)
        return EXIT_UNREACHABLE
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    simulator = Simulator(
        scenario,
        transport="tcp" if args.tcp is not None else "pty",
        tcp_port=args.tcp or 0,
        host=args.host,
        latency_s=args.latency,
    )
    try:
        with simulator:
            if args.json:
                _write(json.dumps({"scenario": scenario.name, "port": simulator.port}))
            else:
                _write(f"ELM327 simulator '{scenario.name}' on {simulator.port}")
                _write(f"read it with: kioskmatch kiosk read-obd --port {simulator.port}")
                _write("Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK
