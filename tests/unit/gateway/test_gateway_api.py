from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from gateway.api.app import create_app
from gateway.api.schemas import MatchPublic, Page
from gateway.context import GatewayContext
from gateway.db import (
    AppraisalRequest,
    CommandRow,
    LoanRequestRow,
    MatchRow,
)
from gateway.errors import ConflictError
from gateway.services import lenders
from gateway.services.keys import Role, create_key
from kioskmatch.demo import DEMO_LOAN
from tests.support.factories import stored_match
from tests.support.links import FakeLink, linked_context


def _scalars(value: Any) -> Iterator[Any]:
    """Every number, string, boolean and null in a JSON document."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    else:
        yield value


@pytest.fixture
def context(tmp_path: Path) -> Iterator[GatewayContext]:
    context = linked_context(tmp_path / "api.db")
    yield context
    context.engine.dispose()


@pytest.fixture
def client(context: GatewayContext) -> TestClient:
    return TestClient(create_app(context))


def _key(context: GatewayContext, role: Role, org: str) -> dict[str, str]:
    with context.session() as s:
        token, _ = create_key(s, role=role, org=org)
    return {"Authorization": f"Bearer {token}"}


def _matches(context: GatewayContext, lender: str, n: int) -> None:
    with context.session() as s:
        for i in range(n):
            s.add(
                stored_match(
                    lender,
                    eligible=i % 2 == 0,
                    result={"i": i},
                    created_at=datetime.now(UTC) - timedelta(minutes=n - i),
                )
            )
        s.commit()


def test_health_needs_no_key(context: GatewayContext, client: TestClient) -> None:
    response = client.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "broker": True, "ingest": True}
    link = context.link
    assert isinstance(link, FakeLink)
    link.ingesting = False  # the ingest thread died: the broker being up is not health
    response = client.get("/v1/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded" and response.json()["ingest"] is False


def test_health_is_503_without_broker(context: GatewayContext, client: TestClient) -> None:
    link = context.link
    assert isinstance(link, FakeLink)
    link.connected = False
    assert client.get("/v1/health").status_code == 503


def test_missing_and_wrong_keys_are_problems(context: GatewayContext, client: TestClient) -> None:
    response = client.get("/v1/lender/matches")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "Bearer" in response.json()["detail"]
    assert (
        client.get("/v1/lender/matches", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    dealer = _key(context, Role.DEALER, "Dealer A")
    forbidden = client.get("/v1/lender/matches", headers=dealer)
    assert forbidden.status_code == 403 and "lender key" in forbidden.json()["detail"]


def test_a_lender_sees_only_its_own_matches_page_by_page(
    context: GatewayContext, client: TestClient
) -> None:
    _matches(context, "Lender A", 7)
    _matches(context, "Lender B", 3)
    headers = _key(context, Role.LENDER, "Lender A")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/lender/matches", headers=headers, params=params).json()
        Page[MatchPublic].model_validate(page)  # the fast path's JSON is the documented schema
        seen += [m["id"] for m in page["items"]]
        assert all(m["lender"] == "Lender A" for m in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    eligible = client.get("/v1/lender/matches", headers=headers, params={"eligible": True}).json()
    assert len(eligible["items"]) == 4


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        base64.urlsafe_b64encode(b"v2:3").decode(),
        base64.urlsafe_b64encode(b"v1:-1").decode(),
        base64.urlsafe_b64encode(b"v1:" + b"9" * 30).decode(),  # beyond BIGINT: was a 500
    ],
)
def test_a_cursor_that_is_not_ours_is_a_bad_request(
    context: GatewayContext, client: TestClient, cursor: str
) -> None:
    headers = _key(context, Role.LENDER, "Lender A")
    bad = client.get("/v1/lender/matches", headers=headers, params={"cursor": cursor})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert "next_cursor" in bad.json()["detail"]


def test_time_filters_compare_instants_whatever_the_offset(
    context: GatewayContext, client: TestClient
) -> None:
    _matches(context, "Lender A", 4)  # created 4, 3, 2 and 1 minutes ago
    headers = _key(context, Role.LENDER, "Lender A")
    now = datetime.now(UTC)
    east, west = timezone(timedelta(hours=5)), timezone(timedelta(hours=-7))

    def count(**bounds: datetime) -> int:
        params = {k: v.isoformat() for k, v in bounds.items()}
        response = client.get("/v1/lender/matches", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    cut = now - timedelta(minutes=2, seconds=30)
    for zone in (UTC, east, west):
        assert count(since=cut.astimezone(zone)) == 2
        assert count(until=cut.astimezone(zone)) == 2
    assert count(since=cut.replace(tzinfo=None)) == 2  # naive means UTC


def test_lender_cannot_decide_on_another_lenders_match(
    context: GatewayContext, client: TestClient
) -> None:
    _matches(context, "Lender B", 1)
    with context.session() as s:
        match_id = s.exec(select(MatchRow.id)).one()
    a = _key(context, Role.LENDER, "Lender A")
    b = _key(context, Role.LENDER, "Lender B")
    assert (
        client.post(
            f"/v1/lender/matches/{match_id}/decision", headers=a, json={"decision": "accepted"}
        ).status_code
        == 404
    )
    ok = client.post(
        f"/v1/lender/matches/{match_id}/decision", headers=b, json={"decision": "accepted"}
    )
    assert ok.status_code == 200 and ok.json()["decision"] == "accepted"
    again = client.post(
        f"/v1/lender/matches/{match_id}/decision", headers=b, json={"decision": "declined"}
    )
    assert again.status_code == 409


def test_of_two_decisions_at_once_one_wins_and_the_other_is_a_conflict(
    context: GatewayContext,
) -> None:
    _matches(context, "Lender B", 1)
    with context.session() as slow, context.session() as fast:
        # The slow request has read the match while it was still pending ...
        match = slow.exec(select(MatchRow)).one()
        assert match.decision == "pending"
        # ... when another request declines it.
        lenders.decide(fast, lender_org="Lender B", match_id=match.id, decision="declined")
        with pytest.raises(ConflictError, match="already declined"):
            lenders.decide(slow, lender_org="Lender B", match_id=match.id, decision="accepted")
        assert (
            lenders.decide(slow, lender_org="Lender B", match_id=match.id, decision="declined")
        ).decision == "declined"  # the same decision again is no conflict
    with context.session() as s:
        assert s.exec(select(MatchRow.decision)).one() == "declined"


def test_a_dealer_pages_through_its_own_appraisals_newest_first(
    context: GatewayContext, client: TestClient
) -> None:
    mine, theirs = _key(context, Role.DEALER, "Dealer A"), _key(context, Role.DEALER, "Dealer B")
    body = {"kiosk_id": "dlr-001-k1", "vehicle": {"model": "Malibu"}}
    started = [
        client.post("/v1/dealer/appraisals", headers=mine, json=body).json()["appraisal_id"]
        for _ in range(5)
    ]
    client.post("/v1/dealer/appraisals", headers=theirs, json=body)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/dealer/appraisals", headers=mine, params=params).json()
        assert len(page["items"]) <= 2
        seen += [item["appraisal_id"] for item in page["items"]]
        assert all(item["state"] == "requested" and item["vin"] is None for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == started[::-1]  # newest first, every one once, none of Dealer B's
    first = client.get("/v1/dealer/appraisals", headers=mine).json()["items"][0]
    assert first["requested_at"].endswith("Z")
    bad = client.get("/v1/dealer/appraisals", headers=mine, params={"cursor": "x"})
    assert bad.status_code == 400


def test_a_retried_start_with_its_idempotency_key_makes_nothing_twice(
    context: GatewayContext, client: TestClient
) -> None:
    dealer = _key(context, Role.DEALER, "Dealer A")
    body = {"kiosk_id": "dlr-001-k1", "vehicle": {"model": "Malibu"}}
    first = client.post(
        "/v1/dealer/appraisals", headers={**dealer, "Idempotency-Key": "order-42"}, json=body
    )
    assert first.status_code == 201
    retry = client.post(
        "/v1/dealer/appraisals", headers={**dealer, "Idempotency-Key": "order-42"}, json=body
    )
    assert retry.status_code == 200
    assert retry.json()["appraisal_id"] == first.json()["appraisal_id"]
    other_body = client.post(
        "/v1/dealer/appraisals",
        headers={**dealer, "Idempotency-Key": "order-42"},
        json={**body, "kiosk_id": "dlr-001-k2"},
    )
    assert other_body.status_code == 409
    assert other_body.headers["content-type"].startswith("application/problem+json")
    # Keys are per dealer, and no key means a new appraisal every time.
    other_dealer = client.post(
        "/v1/dealer/appraisals",
        headers={**_key(context, Role.DEALER, "Dealer B"), "Idempotency-Key": "order-42"},
        json=body,
    )
    assert other_dealer.status_code == 201
    assert other_dealer.json()["appraisal_id"] != first.json()["appraisal_id"]
    assert client.post("/v1/dealer/appraisals", headers=dealer, json=body).status_code == 201
    with context.session() as s:
        assert len(s.exec(select(CommandRow)).all()) == 3  # one per appraisal made
        assert len(s.exec(select(AppraisalRequest)).all()) == 3
    # Kept for a day, then forgotten by the housekeeping: the key starts a new appraisal.
    from datetime import UTC, datetime, timedelta

    from gateway.services.maintenance import prune

    for hours, status in [(23, 200), (25, 201)]:
        with context.session() as s:
            prune(s, retention=timedelta(days=30), now=datetime.now(UTC) + timedelta(hours=hours))
        again = client.post(
            "/v1/dealer/appraisals", headers={**dealer, "Idempotency-Key": "order-42"}, json=body
        )
        assert again.status_code == status, hours


def test_dealer_starts_an_appraisal_with_encrypted_masked_applicant(
    context: GatewayContext, client: TestClient
) -> None:
    headers = _key(context, Role.DEALER, "Dealer A")
    body = {
        "kiosk_id": "dlr-001-k1",
        "vehicle": {"model": "Malibu", "trim": "LS Sedan 4D"},
        "loan_request": {
            "amount_minor": 1_200_000,
            "down_payment_minor": 200_000,
            "term_months": 48,
            "monthly_income_minor": 612_345,
            "credit_score": 722,
            "consent": True,
        },
    }
    response = client.post("/v1/dealer/appraisals", headers=headers, json=body)
    assert response.status_code == 201, response.text
    view = response.json()
    assert view["state"] == "requested" and view["command_state"] == "pending"  # kiosk not online
    assert view["loan_requests"][0]["applicant"] == {
        "monthly_income": "$6k-$7k",
        "credit": "700-749",
    }
    # Neither number appears as a value (nor the income anywhere: six digits no id holds by
    # chance, where "722" turns up inside a random UUID every few dozen runs).
    assert not {722, "722", 612_345, "612345"} & set(_scalars(view))
    assert "612345" not in response.text
    # RFC 3339 in UTC, although SQLite hands the stored timestamps back without a zone
    assert view["loan_requests"][0]["created_at"].endswith("Z")
    shown = client.get(f"/v1/dealer/appraisals/{view['appraisal_id']}", headers=headers).json()
    assert shown["loan_requests"][0]["created_at"].endswith("Z")
    with context.session() as s:
        row = s.exec(select(LoanRequestRow)).one()
        assert b"612345" not in row.applicant_sealed and b"722" not in row.applicant_sealed
        command = s.exec(select(CommandRow)).one()
        assert command.params["appraisal_id"] == view["appraisal_id"]
    other = _key(context, Role.DEALER, "Dealer B")
    assert (
        client.get(f"/v1/dealer/appraisals/{view['appraisal_id']}", headers=other).status_code
        == 404
    )


def test_loan_request_needs_consent(context: GatewayContext, client: TestClient) -> None:
    headers = _key(context, Role.DEALER, "Dealer A")
    body = {
        "kiosk_id": "dlr-001-k1",
        "loan_request": {
            "amount_minor": 100,
            "term_months": 48,
            "monthly_income_minor": 1,
            "credit_score": 700,
            "consent": False,
        },
    }
    response = client.post("/v1/dealer/appraisals", headers=headers, json=body)
    assert response.status_code == 422
    assert "consent" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"consent": False}, "consent", "consent is required"),
        ({"credit_score": None}, "credit_band", "give credit_score"),
        ({"down_payment_minor": 1_250_000}, "down_payment_minor", "nothing would be left"),
        ({"down_payment_minor": 2_000_000}, "down_payment_minor", "must be less than"),
        ({"credit_score": 900}, "credit_score", "less than or equal to 850"),
        # no program may offer more than 84 months: refused here, not a failed match later
        ({"term_months": 96}, "term_months", "less than or equal to 84"),
        # JSON types only: consent is true, amounts are integers
        ({"consent": "yes"}, "consent", "valid boolean"),
        ({"consent": 1}, "consent", "valid boolean"),
        ({"amount_minor": "900000"}, "amount_minor", "valid integer"),
        ({"amount_minor": True}, "amount_minor", "valid integer"),
        # kiosks value cars in US dollars: amounts in another currency would not compare
        ({"currency": "EUR"}, "currency", "'USD'"),
    ],
)
def test_an_invalid_loan_request_names_its_field(
    context: GatewayContext,
    client: TestClient,
    change: dict[str, object],
    field: str,
    words: str,
) -> None:
    headers = _key(context, Role.DEALER, "Dealer A")
    loan = {k: v for k, v in {**DEMO_LOAN, **change}.items() if v is not None}
    started = client.post(
        "/v1/dealer/appraisals",
        headers=headers,
        json={"kiosk_id": "dlr-001-k1", "loan_request": loan},
    )
    attached = client.post(
        f"/v1/dealer/appraisals/{_started(client, headers)}/loan-requests",
        headers=headers,
        json=loan,
    )
    for response, where in ((started, f"body.loan_request.{field}"), (attached, f"body.{field}")):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert [(e["field"], words in e["message"]) for e in problem["errors"]] == [(where, True)]
        assert problem["detail"].startswith(where)


def _started(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post(
        "/v1/dealer/appraisals", headers=headers, json={"kiosk_id": "dlr-001-k1"}
    )
    assert response.status_code == 201, response.text
    appraisal_id: str = response.json()["appraisal_id"]
    return appraisal_id


def test_ops_stats(context: GatewayContext, client: TestClient) -> None:
    headers = _key(context, Role.OPS, "ops")
    stats = client.get("/v1/ops/stats", headers=headers).json()
    assert stats["appraisals"] == 0 and stats["kiosks_online"] == 0
    assert client.get("/v1/ops/kiosks", headers=headers).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_a_kiosk_online_but_long_unheard_is_silent(
    context: GatewayContext, client: TestClient
) -> None:
    # Its presence says online, but a kiosk that lost power while the broker was down never
    # gets its last will: after three missed heartbeats operators see it as silent.
    from datetime import UTC, datetime, timedelta

    from gateway.db.models import Kiosk

    now = datetime.now(UTC)
    with context.session() as s:
        for kiosk_id, state, ago in [
            ("dlr-001-k1", "online", timedelta(seconds=30)),
            ("dlr-001-k2", "online", timedelta(minutes=10)),
            ("dlr-001-k3", "offline", timedelta(minutes=10)),
        ]:
            s.add(Kiosk(kiosk_id=kiosk_id, state=state, state_at=now - ago, last_seen_at=now - ago))
        s.commit()
    headers = _key(context, Role.OPS, "ops")
    stats = client.get("/v1/ops/stats", headers=headers).json()
    assert (stats["kiosks"], stats["kiosks_online"], stats["kiosks_silent"]) == (3, 1, 1)
    fleet = client.get("/v1/ops/kiosks", headers=headers).json()["items"]
    assert [k["state"] for k in fleet] == ["online", "silent", "offline"]
    context.kiosk_silent_after = timedelta(minutes=15)  # KIOSKMATCH_KIOSK_SILENT_AFTER_S=900
    stats = client.get("/v1/ops/stats", headers=headers).json()
    assert (stats["kiosks_online"], stats["kiosks_silent"]) == (2, 0)


def test_only_its_dealer_starts_appraisals_on_an_assigned_kiosk(
    context: GatewayContext, client: TestClient
) -> None:
    ops = _key(context, Role.OPS, "ops")
    ours, theirs = _key(context, Role.DEALER, "Dealer A"), _key(context, Role.DEALER, "Dealer B")
    _started(client, theirs)  # unassigned: any dealer's
    given = client.put(
        "/v1/ops/kiosks/dlr-001-k1/dealer", json={"dealer_org": "Dealer A"}, headers=ops
    )
    assert given.status_code == 200, given.text
    assert given.json()["dealer_org"] == "Dealer A"
    _started(client, ours)
    refused = client.post("/v1/dealer/appraisals", headers=theirs, json={"kiosk_id": "dlr-001-k1"})
    assert refused.status_code == 404
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "Dealer A" not in refused.text  # whose kiosk it is stays unsaid
    fleet = client.get("/v1/ops/kiosks", headers=ops).json()["items"]
    assert [(k["kiosk_id"], k["dealer_org"]) for k in fleet] == [("dlr-001-k1", "Dealer A")]
    # A kiosk not yet installed can be assigned; null gives a kiosk back to every dealer.
    early = client.put(
        "/v1/ops/kiosks/dlr-002-k1/dealer", json={"dealer_org": "Dealer B"}, headers=ops
    )
    assert early.json()["state"] == "unknown"
    client.put("/v1/ops/kiosks/dlr-001-k1/dealer", json={"dealer_org": None}, headers=ops)
    _started(client, theirs)
    for path, body, headers, status in [
        ("/v1/ops/kiosks/dlr-001-k1/dealer", {"dealer_org": "Dealer A"}, ours, 403),
        ("/v1/ops/kiosks/not a kiosk/dealer", {"dealer_org": "Dealer A"}, ops, 422),
        ("/v1/ops/kiosks/dlr-001-k1/dealer", {"dealer_org": "semi;colon"}, ops, 422),
        ("/v1/ops/kiosks/dlr-001-k1/dealer", {}, ops, 422),
    ]:
        assert client.put(path, json=body, headers=headers).status_code == status, (path, body)


@pytest.mark.parametrize("org", ["", " leading space", "x" * 129, "semi;colon"])
def test_invalid_org_names_are_refused(context: GatewayContext, org: str) -> None:
    from gateway.errors import InvalidRequestError

    with context.session() as s, pytest.raises(InvalidRequestError, match="organisation"):
        create_key(s, role=Role.DEALER, org=org)


def test_revoked_keys_stop_working(context: GatewayContext, client: TestClient) -> None:
    from gateway.context import PrincipalCache
    from gateway.services.keys import revoke_key

    context.principals = PrincipalCache(ttl_s=0)  # as a running gateway after its 10 s
    with context.session() as s:
        token, _ = create_key(s, role=Role.OPS, org="ops")
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/ops/stats", headers=headers).status_code == 200
        revoke_key(s, prefix=token[:10])
    assert client.get("/v1/ops/stats", headers=headers).status_code == 401


def test_openapi_documents_every_routes_errors_as_problems(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    problem = set(schemas["Problem"]["properties"])
    assert {"type", "title", "status", "detail", "instance"} <= problem
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 shape is not what is sent
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"500"} if path == "/v1/health" else {"401", "403", "500"}
            if operation.get("parameters") or operation.get("requestBody"):
                expected.add("422")
            assert expected <= set(responses), (method, path, sorted(responses))
            for code, response in responses.items():
                if code[0] in "45" and code != "503":
                    assert list(response["content"]) == ["application/problem+json"], (path, code)
    decision = spec["paths"]["/v1/lender/matches/{match_id}/decision"]["post"]["responses"]
    assert {"404", "409"} <= set(decision)
    assert "400" in spec["paths"]["/v1/lender/matches"]["get"]["responses"]  # a bad cursor
    upload = spec["paths"]["/v1/lender/programs"]["post"]["responses"]
    assert upload["422"]["content"]["application/problem+json"]["schema"]["$ref"].endswith(
        "ProgramProblem"
    )


@pytest.mark.parametrize(
    "query", ["since=0001-01-01T00:00:00%2B01:00", "until=9999-12-31T23:59:59-01:00"]
)
def test_times_out_of_range_in_utc_are_refused(
    context: GatewayContext, client: TestClient, query: str
) -> None:
    headers = _key(context, Role.LENDER, "First Harbor Bank")
    response = client.get(f"/v1/lender/matches?{query}", headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "out of range" in response.json()["detail"]


def test_a_method_not_allowed_says_which_are(context: GatewayContext, client: TestClient) -> None:
    headers = _key(context, Role.LENDER, "First Harbor Bank")
    response = client.delete("/v1/lender/matches", headers=headers)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == "GET"
