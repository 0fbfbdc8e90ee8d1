"""``kioskmatch simulate``: N kiosks through the real outbox and uplink, M appraisals each.

The vehicles are simulated in process (no serial delay); everything after the OBD read is the
production path: valuation, outbox (SQLite), paho uplink, broker, gateway, receipts. Exits 0 once
every appraisal has its receipt.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edge.protocol import (
    Channel,
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
from kioskmatch.progress import CliProgress

if TYPE_CHECKING:
    from edge.app import KioskAgent

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
    sim.add_argument(
        "--connect-timeout",
        type=float,
        default=15.0,
        help="seconds for the kiosks to reach the broker before giving up (exit 2)",
    )
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

    if not getattr(args, "verbose", False):
        # Each appraisal's steps, times N x M: the progress below says what matters.
        logging.getLogger("edge.app").setLevel(logging.WARNING)

    try:
        broker = MqttEndpoint.parse(args.broker)
    except ProtocolError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    if args.kiosks < 1 or args.appraisals < 0:
        print("error: --kiosks must be at least 1 and --appraisals at least 0", file=sys.stderr)
        return 2
    own_dir = args.outbox_dir is None  # then removed at the end, unless something is left in it
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
    # Messages an earlier run left unreceipted go out again and count towards the finish.
    backlog = sum(agent.outbox.depth(Channel.APPRAISALS) for agent in agents)
    started = time.monotonic()
    for agent in agents:
        agent.start(wait_s=None)  # they connect side by side
    try:
        connect_s = min(args.connect_timeout, args.timeout)
        connected = _wait_connected(agents, started + connect_s)
        if connected == 0:
            print(
                f"error: cannot reach the MQTT broker at {broker.redacted()} within"
                f" {connect_s:.0f} s; check --broker and that the broker is running",
                file=sys.stderr,
            )
            return 2
        if connected < len(agents):
            logger.warning(
                "%d of %d kiosks connected within %.0f s; the others keep trying",
                connected,
                len(agents),
                connect_s,
            )
        if backlog:
            logger.info("%d appraisal(s) from an earlier run wait for their receipts", backlog)
        return _appraise_and_drain(args, agents, backlog=backlog, started=started)
    finally:
        left = sum(agent.outbox.depth() for agent in agents)
        for agent in agents:
            agent.stop()
        if own_dir and left == 0:
            shutil.rmtree(outbox_dir, ignore_errors=True)
        elif own_dir:
            print(
                f"{left} message(s) without a receipt are kept in {outbox_dir}; run again with "
                f"--outbox-dir {outbox_dir} to send them",
                file=sys.stderr,
            )


def _wait_connected(agents: Sequence[KioskAgent], deadline: float) -> int:
    """How many kiosks are connected once all are, or at ``deadline``."""
    while True:
        connected = sum(agent.uplink.connected for agent in agents)
        if connected == len(agents) or time.monotonic() >= deadline:
            return connected
        time.sleep(0.05)


def _appraise_and_drain(
    args: argparse.Namespace, agents: Sequence[KioskAgent], *, backlog: int, started: float
) -> int:
    """Run the appraisals and wait for every receipt, showing progress on stderr."""
    total = args.kiosks * args.appraisals
    failures: list[BaseException] = []
    threads = [
        threading.Thread(
            target=_appraise_n,
            args=(agent, args.appraisals, args.rate, failures),
            name=f"appraise-{agent.config.kiosk_id}",
            daemon=True,
        )
        for agent in agents
    ]
    for thread in threads:
        thread.start()
    deadline = started + args.timeout
    with CliProgress(backlog + total, "appraisals receipted", logger) as progress:
        while True:
            created = sum(len(agent.completed) for agent in agents)
            pending = sum(agent.outbox.depth(Channel.APPRAISALS) for agent in agents)
            working = any(thread.is_alive() for thread in threads)
            progress.update(max(0, backlog + created - pending), note=f"({created} created)")
            if not working and all(agent.outbox.depth() == 0 for agent in agents):
                progress.update(backlog + created, note=f"({created} created)")
                break
            if time.monotonic() >= deadline:
                left = sum(agent.outbox.depth() for agent in agents)
                print(
                    f"error: {left} message(s) ({pending} appraisal(s)) still without a receipt "
                    f"after {args.timeout:.0f} s; is the gateway running and connected to "
                    "this broker?",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.2)
    if failures:
        print(
            f"error: {len(failures)} kiosk(s) stopped appraising: {failures[0]}; "
            f"{created} of {total} appraisals were made and receipted",
            file=sys.stderr,
        )
        return 1
    elapsed = time.monotonic() - started
    print(f"{total} appraisals from {args.kiosks} kiosks receipted in {elapsed:.1f} s")
    return 0


def _appraise_n(agent: KioskAgent, count: int, rate: float, failures: list[BaseException]) -> None:
    started = time.monotonic()
    try:
        for i in range(count):
            if rate > 0:
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
            agent.appraise(hints={})
    except Exception as exc:  # reported by the caller: the run must not claim every appraisal
        logger.exception("kiosk %s stopped appraising", agent.config.kiosk_id)
        failures.append(exc)
