"""Benchmark: appraisals committed per second by the gateway, beside the raw broker limit.

In one run, on a Mosquitto and a PostgreSQL this script starts on free ports:

1. raw limit: one paho publisher → Mosquitto → one paho subscriber that does nothing (in a
   process of its own, as the gateway is), QoS 1, with the same appraisal payloads. It is run
   just before and just after every case, and each case is compared with the higher of its two
   (this machine's speed drifts by tens of percent within minutes);
2. for SQLite and PostgreSQL, with one and with two gateway processes (``kioskmatch gateway
   serve``; two share the subscription): 50 kiosk connections publish realistic appraisal
   reports as fast as the broker takes them, and wait for every receipt. Committed appraisals/s
   is receipted messages over the time from the first publish to the last receipt;
3. at a fixed 300 appraisals/s: the p95 latency from ``created_at`` to the receipt.

Every run starts on an empty database (a new SQLite file; PostgreSQL's schema dropped and made
again), and after each case the broker is made to forget the stopped gateways' persistent
sessions: no run pays for an earlier one's rows or for messages queued for a gateway that is
gone. (Until 29 November repeats shared one SQLite file, and each case's sessions stayed
subscribed: later runs ran on a database tens of MB larger, with the broker queuing every
message for the earlier cases' gateways.)

The kiosks are paho clients publishing pre-built envelopes (the kiosk's outbox is measured by
the fault suite, not here): the gateway is what is measured. Real kiosks run on their own
hardware; here one thread drives all 50 connections so the load generator takes about as much
CPU per message as the raw reference's publisher does.

Reproduce::

    .venv/bin/python benchmarks/ingest.py                 # 10,000 appraisals per case
    .venv/bin/python benchmarks/ingest.py --quick --json  # a smoke run
    .venv/bin/python benchmarks/ingest.py --cases sqlite1,sqlite2  # SQLite only
    .venv/bin/python benchmarks/ingest.py --cases sqlite2 --repeats 5  # median of 5 runs
    .venv/bin/python benchmarks/ingest.py --cases sqlite2 --repeats 3 --keep-database  # growing
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.protocol import (  # noqa: E402
    AppraisalBody,
    Channel,
    MqttEndpoint,
    decode,
    encode,
    make_envelope,
    new_id,
    topic_for,
)
from kioskmatch.simulate import simulated_vin  # noqa: E402
from tests.support.processes import GatewayProcess  # noqa: E402
from tests.support.services import mosquitto, postgres  # noqa: E402

KIOSKS = 50


def realistic_report() -> AppraisalBody:
    """An appraisal as the kiosk makes it: simulator OBD read, TFLite valuation, full curve."""
    from edge.adapters import TfliteValuer
    from edge.inspection import run_inspection
    from edge.obd import read_vehicle, start_simulator

    class Reader:
        def __init__(self, port: str) -> None:
            self.port = port

        def read(self) -> Any:
            return read_vehicle(self.port, timeout=30).to_protocol()

    with start_simulator("mil_on", latency_s=0) as sim:
        return run_inspection(
            appraisal_id=new_id(),
            reader=Reader(sim.port),
            valuer=TfliteValuer(),
            hints={"model": "Malibu", "trim": "LS Sedan 4D", "options": {"cruise": True}},
        )


class Fleet:
    """KIOSKS paho clients: publish appraisals, collect receipts and their latencies.

    One thread drives all the connections (``pump``: select over the sockets, paho's
    ``loop_read``/``loop_write``/``loop_misc``), so the load generator costs about what the raw
    reference's publisher costs per message, rather than 50 network threads contending for the
    GIL with the publishing one. Each client is still its own MQTT session with its own socket.
    """

    def __init__(self, endpoint: MqttEndpoint, body: AppraisalBody, tag: str) -> None:
        self.body = body
        self.kiosk_ids = [f"bench-{tag}-k{i:02d}" for i in range(KIOSKS)]
        self.created: dict[str, float] = {}
        self.latencies: list[float] = []
        self.clients: list[mqtt.Client] = []
        self.seq = 0
        self._last_misc = 0.0
        for kiosk in self.kiosk_ids:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=f"kiosk-{kiosk}", clean_session=True
            )
            client.max_inflight_messages_set(200)
            client.on_message = self._on_receipt
            client.connect(endpoint.host, endpoint.port)
            client.subscribe(topic_for(kiosk, Channel.RECEIPTS), qos=1)
            self.clients.append(client)
        deadline = time.monotonic() + 10
        while not all(c.is_connected() for c in self.clients):
            if time.monotonic() > deadline:
                raise SystemExit("benchmark kiosks could not connect to the broker")
            self.pump(0.05)

    def pump(self, timeout: float) -> None:
        """Service every connection once: read what arrived, write what is pending."""
        by_sock = {c.socket(): c for c in self.clients}
        socks = [s for s in by_sock if s is not None]
        writers = [s for s, c in by_sock.items() if s is not None and c.want_write()]
        readable, writable, _ = select.select(socks, writers, [], timeout)
        for sock in readable:
            by_sock[sock].loop_read()
        for sock in writable:
            by_sock[sock].loop_write()
        now = time.monotonic()
        if now - self._last_misc > 1.0:
            self._last_misc = now
            for client in self.clients:
                client.loop_misc()

    def _on_receipt(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        env = decode(msg.topic, bytes(msg.payload))
        for message_id in env.body.message_ids:
            created = self.created.pop(message_id, None)
            if created is not None:
                self.latencies.append(now - created)

    def build(self, i: int) -> tuple[int, str, bytes, str]:
        """Message ``i``: (client, topic, payload, message_id), a new car each time."""
        kiosk = self.kiosk_ids[i % KIOSKS]
        vehicle = self.body.vehicle.model_copy(update={"vin": simulated_vin(2019, i % 1_000_000)})
        body = self.body.model_copy(update={"appraisal_id": new_id(), "vehicle": vehicle})
        self.seq += 1
        env = make_envelope(kiosk, body, seq=self.seq)
        return i % KIOSKS, topic_for(kiosk, Channel.APPRAISALS), encode(env), env.message_id

    def send(self, message: tuple[int, str, bytes, str]) -> None:
        """Publish (paho writes straight to the socket: no network thread is running)."""
        client, topic, payload, message_id = message
        self.created[message_id] = time.time()
        self.clients[client].publish(topic, payload, qos=1)

    def publish(self, i: int) -> None:
        self.send(self.build(i))

    def wait(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.latencies) < count:
            if time.monotonic() > deadline:
                return False
            self.pump(0.05)
        return True

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
        self.pump(0.1)


_RAW_SUBSCRIBER = r"""
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
received = 0


