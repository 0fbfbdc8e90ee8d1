from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from gateway.api.app import create_app
from gateway.context import GatewayContext
from gateway.db import MatchRow, make_engine, migrate
from gateway.db.models import Kiosk, LenderProgramRow, WebhookDelivery
from gateway.matching import parse_program, sample_programs_dir
from gateway.services import webhooks
from gateway.services.keys import Role, create_key
from gateway.services.programs import active_programs
from gateway.services.sealing import Sealer
from gateway.services.webhook_policy import WebhookPolicy
from tests.support.factories import stored_match

PROGRAM = (sample_programs_dir() / "first-harbor-bank-used-auto.yaml").read_text()


LOCAL_RECEIVERS = WebhookPolicy(allow_http=True, allow_private_networks=True)


def public_dns(host: str, port: int) -> list[str]:
    """Every host name is on the internet (tests resolve nothing for real)."""
    return ["93.184.215.14"]


@pytest.fixture
def context(tmp_path: Path) -> Iterator[GatewayContext]:
    engine = make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    migrate(engine)
    yield GatewayContext(
        engine=engine,
        sealer=Sealer(base64.urlsafe_b64encode(b"s" * 32)),
        webhook_resolver=public_dns,
    )
    engine.dispose()


@pytest.fixture
def client(context: GatewayContext) -> TestClient:
    return TestClient(create_app(context))


def _key(context: GatewayContext, org: str = "First Harbor Bank") -> dict[str, str]:
    with context.session() as s:
        return {"Authorization": f"Bearer {create_key(s, role=Role.LENDER, org=org)[0]}"}


def test_upload_validate_and_list_programs(context: GatewayContext, client: TestClient) -> None:
    headers = {**_key(context), "Content-Type": "application/yaml"}
    dry = client.post(
        "/v1/lender/programs", params={"dry_run": True}, content=PROGRAM, headers=headers
    )
    assert dry.status_code == 200 and dry.json()["valid"] is True
    assert client.get("/v1/lender/programs", headers=headers).json()["items"] == []
    stored = client.post("/v1/lender/programs", content=PROGRAM, headers=headers)
    assert stored.status_code == 201, stored.text
    assert stored.json()["program_id"] == "first-harbor-bank-used-auto"
    again = client.post("/v1/lender/programs", content=PROGRAM, headers=headers)
    assert again.status_code == 200  # this very version is stored already: nothing changes
    assert again.json() == stored.json()
    newer = client.post(
        "/v1/lender/programs", content=PROGRAM.replace("version: 4", "version: 5"), headers=headers
    )
    assert newer.status_code == 201
    listed = client.get("/v1/lender/programs", headers=headers).json()["items"]
    assert [p["version"] for p in listed] == ["5"]  # it covers every day of version 4
    everything = client.get(
        "/v1/lender/programs", headers=headers, params={"include_inactive": True}
    )
    assert len(everything.json()["items"]) == 2
    other = _key(context, "Another Lender")
    assert client.get("/v1/lender/programs", headers=other).json()["items"] == []


