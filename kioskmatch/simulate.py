"""``kioskmatch simulate``: N kiosks through the real outbox and uplink, M appraisals each.

The vehicles are simulated in process (no serial delay); everything after the OBD read is the
production path: valuation, outbox (SQLite), paho uplink, broker, gateway, receipts. Exits 0 once
every appraisal has its receipt.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from edge.protocol import (
    Condition,
    Dtc,
    Flag,
    ObdSummary,
    OdometerSource,
    Valuation,
    ValuationStatus,
    Vehicle,
    VinSource,
)

logger = logging.getLogger(__name__)

# Nameplates the valuation catalogue covers; model years spread over recent years.
_CARS = [
    ("Chevrolet", "Malibu", "LS Sedan 4D"),
    ("Chevrolet", "Impala", "LS Sedan 4D"),
    ("Pontiac", "G6", "Sedan 4D"),
    ("Buick", "Lacrosse", "CX Sedan 4D"),
    ("Chevrolet", "Cobalt", "LS Coupe 2D"),
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser("simulate", help="run simulated kiosks against a broker and gateway")
    sim.add_argument("--broker", required=True, help="mqtt://host:port of the gateway's broker")
    sim.add_argument("--kiosks", type=int, default=1, help="how many kiosks (default 1)")
    sim.add_argument("--appraisals", type=int, default=1, help="appraisals per kiosk (default 1)")
    sim.add_argument("--outbox-dir", type=Path, help="where the kiosks' outboxes live")
    sim.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for receipts")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="appraisals per second per kiosk (0: as fast as possible)",
    )
    sim.add_argument(
        "--resend-after",
        type=float,
        default=10.0,
        help="seconds before an unreceipted message is resent",
    )
    sim.add_argument("--kiosk-prefix", default="sim", help="kiosk ids are PREFIX-kNNN")
    sim.add_argument(
        "--fast-valuation",
        action="store_true",
        help="skip the TFLite models (a fixed value) to measure the transport alone",
    )
    sim.set_defaults(func=run)


class SimulatedVehicles:
    """A reader of made-up but plausible cars (valid VIN check digits are not needed here)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def read(self) -> tuple[Vehicle, ObdSummary]:
        with self._lock:
            make, model, trim = self._rng.choice(_CARS)
            year = self._rng.randint(2016, 2023)
            km = self._rng.uniform(10_000, 150_000)
            serial = self._rng.randrange(10**6)
        vehicle = Vehicle(
            vin=simulated_vin(year, serial),
            vin_source=VinSource.OBD,
            vin_valid=True,
            make=make,
            model=model,
            trim=trim,
            model_year=year,
            odometer_km=round(km, 1),
            odometer_source=OdometerSource.OBD,
        )
        obd = ObdSummary(
            protocol="ISO 15765-4 (CAN 11/500)",
            mil_on=False,
            dtcs=[Dtc(code="P0171", kind="pending")] if serial % 7 == 0 else [],
            warmups_since_clear=200,
            distance_since_clear_km=5000,
        )
        return vehicle, obd


_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"  # VIN position 10, from 1980 in a 30-year cycle


def simulated_vin(year: int, serial: int) -> str:
    """A well-formed North American VIN (GM's 1G1 prefix) with a correct check digit."""
    from edge.obd.vin import check_digit

    body = f"1G1ZB5ST0{_YEAR_CODES[(year - 1980) % 30]}F{serial:06d}"
    digit = check_digit(body)
    return body[:8] + (digit or "0") + body[9:]


class FixedValuer:
    @property
    def versions(self) -> dict[str, str]:
        return {"valuation": "fixed"}

    def value(
        self, vehicle: Vehicle, obd: ObdSummary | None, condition: Condition, *, valued_at: datetime
    ) -> tuple[Valuation, list[Flag]]:
        valuation = Valuation(
            status=ValuationStatus.VALUED,
            model_version="fixed",
            value_minor=1_000_000,
            low_minor=900_000,
            high_minor=1_100_000,
            interval=0.9,
            valued_at=valued_at,
            residual_curve=[round(0.99**m, 6) for m in range(85)],
        )
        return valuation, []


def run(args: argparse.Namespace) -> int:
    from edge.app import KioskAgent
    from edge.inspection import Valuer
    from edge.protocol import MqttEndpoint, ProtocolError
    from firmware_config import KioskConfig

    try:
        MqttEndpoint.parse(args.broker)
    except ProtocolError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    if args.kiosks < 1 or args.appraisals < 0:
        print("error: --kiosks must be at least 1 and --appraisals at least 0", file=sys.stderr)
        return 2
    outbox_dir = args.outbox_dir or Path(tempfile.mkdtemp(prefix="kioskmatch-sim-"))
    valuer: Valuer
    if args.fast_valuation:
        valuer = FixedValuer()
    else:
        from edge.adapters import TfliteValuer

        valuer = TfliteValuer()
    vehicles = SimulatedVehicles(args.seed)
    agents = []
    for i in range(args.kiosks):
        config = KioskConfig.model_validate(
            {
                "kiosk_id": f"{args.kiosk_prefix}-k{i:03d}",
                "mqtt": {"url": args.broker},
                "outbox": {
                    "path": str(outbox_dir / f"k{i:03d}.db"),
                    "resend_after_s": args.resend_after,
                },
                "heartbeat_s": 60,
            }
        )
        agents.append(KioskAgent(config, reader=vehicles, valuer=valuer))
    started = time.monotonic()
    for agent in agents:
        agent.start(wait_s=30)
    try:
        threads = [
            threading.Thread(
                target=_appraise_n, args=(agent, args.appraisals, args.rate), daemon=True
            )
            for agent in agents
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = args.kiosks * args.appraisals
        deadline = started + args.timeout
        for agent in agents:
            if not agent.wait_until_drained(max(0.0, deadline - time.monotonic())):
                left = sum(a.outbox.depth() for a in agents)
                print(
                    f"error: {left} message(s) still without a receipt after {args.timeout:.0f} s; "
                    "is the gateway running and connected to this broker?",
                    file=sys.stderr,
                )
                return 1
        elapsed = time.monotonic() - started
        print(f"{total} appraisals from {args.kiosks} kiosks receipted in {elapsed:.1f} s")
        return 0
    finally:
        for agent in agents:
            agent.stop()


def _appraise_n(agent: object, count: int, rate: float) -> None:
    from edge.app import KioskAgent

    assert isinstance(agent, KioskAgent)
    started = time.monotonic()
    for i in range(count):
        if rate > 0:
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
        agent.appraise(hints={})
