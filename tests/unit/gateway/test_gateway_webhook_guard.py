"""Webhooks cannot be pointed at the gateway's own network: refused when subscribed (422), and
checked again against fresh DNS before every delivery, which then goes to a checked address."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from gateway.api.app import create_app
from gateway.context import GatewayContext
from gateway.db import make_engine, migrate
from gateway.db.models import WebhookDelivery
from gateway.runtime import GatewayRuntime
from gateway.services import webhooks
from gateway.services.keys import Role, create_key
from gateway.services.sealing import Sealer
from gateway.services.webhook_policy import DEFAULT_POLICY, WebhookPolicy
from gateway.settings import GatewaySettings
from tests.support.factories import stored_match

LENDER = "First Harbor Bank"
PUBLIC_IP = "93.184.215.14"
LOCAL = WebhookPolicy(allow_http=True, allow_private_networks=True)


class Dns:
    """A resolver whose answer the test changes, as a lender can change its DNS records."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if not self.addresses:
            raise OSError(f"[Errno -2] Name or service not known: {host!r}")
        return list(self.addresses)


class Receiver:
    """An httpx transport that records what would have been sent."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []
        self.client = httpx.Client(transport=httpx.MockTransport(self._handle))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status)


@pytest.fixture
def dns() -> Dns:
    return Dns(PUBLIC_IP)


def make_context(tmp_path: Path, dns: Dns, policy: WebhookPolicy) -> GatewayContext:
    engine = make_engine(f"sqlite:///{tmp_path / f'hooks-{id(policy)}.db'}")
    migrate(engine)
    return GatewayContext(
        engine=engine,
        sealer=Sealer(base64.urlsafe_b64encode(b"s" * 32)),
        webhook_policy=policy,
        webhook_resolver=dns,
    )


@pytest.fixture
def context(tmp_path: Path, dns: Dns) -> Iterator[GatewayContext]:
    context = make_context(tmp_path, dns, DEFAULT_POLICY)
    yield context
    context.engine.dispose()


@pytest.fixture
def local_context(tmp_path: Path, dns: Dns) -> Iterator[GatewayContext]:
    """A gateway whose operator allows plain http and private networks (tests, the demo)."""
    context = make_context(tmp_path, dns, LOCAL)
    yield context
    context.engine.dispose()


def lender_key(context: GatewayContext) -> dict[str, str]:
    with context.session() as s:
        return {"Authorization": f"Bearer {create_key(s, role=Role.LENDER, org=LENDER)[0]}"}


def subscribe(context: GatewayContext, url: str) -> Any:
    """The TestClient's response to subscribing ``url`` as the lender."""
    return TestClient(create_app(context)).post(
        "/v1/lender/webhooks", json={"url": url}, headers=lender_key(context)
    )


def queue_match(context: GatewayContext) -> None:
    with context.session() as s:
        row = stored_match(LENDER, apr_percent=7.5, result={"reasons": []})
        s.add(row)
        webhooks.enqueue(s, [row])
        s.commit()


def deliver(context: GatewayContext, receiver: Receiver, now: datetime | None = None) -> int:
    with context.session() as s:
        return webhooks.deliver_due(
            s,
            context.sealer,
            receiver.client,
            now=now,
            policy=context.webhook_policy,
            resolver=context.webhook_resolver,
        )


def the_delivery(context: GatewayContext) -> WebhookDelivery:
    with context.session() as s:
        return s.exec(select(WebhookDelivery)).one()