def test_invalid_program_names_line_and_field(context: GatewayContext, client: TestClient) -> None:
    broken = PROGRAM.replace("cap_apr: 17.99", "cap_apr: lots")
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "cap_apr" in text)
    response = client.post(
        "/v1/lender/programs",
        content=broken,
        headers={**_key(context), "Content-Type": "application/yaml"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    issues = response.json()["issues"]
    assert any(i["line"] == line and "cap_apr" in i["field"] for i in issues), issues


def test_uploads_are_read_by_their_content_type_and_refused_as_problems(
    context: GatewayContext, client: TestClient
) -> None:
    key = _key(context)
    as_json = {**key, "Content-Type": "application/json"}
    document = json.dumps(parse_program(PROGRAM).model_dump(mode="json"), indent="\t")
    stored = client.post("/v1/lender/programs", content=document, headers=as_json)
    assert stored.status_code == 201, stored.text  # tabs are JSON whitespace

    def refused(body: bytes | str, headers: dict[str, str], status: int = 422) -> dict[str, Any]:
        response = client.post("/v1/lender/programs", content=body, headers=headers)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem: dict[str, Any] = response.json()
        assert problem["status"] == status and problem["instance"] == "/v1/lender/programs"
        assert problem["title"] and problem["detail"]
        return problem

    trailing = document[: document.rindex("}")].rstrip() + ",\n}"
    assert "not valid JSON" in refused(trailing, as_json)["issues"][0]["message"]
    as_yaml = {**key, "Content-Type": "application/yaml"}
    tagged = PROGRAM.replace("lender: First Harbor Bank", "lender: !!python/name:os.getcwd ''")
    assert refused(tagged, as_yaml)["issues"][0]["field"] == "lender"
    assert "UTF-8" in refused(PROGRAM.encode() + b"\xff\xfe", as_yaml)["detail"]
    assert "1000000 bytes" in refused(b"#" * 1_000_001, as_yaml, 413)["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        ("program_id: &x [*x]\n", "application/yaml", "contains it"),
        (PROGRAM.replace("lender: First", "lender: \x01First"), "application/yaml", "U+0001"),
        (PROGRAM.replace("version: 4", "version: !!int four"), "application/yaml", "version"),
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "application/json", "nested"),
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "text/plain", "nested"),
        (
            "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}]\n" for n in range(1, 30)),
            "application/yaml",
            "100,000 values",
        ),
    ],
)
def test_hostile_uploads_are_refused_as_problems(
    context: GatewayContext, client: TestClient, body: str, content_type: str, words: str
) -> None:
    response = client.post(
        "/v1/lender/programs", content=body, headers={**_key(context), "Content-Type": content_type}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.text


def test_a_program_id_belongs_to_the_lender_that_stored_it_first(
    context: GatewayContext, client: TestClient
) -> None:
    owner = {**_key(context), "Content-Type": "application/yaml"}
    other = {**_key(context, "Another Lender"), "Content-Type": "application/yaml"}
    assert client.post("/v1/lender/programs", content=PROGRAM, headers=owner).status_code == 201
    # Matches are attributed by program id: a second lender under the same id would either
    # take the owner's matches or stop matching for everyone.
    theirs = PROGRAM.replace("lender: First Harbor Bank", "lender: Another Lender")
    clash = client.post("/v1/lender/programs", content=theirs, headers=other)
    assert clash.status_code == 409, clash.text
    assert clash.headers["content-type"] == "application/problem+json"
    assert "first-harbor-bank-used-auto" in clash.json()["detail"]
    assert client.get("/v1/lender/programs", headers=other).json()["items"] == []
    with context.session() as s:
        assert [p.program_id for p in active_programs(s, on=date(2026, 6, 1)).programs] == [
            "first-harbor-bank-used-auto"
        ]


def test_a_lender_cannot_upload_a_program_in_another_lenders_name(
    context: GatewayContext, client: TestClient
) -> None:
    # Dealers read the program's lender: a look-alike would borrow First Harbor Bank's name.
    lookalike = PROGRAM.replace(
        "program_id: first-harbor-bank-used-auto", "program_id: lookalike-used-auto"
    )
    headers = {**_key(context, "Another Lender"), "Content-Type": "application/yaml"}
    response = client.post("/v1/lender/programs", content=lookalike, headers=headers)
    assert response.status_code == 422, response.text
    [issue] = response.json()["issues"]
    line = next(i for i, text in enumerate(lookalike.splitlines(), 1) if text.startswith("lender:"))
    assert (issue["field"], issue["line"]) == ("lender", line)
    assert "Another Lender" in issue["fix"]
    with context.session() as s:
        assert s.exec(select(LenderProgramRow)).all() == []


def test_programs_of_two_lenders_under_one_id_stored_earlier_do_not_stop_matching(
    context: GatewayContext,
) -> None:
    program = parse_program(PROGRAM)
    with context.session() as s:
        for org in ("First Harbor Bank", "Another Lender"):
            s.add(
                LenderProgramRow(
                    lender_org=org,
                    program_id=program.program_id,
                    version=str(program.version),
                    document=program.model_dump(mode="json"),
                    uploaded_at=datetime.now(UTC),
                )
            )
        s.commit()
        active = active_programs(s, on=date(2026, 6, 1))
    assert active.org_of == {program.program_id: "First Harbor Bank"}


def _match(context: GatewayContext, lender: str) -> MatchRow:
    with context.session() as s:
        row: MatchRow = stored_match(lender, apr_percent=7.5, result={"reasons": []})
        s.add(row)
        webhooks.enqueue(s, [row])
        s.commit()
        return row


def test_versions_only_go_up_and_the_highest_in_force_applies(
    context: GatewayContext, client: TestClient
) -> None:
    headers = {**_key(context), "Content-Type": "application/yaml"}

    def upload(version: int, effective_from: str = "2026-01-01", **swap: str) -> Any:
        text = PROGRAM.replace("version: 4", f"version: {version}").replace(
            "effective_from: 2026-01-01", f"effective_from: {effective_from}"
        )
        for old, new in swap.items():
            text = text.replace(old, new)
        return client.post("/v1/lender/programs", content=text, headers=headers)

    assert upload(4).status_code == 201
    changed = upload(4, **{"max_ltv_pct: 130": "max_ltv_pct: 135"})
    assert changed.status_code == 409
    assert "higher version" in changed.json()["detail"]
    # Next year's sheet, published ahead: this year's version still applies until then.
    assert upload(6, effective_from="2027-01-01").status_code == 201
    lower = upload(5)
    assert lower.status_code == 409 and "older than the stored version 6" in lower.json()["detail"]
    listed = client.get("/v1/lender/programs", headers=headers).json()["items"]
    assert sorted(p["version"] for p in listed) == ["4", "6"]
    with context.session() as s:
        for day, version in ((date(2026, 12, 31), 4), (date(2027, 1, 1), 6)):
            in_force = active_programs(s, on=day)
            assert [p.version for p in in_force.programs] == [version]
            assert in_force.org_of == {"first-harbor-bank-used-auto": "First Harbor Bank"}


def test_every_list_is_a_page_followed_by_its_cursor(
    context: GatewayContext, client: TestClient
) -> None:
    lender = _key(context)
    with context.session() as s:
        ops_key = {"Authorization": f"Bearer {create_key(s, role=Role.OPS, org='ops')[0]}"}
        for n in range(5):
            s.add(Kiosk(kiosk_id=f"dlr-001-k{n}"))
            webhooks.subscribe(
                s,
                context.sealer,
                lender_org="First Harbor Bank",
                url=f"https://l.test/{n}",
                resolver=public_dns,
            )
        s.commit()
    for n in range(5):
        text = PROGRAM.replace("first-harbor-bank-used-auto", f"first-harbor-{n}")
        assert client.post(
            "/v1/lender/programs",
            content=text,
            headers={**lender, "Content-Type": "application/yaml"},
        ).is_success
    for _ in range(2):
        _match(context, "First Harbor Bank")  # each queues a delivery to the 5 subscriptions

    def walk(path: str, headers: dict[str, str], key: str) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get(path, params=params, headers=headers)
            assert page.status_code == 200, page.text
            body = page.json()
            assert set(body) == {"items", "next_cursor"} and len(body["items"]) <= 2
            seen += [item[key] for item in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return seen

    kiosks = walk("/v1/ops/kiosks", ops_key, "kiosk_id")
    assert kiosks == [f"dlr-001-k{n}" for n in range(5)]
    programs = walk("/v1/lender/programs", lender, "program_id")
    assert programs == [f"first-harbor-{n}" for n in range(5)]
    hooks = walk("/v1/lender/webhooks", lender, "url")
    assert sorted(hooks) == [f"https://l.test/{n}" for n in range(5)]
    deliveries = walk("/v1/lender/webhooks/deliveries", lender, "id")
    assert len(deliveries) == len(set(deliveries)) == 10
    bad = client.get("/v1/ops/kiosks", params={"cursor": "nonsense"}, headers=ops_key)
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_signature_round_trip_and_tampering() -> None:
    body = b'{"a": 1}'
    header = webhooks.sign("whsec_x", body, timestamp=1_700_000_000)
    assert webhooks.verify_signature("whsec_x", body, header, now=1_700_000_010)
    assert not webhooks.verify_signature("whsec_x", body + b" ", header, now=1_700_000_010)
    assert not webhooks.verify_signature("whsec_y", body, header, now=1_700_000_010)
    assert not webhooks.verify_signature("whsec_x", body, header, now=1_700_001_000)  # too old
    assert not webhooks.verify_signature("whsec_x", body, "garbage", now=1_700_000_010)


def test_deliveries_retry_with_backoff_then_are_kept(
    context: GatewayContext, client: TestClient
) -> None:
    headers = _key(context)
    created = client.post(
        "/v1/lender/webhooks", json={"url": "https://lender.test/hook"}, headers=headers
    )
    assert created.status_code == 201
    secret = created.json()["secret"]
    seen: list[httpx.Request] = []
    status = {"code": 503}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status["code"])

    match = _match(context, "First Harbor Bank")
    _match(context, "Someone Else")  # no subscription: nothing queued for it
    http = httpx.Client(transport=httpx.MockTransport(handler))
    now = datetime.now(UTC)
    with context.session() as s:
        deliver = functools.partial(
            webhooks.deliver_due, s, context.sealer, http, resolver=public_dns
        )
        assert deliver(now=now) == 1
        assert deliver(now=now + timedelta(seconds=5)) == 0
        for attempt in range(2, webhooks.MAX_ATTEMPTS + 1):
            now += webhooks.backoff(attempt - 1) + timedelta(seconds=1)
            assert deliver(now=now) == 1
        delivery = s.exec(select(WebhookDelivery)).one()
        assert delivery.state == "failed" and delivery.attempts == webhooks.MAX_ATTEMPTS
    request = seen[0]
    assert webhooks.verify_signature(
        secret, request.content, request.headers[webhooks.SIGNATURE_HEADER]
    )
    sent = json.loads(request.content)
    assert sent["type"] == "match.created" and sent["match"]["id"] == match.id
    # The match exactly as the lender's pull shows it, seq (its cursor) and decision included.
    pulled = client.get("/v1/lender/matches", headers=headers).json()["items"]
    assert [sent["match"]] == pulled and pulled[0]["seq"] == match.seq
    failed = client.get(
        "/v1/lender/webhooks/deliveries", params={"state": "failed"}, headers=headers
    ).json()["items"]
    assert [d["match_id"] for d in failed] == [match.id]
    retried = client.post(
        f"/v1/lender/webhooks/deliveries/{failed[0]['id']}/retry", headers=headers
    )
    assert retried.json()["state"] == "pending"
    status["code"] = 204
    with context.session() as s:
        webhooks.deliver_due(s, context.sealer, http, resolver=public_dns)
        assert s.exec(select(WebhookDelivery)).one().state == "delivered"


def test_two_gateways_never_send_one_delivery_twice(context: GatewayContext) -> None:
    with context.session() as s:
        webhooks.subscribe(
            s, context.sealer, lender_org="L", url="https://lender.test/hook", resolver=public_dns
        )
    ids = {_match(context, "L").id for _ in range(4)}
    sent: list[str] = []
    both_in = threading.Barrier(2)

    def slow_receiver(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["match"]["id"])
        time.sleep(0.2)  # long enough for the other gateway to look at the same rows
        return httpx.Response(204)

    def gateway() -> None:
        with (
            context.session() as s,
            httpx.Client(transport=httpx.MockTransport(slow_receiver)) as http,
        ):
            both_in.wait(5)
            webhooks.deliver_due(s, context.sealer, http, resolver=public_dns)

    threads = [threading.Thread(target=gateway) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(sent) == sorted(ids)  # each match once, none twice
    with context.session() as s:
        rows = s.exec(select(WebhookDelivery)).all()
        assert {(r.state, r.attempts) for r in rows} == {("delivered", 1)}


def test_delivery_to_a_real_http_receiver(context: GatewayContext) -> None:
    received: list[tuple[bytes, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers[webhooks.SIGNATURE_HEADER]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with context.session() as s:
            # A local receiver over plain http: what the operator's settings must allow.
            _sub, secret = webhooks.subscribe(
                s,
                context.sealer,
                lender_org="L",
                url=f"http://127.0.0.1:{server.server_port}/hook",
                policy=LOCAL_RECEIVERS,
            )
        _match(context, "L")
        with context.session() as s, httpx.Client(trust_env=False) as http:
            webhooks.deliver_due(s, context.sealer, http, policy=LOCAL_RECEIVERS)
    finally:
        server.shutdown()
        server.server_close()
    assert len(received) == 1
    body, header = received[0]
    assert webhooks.verify_signature(secret, body, header)
