"""A lender's pull cursor never passes a match that commits later (PostgreSQL, two writers)."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from gateway.db import MatchRow, make_engine, migrate
from gateway.services.lenders import pull_matches_json
from gateway.services.offers import serialise_match_inserts
from gateway.settings import GatewaySettings
from tests.support.factories import stored_match
from tests.support.services import Postgres

pytestmark = pytest.mark.postgres

LENDER = "Harbor Bank"


def _row() -> MatchRow:
    row: MatchRow = stored_match(LENDER)
    return row


def _pull(engine: Engine, cursor: str | None = None) -> dict[str, object]:
    with Session(engine) as session:
        page: dict[str, object] = json.loads(
            pull_matches_json(session, lender_org=LENDER, cursor=cursor)
        )
        return page


def test_a_match_inserted_first_is_never_skipped_by_one_committed_first(
    postgres_db: Postgres,
) -> None:
    engine = make_engine(GatewaySettings(database_url=postgres_db.url).resolved_database_url)
    migrate(engine)
    try:
        first, second = _row(), _row()
        ids = [first.id, second.id]  # the rows expire at their commits
        second_done = threading.Event()

        def other_worker() -> None:
            with Session(engine) as session:
                serialise_match_inserts(session)
                session.add(second)
                session.commit()
            second_done.set()

        with Session(engine) as slow:
            serialise_match_inserts(slow)
            slow.add(first)
            slow.flush()  # first holds the lower seq, not yet committed
            worker = threading.Thread(target=other_worker, daemon=True)
            worker.start()
            # The other worker waits for the first transaction instead of committing past it ...
            assert not second_done.wait(1.0)
            assert _pull(engine)["items"] == []
            slow.commit()
        worker.join(10)
        assert second_done.is_set()
        # ... so a lender who pulled in between still gets both, in order, none skipped.
        items = _pull(engine)["items"]
        assert isinstance(items, list)
        assert [m["id"] for m in items] == ids
        assert items[0]["seq"] < items[1]["seq"]
    finally:
        engine.dispose()
