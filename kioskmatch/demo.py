"""``kioskmatch demo``: the whole system on one machine with embedded defaults.

Embedded MQTT broker (or ``KIOSKMATCH_MQTT_URL``), the gateway on http://127.0.0.1:8000 (or the next
free port), the sample lender programs with a key per lender, an ELM327 simulator with a 2019
Chevrolet Malibu LS on a pseudo-terminal, and a kiosk. A dealer starts one appraisal with a loan
request over HTTP; the demo prints the appraisal and every lender's offer or refusal with its
reasons, shows a lender pulling its matches, and keeps serving until Ctrl-C.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import logging
import shutil
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.table import Table

logger = logging.getLogger(__name__)

DEMO_KIOSK = "demo-kiosk-1"
DEMO_DEALER = "Lakeside Chevrolet"
DEMO_VEHICLE = {
    "make": "Chevrolet",
    "model": "Malibu",
    "trim": "LS Sedan 4D",
    "body": "Sedan 4D",
    "options": {"cruise": True, "sound": True, "leather": False},
}
DEMO_LOAN = {
    "loan_kind": "purchase",
    "amount_minor": 1_250_000,
    "down_payment_minor": 250_000,
    "term_months": 48,
    "monthly_income_minor": 550_000,
    "credit_score": 722,
    "consent": True,
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="run the whole system on this machine with one appraisal")
    demo.add_argument("--once", action="store_true", help="exit after printing the offers")
    demo.add_argument(
        "--data-dir", type=Path, default=Path("var/demo"), help="where the demo keeps its files"
    )
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the offers")
    demo.set_defaults(func=run)


def _money(minor: int | None) -> str:
    return "—" if minor is None else f"${minor / 100:,.2f}"


def run(args: argparse.Namespace) -> int:
    console = Console()
    data_dir, lock = claim_data_dir(args.data_dir)
    if data_dir != args.data_dir:
        console.print(
            f"[yellow]another demo is running in {args.data_dir}[/]; this one uses {data_dir}"
        )
    if data_dir.exists():
        shutil.rmtree(data_dir)  # the demo starts from nothing every time
    try:
        return _run(args, console, data_dir)
    finally:
        lock.close()


def claim_data_dir(base: Path) -> tuple[Path, IO[str]]:
    """``base``, or ``base-2``, ``base-3``... : the first folder no running demo holds, with the
    lock that holds it for this run (released when the file is closed or the process ends).

    The demo wipes its folder when it starts; a second demo started beside a running one (the
    gateway moves to the next free port for just that case) must not delete the first one's
    database, kiosk outbox and photos from under it.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        lock = candidate.with_name(f"{candidate.name}.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return candidate, lock
    raise AssertionError("unreachable")


def _run(args: argparse.Namespace, console: Console, data_dir: Path) -> int:
    from edge.obd import start_simulator
    from gateway.settings import GatewaySettings

    settings = GatewaySettings(data_dir=data_dir)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())

    from gateway.runtime import GatewayRuntime

    with GatewayRuntime(settings, http_next_free=True) as gateway:
        console.print(f"[bold]gateway[/] {gateway.http_url}   [bold]broker[/] {gateway.mqtt_url}")
        keys = _seed(gateway, console)
        with start_simulator("malibu_2019") as simulator:
            console.print(
                f"[bold]ELM327 simulator[/] (2019 Chevrolet Malibu LS) on {simulator.port}"
            )
            photos = _demo_photos(data_dir / "camera")
            console.print(f"[bold]camera[/] drawn demo scenes of each view in {photos}")
            agent = _start_kiosk(
                gateway.mqtt_url or "",
                simulator.port,
                data_dir,
                gateway.http_url,
                keys["kiosk"],
                photos,
            )
            try:
                matched = _appraise(console, gateway.http_url, keys, args.timeout)
                if args.once or matched is None:
                    return 0 if matched else 1
                _print_try_it(console, gateway.http_url, keys)
                console.print("serving; press Ctrl-C to stop")
                stop.wait()
                return 0
            finally:
                agent.stop()


