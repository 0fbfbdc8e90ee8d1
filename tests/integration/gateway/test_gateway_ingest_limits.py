"""Ingest on PostgreSQL refuses what PostgreSQL cannot store as a dead letter, never a crash."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, func, select

from edge.protocol import Channel, EventBody, EventKind, encode, make_envelope, topic_for
from gateway.db import Appraisal, DeadLetter, make_engine, migrate
from gateway.services.ingest import Inbound, ingest_batch
from gateway.settings import GatewaySettings
from tests.support.factories import appraisal_body
from tests.support.services import Postgres

pytestmark = pytest.mark.postgres

KIOSK = "pg-kiosk-1"


@pytest.mark.parametrize("channel", [Channel.APPRAISALS, Channel.EVENTS])
def test_a_nul_character_is_a_dead_letter(postgres_db: Postgres, channel: Channel) -> None:
    engine = make_engine(GatewaySettings(database_url=postgres_db.url).resolved_database_url)
    migrate(engine)
    body = (
        appraisal_body(vin="1G1\u0000ZB5ST7")  # a text column
        if channel is Channel.APPRAISALS
        else EventBody(kind=EventKind.INSPECTION_PROGRESS, detail="retake\u0000")
    )
    bad = make_envelope(KIOSK, body, seq=1)
    good = make_envelope(KIOSK, appraisal_body(), seq=2)
    try:
        with Session(engine) as session:
            outcome = ingest_batch(
                session,
                [
                    Inbound(topic_for(KIOSK, channel), encode(bad)),
                    Inbound(topic_for(KIOSK, Channel.APPRAISALS), encode(good)),
                ],
            )
            assert (outcome.dead_letters, outcome.stored) == (1, 1)
            # Receipted, so the kiosk lets go of a message that resending would never help.
            assert outcome.receipts == {KIOSK: [bad.message_id, good.message_id]}
            letter = session.exec(select(DeadLetter)).one()
            assert "NUL" in letter.reason
            assert json.loads(letter.payload)["message_id"] == bad.message_id
            assert session.exec(select(func.count()).select_from(Appraisal)).one() == 1
    finally:
        engine.dispose()