REFUSED_BY_DEFAULT = [
    ("http://127.0.0.1:8000/internal", "use an https:// URL"),
    ("http://localhost:1/", "use an https:// URL"),
    ("http://169.254.169.254/latest/meta-data/", "use an https:// URL"),
    ("http://lender.example/hook", "KIOSKMATCH_WEBHOOK_ALLOW_HTTP=true"),
    ("https://127.0.0.1:8000/internal", "127.0.0.1 is a loopback address"),
    ("https://[::1]/", "::1 is a loopback address"),
    ("https://[::ffff:127.0.0.1]/", "is a loopback address"),
    ("https://10.0.0.8/", "is a private-network address"),
    ("https://192.168.1.1/", "KIOSKMATCH_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true"),
    ("https://100.64.0.1/", "is a private-network address"),
    ("https://169.254.169.254/latest/meta-data/", "is a link-local address"),
    ("https://[fe80::1]/", "is a link-local address"),
    ("https://0.0.0.0/", "is the unspecified address"),
    ("https://user:secret@lender.example/hook", "remove the user name and password"),
    ("ftp://lender.example/hook", "use an absolute https:// URL"),
]


@pytest.mark.parametrize(("url", "says"), REFUSED_BY_DEFAULT)
def test_subscribing_to_a_refused_url_is_a_422_naming_the_field(
    context: GatewayContext, url: str, says: str
) -> None:
    client = TestClient(create_app(context))
    headers = lender_key(context)
    response = client.post("/v1/lender/webhooks", json={"url": url}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    [error] = problem["errors"]
    assert error["field"] == "body.url"
    assert says in error["message"]
    assert problem["detail"] == f"body.url: {error['message']}"
    assert "secret" not in response.text  # the password is not echoed
    assert client.get("/v1/lender/webhooks", headers=headers).json()["items"] == []


@pytest.mark.parametrize(
    ("addresses", "says"),
    [
        (["127.0.0.1"], "the host name resolves to a loopback address"),
        (["10.20.30.40"], "the host name resolves to a private-network address"),
        ([PUBLIC_IP, "172.16.5.4"], "the host name resolves to a private-network address"),
        (["fd00::1234"], "the host name resolves to a private-network address"),
        (["::ffff:169.254.169.254"], "the host name resolves to a link-local address"),
    ],
)
def test_a_host_name_that_resolves_to_a_refused_address_is_a_422(
    context: GatewayContext, dns: Dns, addresses: list[str], says: str
) -> None:
    dns.addresses = addresses
    response = subscribe(context, "https://lender.example/kioskmatch")
    assert response.status_code == 422, response.text
    assert says in response.json()["errors"][0]["message"]
    for address in addresses:  # the lender learns the kind of address, not which
        assert address not in response.text
    assert dns.asked == [("lender.example", 443)]


def test_a_host_name_that_does_not_resolve_is_a_422(context: GatewayContext, dns: Dns) -> None:
    dns.addresses = []
    response = subscribe(context, "https://not-yet.lender.example/")
    assert response.status_code == 422
    assert "does not resolve" in response.json()["errors"][0]["message"]


def test_a_public_https_url_is_accepted(context: GatewayContext) -> None:
    response = subscribe(context, "https://lender.example/kioskmatch/matches")
    assert response.status_code == 201, response.text
    assert response.json()["url"] == "https://lender.example/kioskmatch/matches"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/hook", "http://localhost:1/", "https://10.0.0.8/", "http://[::1]/"],
)
def test_the_operators_settings_allow_local_receivers(
    local_context: GatewayContext, dns: Dns, url: str
) -> None:
    dns.addresses = ["127.0.0.1"]
    assert subscribe(local_context, url).status_code == 201


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:8000/", "http://[ff02::1]/"]
)
def test_no_setting_opens_link_local_multicast_or_unspecified_addresses(
    local_context: GatewayContext, url: str
) -> None:
    assert subscribe(local_context, url).status_code == 422


def test_a_delivery_goes_to_the_checked_address_under_the_host_name(
    context: GatewayContext,
) -> None:
    assert subscribe(context, "https://lender.example:8443/hook?lender=7").status_code == 201
    queue_match(context)
    receiver = Receiver()
    assert deliver(context, receiver) == 1
    [request] = receiver.requests
    assert str(request.url) == f"https://{PUBLIC_IP}:8443/hook?lender=7"
    assert request.headers["host"] == "lender.example:8443"
    assert request.extensions["sni_hostname"] == "lender.example"  # TLS checks this name
    assert request.headers["connection"] == "close"  # no pooled connection for another name
    assert the_delivery(context).state == "delivered"