def _seed(gateway: Any, console: Console) -> dict[str, Any]:
    from sqlmodel import Session

    from gateway.matching import load_programs, sample_programs_dir
    from gateway.services.keys import Role, create_key
    from gateway.services.programs import store_program

    keys: dict[str, Any] = {"lenders": {}}
    with Session(gateway.context.engine) as session:
        programs = load_programs(sample_programs_dir())
        today = datetime.now(UTC).date()
        for program in programs:
            store_program(session, program, lender_org=program.lender)
            if program.lender not in keys["lenders"]:
                keys["lenders"][program.lender] = create_key(
                    session, role=Role.LENDER, org=program.lender
                )[0]
        keys["dealer"] = create_key(session, role=Role.DEALER, org=DEMO_DEALER)[0]
        keys["ops"] = create_key(session, role=Role.OPS, org="kioskmatch ops")[0]
        keys["kiosk"] = create_key(session, role=Role.KIOSK, org=DEMO_KIOSK)[0]
        in_force = sum(p.is_effective(today) for p in programs)
    console.print(
        f"[bold]lender programs[/] {len(programs)} sample programs from {len(keys['lenders'])} "
        f"lenders, {in_force} in force today"
    )
    return keys


def _demo_photos(folder: Path) -> Path:
    """One drawn scene per required view (the folder camera source reads them by view name)."""
    import cv2

    from edge.camera import ALL_VIEWS
    from edge.camera.synthetic import car_scene

    folder.mkdir(parents=True, exist_ok=True)
    for i, view in enumerate(ALL_VIEWS):
        cv2.imwrite(
            str(folder / f"{view.value}.jpg"),
            car_scene(seed=100 + i),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
    return folder


def _start_kiosk(
    mqtt_url: str, port: str, data_dir: Path, http_url: str, kiosk_key: str, photos: Path
) -> Any:
    from edge.adapters import build_agent
    from firmware_config import KioskConfig

    config = KioskConfig.model_validate(
        {
            "kiosk_id": DEMO_KIOSK,
            "site": DEMO_DEALER,
            "mqtt": {"url": mqtt_url},
            "obd": {"transport": {"type": "serial", "port": port}, "timeout_s": 60},
            "outbox": {"path": str(data_dir / "kiosk" / "outbox.db"), "resend_after_s": 5},
            "camera": {"source": {"type": "folder", "path": str(photos)}},
            "gateway": {"url": http_url, "api_key": kiosk_key},
        }
    )
    agent = build_agent(config)
    agent.start()
    return agent


def _appraise(console: Console, base: str, keys: dict[str, Any], timeout: float) -> bool | None:
    dealer = {"Authorization": f"Bearer {keys['dealer']}"}
    with httpx.Client(base_url=base, timeout=10) as http:
        _wait_health(http)
        started = time.monotonic()
        response = http.post(
            "/v1/dealer/appraisals",
            headers=dealer,
            json={"kiosk_id": DEMO_KIOSK, "vehicle": DEMO_VEHICLE, "loan_request": DEMO_LOAN},
        )
        response.raise_for_status()
        appraisal_id = response.json()["appraisal_id"]
        console.print(f"[bold]dealer[/] started appraisal {appraisal_id} on {DEMO_KIOSK}")
        view: dict[str, Any] = {}
        with console.status("kiosk reading the car, valuing it, publishing; gateway matching..."):
            while time.monotonic() - started < timeout:
                view = http.get(f"/v1/dealer/appraisals/{appraisal_id}", headers=dealer).json()
                if view.get("offers") and view.get("loan_requests", [{}])[0].get("matched_at"):
                    break
                time.sleep(0.3)
            else:
                console.print(
                    f"[red]no offers after {timeout:.0f} s[/]; state: {view.get('state')}, "
                    f"command: {view.get('command_state')}"
                )
                return None
        elapsed = time.monotonic() - started
        _print_appraisal(console, view["report"])
        eligible = _print_offers(console, view)
        console.print(f"appraisal to offers in [bold]{elapsed:.1f} s[/]")
        lender = view["offers"][0]["lender"]
        key = keys["lenders"][lender]
        page = http.get(
            "/v1/lender/matches", headers={"Authorization": f"Bearer {key}"}, params={"limit": 50}
        ).json()
        console.print(
            f"[bold]lender[/] {lender} pulled {len(page['items'])} match(es) over HTTP "
            "(it sees only its own)"
        )
        return eligible > 0


def _wait_health(http: httpx.Client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http.get("/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the gateway did not report healthy within 30 s")


def _print_appraisal(console: Console, report: dict[str, Any]) -> None:
    v, val, obd = report["vehicle"], report["valuation"], report.get("obd") or {}
    table = Table(title="Appraisal", show_header=False, title_justify="left")
    table.add_row(
        "Vehicle", f"{v.get('model_year')} {v.get('make')} {v.get('model')} {v.get('trim') or ''}"
    )
    table.add_row(
        "VIN",
        f"{v.get('vin')} ({v.get('vin_source')}, {'valid' if v.get('vin_valid') else 'INVALID'})",
    )
    odo = v.get("odometer_km")
    table.add_row(
        "Odometer", f"{odo:,.0f} km ({v.get('odometer_source')})" if odo is not None else "unknown"
    )
    dtcs = ", ".join(f"{d['code']} ({d['kind']})" for d in obd.get("dtcs", [])) or "none"
    table.add_row(
        "OBD", f"{obd.get('protocol')}; MIL {'on' if obd.get('mil_on') else 'off'}; codes: {dtcs}"
    )
    table.add_row("Condition", f"grade {report['condition']['grade']}")
    photos = report.get("photos", [])
    if photos:
        passed = sum(p["passed"] for p in photos)
        masked = sum(len(p.get("masked", [])) for p in photos)
        table.add_row(
            "Photos",
            f"{passed} of {len(photos)} views passed; {masked} plate/face region(s) masked",
        )
    if val["status"] == "valued":
        table.add_row(
            "Value",
            f"[bold]{_money(val['value_minor'])}[/] (range {_money(val['low_minor'])} – "
            f"{_money(val['high_minor'])}, {val.get('interval') or 0:.0%}); "
            f"model {val['model_version']}",
        )
        for f in val["factors"]:
            step = (
                f"×{f['ratio']:.3f}"
                if f.get("ratio") is not None
                else _money(f.get("amount_minor"))
            )
            table.add_row(
                f"  {f['code']}", f"{step} → {_money(f['value_after_minor'])}  {f['description']}"
            )
    else:
        table.add_row("Value", f"manual appraisal required: {val.get('reason')}")
    for flag in report.get("flags", []):
        table.add_row("Flag", f"{flag['severity']}: {flag['message']}")
    console.print(table)


def _print_offers(console: Console, view: dict[str, Any]) -> int:
    loan = view["loan_requests"][-1]  # the offers shown are for the latest request
    applicant = ", ".join(f"{k} {v}" for k, v in loan["applicant"].items())
    table = Table(
        title=f"Offers: {_money(loan['amount_minor'])} price, {_money(loan['down_payment_minor'])} "
        f"down, {loan['term_months']} months; applicant {applicant} (masked)",
        title_justify="left",
    )
    for col in ("#", "Lender", "APR", "Term", "Payment", "Financed", "Peak LTV (month)", "Outcome"):
        table.add_column(col)
    eligible = 0
    refusals: list[tuple[str, list[str]]] = []
    for offer in view["offers"]:
        result = offer["result"]
        if offer["eligible"]:
            eligible += 1
            outcome = "[green]offer[/]"
        else:
            outcome = "[red]declined[/]"
            refusals.append((offer["lender"], list(result.get("reasons", []))))
        peak = offer.get("peak_ltv")
        month = result.get("peak_ltv_month")
        table.add_row(
            str(offer["rank"] or "—"),
            offer["lender"],
            f"{offer['apr_percent']:.2f}%" if offer["apr_percent"] is not None else "—",
            str(offer["term_months"] or "—"),
            _money(offer["monthly_payment_minor"]),
            _money(offer["amount_minor"]),
            f"{peak:.0%} ({month})" if peak is not None else "—",
            outcome,
        )
    console.print(table)
    for lender, reasons in refusals:
        console.print(f"[bold]{lender}[/] declined:")
        for reason in reasons:
            console.print(f"  - {reason}")
    if view.get("apr_spread") is not None:
        console.print(f"APR spread across the eligible lenders: {view['apr_spread']:.2f} points")
    return eligible


def _print_try_it(console: Console, base: str, keys: dict[str, Any]) -> None:
    lender, key = next(iter(keys["lenders"].items()))
    console.print("\n[bold]Try it[/]")
    console.print(f"  curl -H 'Authorization: Bearer {key}' {base}/v1/lender/matches   # {lender}")
    console.print(f"  curl -H 'Authorization: Bearer {keys['ops']}' {base}/v1/ops/stats")
    console.print(f"  API docs: {base}/docs")
