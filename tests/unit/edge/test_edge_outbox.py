from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.outbox import SqliteOutbox
from edge.protocol import Channel, EventBody, EventKind, TelemetryBody, decode, topic_for
from tests.support.factories import appraisal_body

KIOSK = "dlr-001-k1"


_OPEN: list[SqliteOutbox] = []


@pytest.fixture(autouse=True)
def _close_outboxes() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _outbox(tmp_path: Path, name: str = "outbox.db", **kw: float) -> SqliteOutbox:
    box = SqliteOutbox(tmp_path / name, kiosk_id=KIOSK, **kw)  # type: ignore[arg-type]
    _OPEN.append(box)
    return box


def test_put_assigns_increasing_seq_that_survives_reopening(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    a = box.put(Channel.TELEMETRY, TelemetryBody(uptime_s=1))
    b = box.put(Channel.EVENTS, EventBody(kind=EventKind.INSPECTION_PROGRESS))
    _OPEN.remove(box)
    box.close()
    box = _outbox(tmp_path)
    c = box.put(Channel.TELEMETRY, TelemetryBody(uptime_s=2))
    assert (a.seq, b.seq, c.seq) == (1, 2, 3)
    env = decode(topic_for(KIOSK, Channel.TELEMETRY), c.payload)
    assert env.seq == 3 and env.message_id == c.message_id


def test_messages_stay_until_receipted_and_are_resent_with_backoff(tmp_path: Path) -> None:
    box = _outbox(tmp_path, resend_after_s=10.0)
    item = box.put(Channel.APPRAISALS, appraisal_body())
    now = time.time()
    assert [i.message_id for i in box.due(now=now)] == [item.message_id]
    box.mark_sent([item.message_id], now=now)
    assert box.due(now=now + 5) == []
    assert [i.attempts for i in box.due(now=now + 12.5)] == [1]
    box.mark_sent([item.message_id], now=now + 12.5)
    assert box.due(now=now + 12.5 + 15) == []  # second wait is 20 s ± 20 %
    assert len(box.due(now=now + 12.5 + 24.1)) == 1
    box.reschedule_all()
    assert len(box.due(now=now)) == 1
    assert box.ack([item.message_id, "00000000-0000-0000-0000-000000000000"]) == 1
    assert box.depth() == 0 and box.due() == []


def test_payload_is_fixed_at_creation(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    item = box.put(Channel.APPRAISALS, appraisal_body())
    box.mark_sent([item.message_id])
    box.reschedule_all()
    again = box.due()[0]
    assert again.payload == item.payload  # same message_id, seq and created_at on every resend


def test_only_telemetry_is_dropped_oldest_first(tmp_path: Path) -> None:
    box = _outbox(tmp_path, "o.db", max_bytes=1_000_000)
    appraisals = [box.put(Channel.APPRAISALS, appraisal_body()) for _ in range(3)]
    big = {"m": "x" * 200_000}
    telemetry = [
        box.put(Channel.TELEMETRY, TelemetryBody(uptime_s=i, model_versions=big)) for i in range(8)
    ]
    left = {i.message_id for i in box.due(limit=100)}
    assert {a.message_id for a in appraisals} <= left
    kept = [t.message_id for t in telemetry if t.message_id in left]
    assert kept == [t.message_id for t in telemetry[-len(kept) :]], (
        "the oldest telemetry goes first"
    )
    assert len(kept) < len(telemetry)


def test_appraisal_log_and_commands_applied_once(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    body = appraisal_body()
    item = box.put(Channel.APPRAISALS, body)
    box.ack([item.message_id])
    assert box.appraisal_ids() == [body.appraisal_id]
    assert box.claim_command("c1") is True
    assert box.claim_command("c1") is False


def test_status_and_receipts_do_not_go_through_the_outbox(tmp_path: Path) -> None:
    from edge.protocol import ReceiptBody, new_id

    with pytest.raises(ValueError, match="outbox"):
        _outbox(tmp_path).put(Channel.RECEIPTS, ReceiptBody(message_ids=[new_id()]))


WRITER = """
import sys, time
from pathlib import Path
from edge.outbox import SqliteOutbox
from edge.protocol import Channel, TelemetryBody
box = SqliteOutbox(Path(sys.argv[1]), kiosk_id="dlr-001-k1")
i = 0
while True:
    item = box.put(Channel.TELEMETRY, TelemetryBody(uptime_s=i))
    print(item.message_id, flush=True)
    i += 1
"""


def test_kill_9_loses_nothing_that_was_queued(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    assert proc.stdout is not None
    confirmed = [proc.stdout.readline().strip() for _ in range(200)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    box = _outbox(tmp_path)
    ids = [i.message_id for i in box.due(limit=100_000)]
    assert set(confirmed) <= set(ids), "a message the writer was told is queued went missing"
    seqs = [json.loads(i.payload)["seq"] for i in box.due(limit=100_000)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert box.put(Channel.TELEMETRY, TelemetryBody(uptime_s=0)).seq == len(seqs) + 1


def test_old_telemetry_is_dropped_but_appraisals_are_kept(tmp_path: Path) -> None:
    box = _outbox(tmp_path, "aged.db", max_age_s=60)
    appraisal = box.put(Channel.APPRAISALS, appraisal_body())
    old = box.put(Channel.TELEMETRY, TelemetryBody(uptime_s=1))
    with box._lock:  # age both messages by two minutes
        box._db.execute("UPDATE outbox SET created_at = created_at - 120")
    new = box.put(Channel.TELEMETRY, TelemetryBody(uptime_s=2))
    left = {i.message_id for i in box.due(limit=100)}
    assert left == {appraisal.message_id, new.message_id} and old.message_id not in left


def test_the_budget_alarm_rises_and_clears_again(tmp_path: Path) -> None:
    box = _outbox(tmp_path, "alarm.db", max_bytes=10_000)
    queued = []
    while not box.disk_alarm:  # appraisals are never dropped: past the budget, the alarm
        queued.append(box.put(Channel.APPRAISALS, appraisal_body()).message_id)
        assert len(queued) < 100, "the alarm never rose"
    assert box.depth(Channel.APPRAISALS) == len(queued)
    box.ack(queued)  # receipted: the outbox is empty again
    box.put(Channel.TELEMETRY, TelemetryBody(uptime_s=1))
    assert not box.disk_alarm


def test_one_agent_per_outbox(tmp_path: Path) -> None:
    # Two agents on one file would send each message twice and fight over its seq.
    from edge.outbox import OutboxInUseError

    first = _outbox(tmp_path)
    with pytest.raises(OutboxInUseError, match="in use by another kiosk agent"):
        _outbox(tmp_path)
    first.close()
    _outbox(tmp_path).close()  # free again once closed (the kernel frees it when a process dies)