@pytest.mark.parametrize(
    "rebound", [["127.0.0.1"], ["169.254.169.254"], [PUBLIC_IP, "10.0.0.1"], ["::ffff:7f00:1"]]
)
def test_dns_that_changes_after_subscribing_is_caught_at_delivery(
    context: GatewayContext,
    dns: Dns,
    rebound: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = lender_key(context)
    client = TestClient(create_app(context))
    created = client.post(
        "/v1/lender/webhooks", json={"url": "https://lender.example/hook"}, headers=headers
    )
    assert created.status_code == 201
    queue_match(context)
    dns.addresses = rebound
    receiver = Receiver()
    now = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger="gateway.services.webhooks"):
        assert deliver(context, receiver, now) == 1
    assert receiver.requests == []  # nothing was sent
    delivery = the_delivery(context)
    assert (delivery.state, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == webhooks.POLICY_REFUSAL
    assert delivery.last_status is None
    assert "refused by the webhook policy: the host name resolves to" in caplog.text
    # Not retried: the next rounds find nothing due.
    assert deliver(context, receiver, now + timedelta(hours=2)) == 0
    # The lender sees the refusal and nothing more (not the address, not its kind).
    listed = client.get("/v1/lender/webhooks/deliveries", headers=headers)
    [shown] = listed.json()["items"]
    assert shown["last_error"] == "refused by the gateway's webhook policy"
    for leak in [*rebound, "loopback", "private", "link-local"]:
        assert leak not in listed.text
    # A retry by hand is checked again; once DNS is public again it goes through.
    client.post(f"/v1/lender/webhooks/deliveries/{shown['id']}/retry", headers=headers)
    deliver(context, receiver)
    assert receiver.requests == [] and the_delivery(context).state == "failed"
    dns.addresses = [PUBLIC_IP]
    client.post(f"/v1/lender/webhooks/deliveries/{shown['id']}/retry", headers=headers)
    deliver(context, receiver)
    assert len(receiver.requests) == 1 and the_delivery(context).state == "delivered"


def test_a_url_allowed_once_is_refused_after_the_operator_tightens_the_policy(
    tmp_path: Path, local_context: GatewayContext
) -> None:
    assert subscribe(local_context, "http://127.0.0.1:9/hook").status_code == 201
    queue_match(local_context)
    receiver = Receiver()
    with local_context.session() as s:  # the same database under the default settings
        webhooks.deliver_due(s, local_context.sealer, receiver.client, policy=DEFAULT_POLICY)
    assert receiver.requests == []
    assert the_delivery(local_context).last_error == webhooks.POLICY_REFUSAL


def test_a_host_that_stops_resolving_is_retried_like_a_receiver_that_is_down(
    context: GatewayContext, dns: Dns
) -> None:
    assert subscribe(context, "https://lender.example/hook").status_code == 201
    queue_match(context)
    dns.addresses = []
    receiver = Receiver()
    now = datetime.now(UTC)
    deliver(context, receiver, now)
    delivery = the_delivery(context)
    assert receiver.requests == []
    assert (delivery.state, delivery.last_error) == ("pending", "the host name did not resolve")
    dns.addresses = [PUBLIC_IP]
    assert deliver(context, receiver, now + webhooks.backoff(1) + timedelta(seconds=1)) == 1
    assert the_delivery(context).state == "delivered"


def test_a_redirect_is_not_followed(context: GatewayContext) -> None:
    assert subscribe(context, "https://lender.example/hook").status_code == 201
    queue_match(context)
    sent: list[httpx.Request] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(307, headers={"Location": "http://127.0.0.1:8000/internal"})

    with (
        context.session() as s,
        httpx.Client(transport=httpx.MockTransport(redirect), follow_redirects=True) as http,
    ):
        webhooks.deliver_due(s, context.sealer, http, resolver=context.webhook_resolver)
    assert [r.url.host for r in sent] == [PUBLIC_IP]
    delivery = the_delivery(context)
    assert (delivery.state, delivery.last_status, delivery.last_error) == (
        "pending",
        307,
        "HTTP 307",
    )


def test_the_next_checked_address_is_tried_when_one_does_not_connect(
    context: GatewayContext, dns: Dns
) -> None:
    dns.addresses = ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", PUBLIC_IP]
    assert subscribe(context, "https://lender.example/hook").status_code == 201
    queue_match(context)
    tried: list[str] = []

    def first_is_down(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        if len(tried) == 1:
            raise httpx.ConnectError("[Errno 101] Network is unreachable", request=request)
        return httpx.Response(200)

    with context.session() as s, httpx.Client(transport=httpx.MockTransport(first_is_down)) as h:
        webhooks.deliver_due(s, context.sealer, h, resolver=context.webhook_resolver)
    assert tried == ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", PUBLIC_IP]
    assert the_delivery(context).state == "delivered"


def test_through_a_proxy_the_url_is_sent_as_written_after_the_same_check(
    context: GatewayContext, dns: Dns
) -> None:
    assert subscribe(context, "https://lender.example/hook").status_code == 201
    queue_match(context)
    receiver = Receiver()
    with context.session() as s:
        webhooks.deliver_due(s, context.sealer, receiver.client, resolver=dns, pin_addresses=False)
    assert [str(r.url) for r in receiver.requests] == ["https://lender.example/hook"]
    queue_match(context)
    dns.addresses = ["10.0.0.1"]
    with context.session() as s:
        webhooks.deliver_due(s, context.sealer, receiver.client, resolver=dns, pin_addresses=False)
    assert len(receiver.requests) == 1  # refused before the proxy is asked


def test_the_gateway_delivers_to_a_local_receiver_when_its_settings_allow_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings reach the API and the delivery thread, which ignores proxy variables."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing answers
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    got = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()
            got.set()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = GatewaySettings(
        data_dir=tmp_path / "gw",
        http_port=0,
        webhook_allow_http=True,
        webhook_allow_private_networks=True,
        _env_file=None,
    )
    try:
        with GatewayRuntime(settings) as gateway:
            assert gateway.context is not None
            assert gateway.context.webhook_policy == LOCAL
            headers = lender_key(gateway.context)
            with httpx.Client(base_url=gateway.http_url, trust_env=False) as http:
                url = f"http://127.0.0.1:{server.server_port}/hook"
                created = http.post("/v1/lender/webhooks", json={"url": url}, headers=headers)
                assert created.status_code == 201, created.text
            queue_match(gateway.context)
            assert got.wait(15), "the webhook never arrived"
    finally:
        server.shutdown()
        server.server_close()


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` (and its key), which is also its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize(("served_as", "delivered"), [("lender.example", True), ("other", False)])
def test_tls_to_a_checked_address_verifies_the_host_name(
    tmp_path: Path, local_context: GatewayContext, served_as: str, delivered: bool
) -> None:
    """The connection goes to the address, but the certificate must be the host name's."""
    import ssl

    cert, key = _self_signed(tmp_path, served_as)
    seen: list[tuple[str | None, str]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.headers["Host"], self.path))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = HTTPServer(("127.0.0.1", 0), Hook)
    server.socket = server_tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    url = f"https://lender.example:{port}/hook"
    try:
        assert subscribe(local_context, url).status_code == 201  # DNS says 127.0.0.1
        queue_match(local_context)
        trust = ssl.create_default_context(cafile=str(cert))
        with local_context.session() as s, httpx.Client(verify=trust, trust_env=False) as http:
            webhooks.deliver_due(
                s,
                local_context.sealer,
                http,
                policy=local_context.webhook_policy,
                resolver=Dns("127.0.0.1"),
            )
    finally:
        server.shutdown()
        server.server_close()
    delivery = the_delivery(local_context)
    if delivered:
        assert delivery.state == "delivered", delivery.last_error
        assert seen == [(f"lender.example:{port}", "/hook")]
    else:
        assert delivery.state == "pending" and seen == []
        assert "CERTIFICATE_VERIFY_FAILED" in (delivery.last_error or "")
