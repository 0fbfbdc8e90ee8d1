"""Benchmark: the lender pull endpoint under a fixed arrival rate, from another process.

A gateway (``kioskmatch gateway serve``, uvicorn, SQLite) is started with matches already
stored for one lender (real engine results for real programs, so each match carries its full
explanation). A load generator in this process sends ``GET /v1/lender/matches?limit=50`` pages
at a fixed arrival rate (open loop: a request is sent at its scheduled time whether or not the
earlier ones have answered, and its latency counts from that time), following cursors from
random starting points.

Reproduce::

    .venv/bin/python benchmarks/pull.py                      # 500 requests/s for 30 s
    .venv/bin/python benchmarks/pull.py --rate 200 --seconds 5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.protocol import new_id  # noqa: E402
from gateway.db import make_engine, migrate  # noqa: E402
from gateway.matching import (  # noqa: E402
    CreditBand,
    LoanKind,
    LoanRequest,
    collateral_from_appraisal,
    load_programs,
    match,
    sample_programs_dir,
)
from gateway.services.keys import Role, create_key  # noqa: E402
from gateway.services.offers import match_row  # noqa: E402
from gateway.settings import GatewaySettings  # noqa: E402
from tests.support.factories import appraisal_body  # noqa: E402
from tests.support.processes import GatewayProcess  # noqa: E402

LENDER = "Lakeshore Community Credit Union"


def seed(data_dir: Path, matches: int) -> str:
    """Store ``matches`` real match results for LENDER; returns a lender key."""
    from sqlmodel import Session

    settings = GatewaySettings(data_dir=data_dir)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    programs = [p for p in load_programs(sample_programs_dir()) if p.lender == LENDER]
    rng = random.Random(5)
    start = datetime.now(UTC) - timedelta(days=30)
    with Session(engine) as session:
        rows = []
        for i in range(matches):
            body = appraisal_body(value_minor=rng.randint(800_000, 2_000_000))
            request = LoanRequest(
                loan_kind=LoanKind.PURCHASE,
                amount_requested_minor=rng.randint(900_000, 1_800_000),
                down_payment_minor=rng.randint(0, 300_000),
                term_months=rng.choice([36, 48, 60, 72]),
                monthly_income_minor=rng.randint(300_000, 900_000),
                credit_band=rng.choice(list(CreditBand)),
            )
            collateral = collateral_from_appraisal(body, as_of=date.today())
            for result in match(collateral, request, programs, as_of=date.today()):
                rows.append(
                    match_row(
                        result,
                        appraisal_id=body.appraisal_id,
                        loan_request_id=new_id(),
                        lender_org=LENDER,
                        created_at=start + timedelta(seconds=i * 60),
                    )
                )
        session.add_all(rows)
        session.commit()
        key, _ = create_key(session, role=Role.LENDER, org=LENDER)
    engine.dispose()
    return key


class _Connection:
    """A minimal keep-alive HTTP/1.1 client connection (a load generator must cost less than
    the server it measures; general-purpose async clients spend milliseconds per 200 KB page)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, int]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.key}\r\n\r\n".encode()
        )
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status, length


async def load(
    base: str, key: str, rate: float, seconds: float, cursors: list[str | None]
) -> dict[str, Any]:
    url = httpx.URL(base)
    latencies: list[float] = []
    errors: list[str] = []
    sizes: list[int] = []
    idle: list[_Connection] = []
    rng = random.Random(11)

    async def one(scheduled: float) -> None:
        cursor = rng.choice(cursors)
        target = "/v1/lender/matches?limit=50" + (f"&cursor={cursor}" if cursor else "")
        reused = bool(idle)
        conn = idle.pop() if idle else _Connection(url.host, url.port or 80, key)
        try:
            try:
                status, size = await conn.get(target)
            except (OSError, asyncio.IncompleteReadError, IndexError):
                if not reused:
                    raise
                # The server closed an idle keep-alive connection (uvicorn does after 5 s);
                # like any HTTP client, send an idempotent GET again on a new connection.
                conn = _Connection(url.host, url.port or 80, key)
                status, size = await conn.get(target)
            if status != 200:
                errors.append(f"HTTP {status}")
            else:
                sizes.append(size)
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            errors.append(type(exc).__name__)
        latencies.append(time.perf_counter() - scheduled)

    n = int(rate * seconds)
    tasks = []
    t0 = time.perf_counter() + 0.2
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    for conn in idle:
        if conn.writer is not None:
            conn.writer.close()
    lat = sorted(latencies)
    return {
        "requests": n,
        "achieved_rate": n / elapsed,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1000,
        "max_ms": lat[-1] * 1000,
        "mean_response_bytes": statistics.mean(sizes) if sizes else 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--matches", type=int, default=4000, help="loan requests stored (×1 program)"
    )
    parser.add_argument("--quick", action="store_true", help="100 requests/s for 3 s")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.seconds, args.matches = 100.0, 3.0, 500
    with tempfile.TemporaryDirectory(prefix="kioskmatch-pull-") as tmp:
        data_dir = Path(tmp) / "gw"
        key = seed(data_dir, args.matches)
        gateway = GatewayProcess(data_dir, mqtt_url="", extra_env={"KIOSKMATCH_MQTT_URL": ""})
        gateway.start()
        try:
            with httpx.Client(
                base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}
            ) as c:
                cursors: list[str | None] = [None]
                page = c.get("/v1/lender/matches", params={"limit": 50}).json()
                while page["next_cursor"] and len(cursors) < 200:
                    cursors.append(page["next_cursor"])
                    page = c.get(
                        "/v1/lender/matches", params={"limit": 50, "cursor": page["next_cursor"]}
                    ).json()
            result = asyncio.run(load(gateway.url, key, args.rate, args.seconds, cursors))
        finally:
            gateway.stop()
    print(
        f"lender pull, pages of 50 at {args.rate:.0f} req/s for {args.seconds:.0f} s "
        f"(achieved {result['achieved_rate']:.0f}/s): p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms, errors {result['errors']}, "
        f"{result['mean_response_bytes'] / 1024:.0f} KiB per page"
    )
    print("goal: p99 ≤ 50 ms with no errors at 500 req/s for 30 s")
    print("reproduce: .venv/bin/python benchmarks/pull.py" + (" --quick" if args.quick else ""))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