def on_connect(client, _u, _f, _rc, _p):
    client.subscribe("bench/raw", qos=1)


def on_subscribe(_c, _u, _mid, _codes, _p):
    print("ready", flush=True)


def on_message(client, _u, _m):
    global received
    received += 1
    if received >= count:
        print(f"done {time.process_time()}", flush=True)
        client.disconnect()


sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-sub")
sub.on_connect, sub.on_subscribe, sub.on_message = on_connect, on_subscribe, on_message
sub.connect(host, port)
sub.loop_forever()
"""


def raw_limit(
    endpoint: MqttEndpoint, payload: bytes, count: int, broker_pid: int | None = None
) -> dict[str, float]:
    """Messages/s from one paho publisher to one paho subscriber that does nothing (QoS 1).

    The subscriber is a process of its own, as the gateway is: in the publisher's process the
    two would share one interpreter lock and measure Python, not the broker (about half the
    rate on this machine). With the CPU per message of the two clients and of the broker.
    """
    sub = subprocess.Popen(
        [sys.executable, "-c", _RAW_SUBSCRIBER, endpoint.host, str(endpoint.port), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sub.stdout is not None
        if sub.stdout.readline().strip() != "ready":
            raise SystemExit("the raw-limit subscriber could not subscribe")
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-pub")
        pub.max_inflight_messages_set(200)
        pub.connect(endpoint.host, endpoint.port)
        pub.loop_start()
        time.sleep(0.3)
        pub_cpu, broker_cpu = time.process_time(), cpu_seconds(broker_pid)
        started = time.perf_counter()
        for _ in range(count):
            pub.publish("bench/raw", payload, qos=1)
        line = sub.stdout.readline().split()  # "done <subscriber CPU seconds>"
        elapsed = time.perf_counter() - started
        pub_cpu = time.process_time() - pub_cpu
        broker_cpu = cpu_seconds(broker_pid) - broker_cpu
        pub.loop_stop()
        pub.disconnect()
        if len(line) != 2 or line[0] != "done":
            raise SystemExit("the raw-limit subscriber stopped before receiving every message")
        sub.wait(10)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    return {
        "msgs_per_s": count / elapsed,
        # The subscriber's CPU includes its start-up; its share per message is small at count.
        "clients_cpu_us_per_msg": (pub_cpu + float(line[1])) / count * 1e6,
        "broker_cpu_us_per_msg": broker_cpu / count * 1e6,
    }


def _forget_sessions(endpoint: MqttEndpoint, client_ids: list[str]) -> None:
    """Have the broker drop the persistent sessions of ``client_ids`` (a clean-session connect)."""
    for client_id in client_ids:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        client.connect(endpoint.host, endpoint.port)
        client.loop_start()
        deadline = time.monotonic() + 5
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        client.disconnect()
        client.loop_stop()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_case(
    broker_url: str,
    body: AppraisalBody,
    workdir: Path,
    database_url: str | None,
    workers: int,
    count: int,
    tag: str,
    broker_pid: int | None = None,
    run: int = 0,
) -> dict[str, float]:
    endpoint = MqttEndpoint.parse(broker_url)
    gateways = []
    # Forgotten when the case ends: the broker would otherwise keep the stopped gateways'
    # persistent sessions and queue every later case's messages for them.
    sessions = [f"gateway-{tag}-w{w}" for w in range(workers)]
    with ExitStack() as stack:
        stack.callback(_forget_sessions, endpoint, sessions)
        for w in range(workers):
            env_extra = {"KIOSKMATCH_WORKER_ID": f"{tag}-w{w}"}
            if workers > 1:
                env_extra["KIOSKMATCH_MQTT_SHARED_GROUP"] = f"bench-{tag}"
            gw = GatewayProcess(  # each run on a new SQLite database, as PostgreSQL's is reset
                workdir / f"gw-{tag}-{run}", broker_url, database_url, extra_env=env_extra
            )
            gw.start()
            stack.callback(gw.stop)
            gateways.append(gw)
        fleet = Fleet(endpoint, body, tag)
        stack.callback(fleet.close)
        # Built before the clock starts: the load generator must not be what is measured.
        messages = [fleet.build(i) for i in range(count)]
        time.sleep(0.5)
        pids = [gw.process.pid for gw in gateways if gw.process is not None]
        gateway_cpu = sum(cpu_seconds(pid) for pid in pids)
        broker_cpu, kiosks_cpu = cpu_seconds(broker_pid), time.process_time()
        started = time.perf_counter()
        for n, message in enumerate(messages, 1):
            fleet.send(message)
            if n % KIOSKS == 0:
                fleet.pump(0)
        ok = fleet.wait(count, 300)
        elapsed = time.perf_counter() - started
        gateway_cpu = sum(cpu_seconds(pid) for pid in pids) - gateway_cpu
        broker_cpu = cpu_seconds(broker_pid) - broker_cpu
        kiosks_cpu = time.process_time() - kiosks_cpu
        if not ok:
            raise SystemExit(f"{tag}: only {len(fleet.latencies)} of {count} receipted in 300 s")
        throughput = count / elapsed
        # Fixed rate: 300 appraisals/s for a few seconds, p95 created → receipted.
        fleet.latencies.clear()
        rate, seconds = 300.0, max(3.0, count / 1000)
        n = int(rate * seconds)
        t0 = time.perf_counter()
        for i in range(n):
            while (due := t0 + i / rate - time.perf_counter()) > 0:
                fleet.pump(due)
            fleet.publish(count + i)
            fleet.pump(0)
        fleet.wait(n, 120)
        lat = sorted(fleet.latencies)
        p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
    return {
        "appraisals_per_s": throughput,
        # CPU per committed appraisal of the gateways (all threads, all workers), the broker and
        # the 50 kiosk clients (this process): where the machine's two cores go. Less sensitive
        # to other load than the rate, though a busy machine still inflates them.
        "gateway_cpu_us_per_msg": gateway_cpu / count * 1e6,
        "broker_cpu_us_per_msg": broker_cpu / count * 1e6,
        "kiosks_cpu_us_per_msg": kiosks_cpu / count * 1e6,
        "p95_ms_at_300_per_s": p95 * 1000,
        "p50_ms_at_300_per_s": statistics.median(lat) * 1000,
    }


CASES = {f"{db}{workers}": (db, workers) for db in ("sqlite", "postgres") for workers in (1, 2)}


def _cases(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown case(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(CASES)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10000, help="appraisals per case")
    parser.add_argument(
        "--quick", action="store_true", help="300 appraisals, SQLite and one worker only"
    )
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each case (the median is reported)"
    )
    parser.add_argument(
        "--cases",
        type=_cases,
        default=list(CASES),
        help=f"comma-separated cases to run, of {', '.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help="the repeats of a case share one database, which grows run by run (ingest into a "
        "database that already holds appraisals), instead of each starting empty",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    count = 300 if args.quick else args.count

    body = realistic_report()
    payload = encode(make_envelope("bench-k00", body, seq=1))
    print(
        f"appraisal report: {len(payload):,} bytes on the wire "
        "(OBD read with codes, TFLite valuation, 85-month residual curve)"
    )
    results: dict[str, Any] = {
        "payload_bytes": len(payload),
        "generated_at": datetime.now(UTC).isoformat(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="kioskmatch-bench-") as tmp,
        mosquitto(Path(tmp) / "mosq") as broker,
    ):
        endpoint = MqttEndpoint.parse(broker.url)
        broker_pid = broker.process.pid if broker.process is not None else None
        # Enough for a steady rate, and bounded: the publisher runs ahead of the subscriber, and
        # past ~50,000 reports the broker's backlog (saved to disk every second, as the fault
        # tests need) grows to hundreds of MB and the broker does little but save it.
        raw_count = min(max(count, 2000), 30_000)

        def measure_raw() -> dict[str, float]:
            r = raw_limit(endpoint, payload, raw_count, broker_pid)
            raws.append(r)
            print(
                f"raw broker limit (paho → Mosquitto → paho, QoS 1, same payload): "
                f"{r['msgs_per_s']:,.0f} msg/s; CPU/msg: clients "
                f"{r['clients_cpu_us_per_msg']:.0f} µs, broker {r['broker_cpu_us_per_msg']:.0f} µs"
            )
            return r

        # This machine's speed drifts by tens of percent within minutes, so every case is
        # bracketed by raw runs, just before and just after it, and compared with the higher
        # of the two: the same conditions, and a reference that can only flatter the raw side.
        raws: list[dict[str, float]] = []
        before = measure_raw()
        cases = [CASES["sqlite1"]] if args.quick else [CASES[c] for c in args.cases]
        with ExitStack() as stack:
            pg_url = None
            if any(db == "postgres" for db, _ in cases):
                pg_url = stack.enter_context(postgres()).url
            for db, workers in cases:
                tag = f"{db}{workers}"
                database_url = pg_url if db == "postgres" else None
                runs = []
                for run in range(args.repeats):
                    if db == "postgres" and not (args.keep_database and run):
                        _reset_postgres(pg_url or "")
                    r = ingest_case(
                        broker.url,
                        body,
                        Path(tmp),
                        database_url,
                        workers,
                        count,
                        tag,
                        broker_pid,
                        0 if args.keep_database else run,
                    )
                    after = measure_raw()
                    r["raw_msgs_per_s"] = max(before["msgs_per_s"], after["msgs_per_s"])
                    r["share_of_raw"] = r["appraisals_per_s"] / r["raw_msgs_per_s"]
                    before = after
                    runs.append(r)
                    print(
                        f"{db:8s} {workers} worker(s): {r['appraisals_per_s']:8,.0f} appraisals/s "
                        f"({r['share_of_raw']:5.0%} of the raw runs around it); "
                        f"at 300/s p50 {r['p50_ms_at_300_per_s']:6.1f} ms, "
                        f"p95 {r['p95_ms_at_300_per_s']:6.1f} ms; CPU/msg: "
                        f"gateway {r['gateway_cpu_us_per_msg']:.0f} µs, "
                        f"broker {r['broker_cpu_us_per_msg']:.0f} µs, "
                        f"kiosks {r['kiosks_cpu_us_per_msg']:.0f} µs"
                        + (" (+ the PostgreSQL server's)" if db == "postgres" else "")
                    )
                # The run with the median share of raw stands for the case.
                runs.sort(key=lambda run: run["share_of_raw"])
                results[tag] = {**runs[len(runs) // 2], "runs": runs}
    best_raw = max(r["msgs_per_s"] for r in raws)
    results["raw_broker_msgs_per_s"] = best_raw
    results["raw"] = raws
    sqlite = [v for k, v in results.items() if k.startswith("sqlite")]
    repeats = f", median of {args.repeats} runs" if args.repeats > 1 else ""
    if sqlite:
        best = max(sqlite, key=lambda v: v["share_of_raw"])
        print(
            f"goals: ≥ 50% of raw and ≥ 1,000/s with SQLite (best case{repeats}: "
            f"{best['appraisals_per_s']:,.0f}/s, {best['share_of_raw']:.0%} of the raw runs "
            f"around it, {best['appraisals_per_s'] / best_raw:.0%} of the best raw run of all); "
            "p95 ≤ 250 ms at 300/s"
        )
    else:
        print("goals: ≥ 50% of raw and ≥ 1,000/s with SQLite (no SQLite case run); p95 ≤ 250 ms")
    print(
        "reproduce: .venv/bin/python benchmarks/ingest.py"
        + (
            " --quick"
            if args.quick
            else f" --count {count} --cases {','.join(args.cases)} --repeats {args.repeats}"
            + (" --keep-database" if args.keep_database else "")
        )
    )
    if args.json:
        print(json.dumps(results))
    return 0


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
