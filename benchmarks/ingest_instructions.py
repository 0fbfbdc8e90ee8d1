"""Instructions per appraisal on the gateway's ingest path, counted by valgrind (callgrind).

``benchmarks/ingest.py`` measures the whole system in wall time, which on this two-core machine
swings by a third within minutes; this counts what one part costs, the same on every run. It
stores batches of 500 realistic appraisal messages (the report ``benchmarks/ingest.py`` sends,
made once here by the OBD simulator and the TFLite valuer) with ``ingest_batch`` into a SQLite
file, and prints the instructions per appraisal of:

- the gateway as it runs: appraisals decoded by the msgspec mirror (``gateway.services.wire``);
- the reference, in the same run: every message decoded and re-serialised by pydantic (the
  mirror switched off), as the gateway did before the mirror.

Each is run twice under ``valgrind --tool=callgrind``, with one batch and with six after two
warm-up batches, and the difference is divided by the 2,500 messages between them. MQTT, the
commit's disk writes and the receipts are not in it. Needs valgrind; takes about three minutes.

    .venv/bin/python benchmarks/ingest_instructions.py
    .venv/bin/python benchmarks/ingest_instructions.py --quick   # a smoke run, no valgrind
    .venv/bin/python benchmarks/ingest_instructions.py --profiles var/profiles  # keep them:
    callgrind_annotate --inclusive=yes var/profiles/callgrind.mirror.6  # minus ….mirror.1
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from _callgrind import have_valgrind, instructions

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500
KIOSKS = 50


def _payloads(count: int) -> list[tuple[str, bytes]]:
    """``count`` appraisal messages: the realistic report, each with its own ids and VIN."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ingest import realistic_report  # benchmarks/ingest.py

    from edge.protocol import Channel, encode, make_envelope, topic_for
    from kioskmatch.simulate import simulated_vin

    body = realistic_report()
    rng = random.Random(5)
    at = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
    out = []
    for i in range(count):
        kiosk = f"bench-k{i % KIOSKS:02d}"
        vehicle = body.vehicle.model_copy(update={"vin": simulated_vin(2019, i)})
        one = body.model_copy(
            update={
                "appraisal_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "vehicle": vehicle,
            }
        )
        envelope = make_envelope(
            kiosk,
            one,
            seq=i + 1,
            message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            created_at=at,
        )
        out.append((topic_for(kiosk, Channel.APPRAISALS), encode(envelope)))
    return out


def _workload(payload_file: Path, batches: int, mirror: bool) -> None:
    import logging

    logging.disable(logging.WARNING)
    from sqlmodel import Session

    from gateway.db import make_engine, migrate
    from gateway.services import ingest

    if not mirror:  # every message to pydantic, as if the mirror refused it
        setattr(ingest, "decode_appraisal", lambda topic, payload: None)  # noqa: B010
    items = pickle.loads(payload_file.read_bytes())
    at = datetime(2026, 11, 29, 9, 31, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/gateway.db")
        migrate(engine)
        for b in range(2 + batches):  # two warm-up batches: statements compiled, caches made
            batch = [ingest.Inbound(t, p, at) for t, p in items[b * BATCH : (b + 1) * BATCH]]
            with Session(engine, expire_on_commit=False) as session:
                stored = ingest.ingest_batch(session, batch).stored
            if stored != len(batch):
                raise SystemExit(f"stored {stored} of {len(batch)}")
        engine.dispose()


def _instructions(payload_file: Path, batches: int, mirror: bool, out: Path) -> int:
    mode = "mirror" if mirror else "pydantic"
    return instructions(__file__, ["--workload", str(payload_file), str(batches), mode], out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a smoke run, no valgrind")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument(
        "--profiles",
        type=Path,
        metavar="DIR",
        help="keep valgrind's profiles there (callgrind_annotate shows where the instructions go)",
    )
    args = parser.parse_args(argv)
    if args.workload:
        path, batches, mode = args.workload
        _workload(Path(path), int(batches), mode == "mirror")
        return 0
    if not args.quick and not have_valgrind():
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        payload_file = Path(tmp) / "payloads.pickle"
        payloads = _payloads(BATCH * (2 + (1 if args.quick else 6)))
        payload_file.write_bytes(pickle.dumps(payloads))
        print(f"appraisal message: {len(payloads[0][1]):,} bytes; batches of {BATCH}")
        if args.quick:
            for mirror in (True, False):
                _workload(payload_file, 1, mirror)
            print("stored a batch each way (no count: run without --quick)")
            return 0
        result = {}
        for mirror in (True, False):
            name = "mirror" if mirror else "pydantic"
            profiles = args.profiles or Path(tmp)
            profiles.mkdir(parents=True, exist_ok=True)
            one = _instructions(payload_file, 1, mirror, profiles / f"callgrind.{name}.1")
            six = _instructions(payload_file, 6, mirror, profiles / f"callgrind.{name}.6")
            result[name] = (six - one) / (5 * BATCH)
            per = result[name] / 1e3
            print(f"ingest_batch, {name} decoding: {per:,.0f} k instructions per appraisal")
    print(f"mirror / pydantic: {result['mirror'] / result['pydantic']:.2f}")
    print("reproduce: .venv/bin/python benchmarks/ingest_instructions.py")
    if args.json:
        print(json.dumps({f"{k}_instructions_per_appraisal": round(v) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
