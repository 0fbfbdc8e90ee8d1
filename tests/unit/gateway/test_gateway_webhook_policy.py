"""The webhook URL policy, from tables: pure functions, no IO but the system resolver on numbers."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.services.webhook_policy import (
    DEFAULT_POLICY,
    AddressKind,
    Resolver,
    WebhookPolicy,
    WebhookRefusedError,
    WebhookUnresolvedError,
    WebhookUrlError,
    check_addresses,
    classify,
    is_allowed,
    parse_target,
    resolve_host,
    vet,
)
from gateway.settings import GatewaySettings

LOCAL = WebhookPolicy(allow_http=True, allow_private_networks=True)
K = AddressKind

ADDRESSES = [
    # IPv4
    ("8.8.8.8", K.PUBLIC),
    ("93.184.215.14", K.PUBLIC),
    ("0.0.0.0", K.UNSPECIFIED),
    ("0.1.2.3", K.RESERVED),  # "this network"
    ("127.0.0.1", K.LOOPBACK),
    ("127.255.255.254", K.LOOPBACK),
    ("10.0.0.1", K.PRIVATE),
    ("172.16.0.1", K.PRIVATE),
    ("172.31.255.255", K.PRIVATE),
    ("172.32.0.1", K.PUBLIC),
    ("192.168.1.1", K.PRIVATE),
    ("100.64.0.1", K.PRIVATE),  # shared address space (CGNAT)
    ("100.127.255.255", K.PRIVATE),
    ("100.128.0.1", K.PUBLIC),
    ("169.254.169.254", K.LINK_LOCAL),  # cloud metadata
    ("169.254.0.1", K.LINK_LOCAL),
    ("224.0.0.1", K.MULTICAST),
    ("239.255.255.250", K.MULTICAST),
    ("240.0.0.1", K.RESERVED),
    ("255.255.255.255", K.RESERVED),
    ("192.0.0.8", K.RESERVED),  # IETF protocol assignments
    ("192.0.2.1", K.RESERVED),  # documentation
    ("198.18.0.1", K.RESERVED),  # benchmarking
    ("203.0.113.9", K.RESERVED),
    # IPv6
    ("2606:4700:4700::1111", K.PUBLIC),
    ("2a00:1450:4001:80b::200e", K.PUBLIC),
    ("::", K.UNSPECIFIED),
    ("::1", K.LOOPBACK),
    ("fe80::1", K.LINK_LOCAL),
    ("fe80::1%eth0", K.LINK_LOCAL),
    ("febf:ffff::1", K.LINK_LOCAL),
    ("fc00::1", K.PRIVATE),
    ("fd12:3456:789a::1", K.PRIVATE),
    ("fec0::1", K.PRIVATE),  # site-local, deprecated
    ("ff02::1", K.MULTICAST),
    ("ff0e::1", K.MULTICAST),
    ("2001:db8::1", K.RESERVED),  # documentation
    ("2001::1", K.RESERVED),  # Teredo
    ("100::1", K.RESERVED),  # discard-only
    ("::7f00:1", K.RESERVED),  # IPv4-compatible, deprecated
    ("64:ff9b:1::a00:1", K.RESERVED),  # local-use NAT64
    # IPv6 that carries an IPv4 address: judged by that address
    ("::ffff:127.0.0.1", K.LOOPBACK),
    ("::ffff:10.1.2.3", K.PRIVATE),
    ("::ffff:169.254.169.254", K.LINK_LOCAL),
    ("::ffff:0.0.0.0", K.UNSPECIFIED),
    ("::ffff:100.64.0.1", K.PRIVATE),
    ("::ffff:8.8.8.8", K.PUBLIC),
    ("2002:7f00:1::1", K.LOOPBACK),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::", K.LINK_LOCAL),  # 6to4 of 169.254.169.254
    ("2002:808:808::1", K.PUBLIC),
    ("64:ff9b::7f00:1", K.LOOPBACK),  # NAT64 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", K.LINK_LOCAL),
    ("64:ff9b::808:808", K.PUBLIC),
]


@pytest.mark.parametrize(("text", "kind"), ADDRESSES)
def test_addresses_are_classified(text: str, kind: AddressKind) -> None:
    assert classify(ipaddress.ip_address(text)) is kind


@pytest.mark.parametrize(("text", "kind"), ADDRESSES)
def test_only_public_addresses_by_default_and_only_private_networks_when_allowed(
    text: str, kind: AddressKind
) -> None:
    assert is_allowed(kind, DEFAULT_POLICY) is (kind is K.PUBLIC)
    # Allowing private networks never opens link-local (metadata), multicast and the rest.
    assert is_allowed(kind, LOCAL) is (kind in (K.PUBLIC, K.LOOPBACK, K.PRIVATE))


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_in_any_ipv6_form_is_judged_the_same(
    address: ipaddress.IPv4Address,
) -> None:
    kind = classify(address)
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80))
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(address))
    assert classify(mapped) is classify(sixtofour) is classify(nat64) is kind


@given(st.ip_addresses())
def test_a_refused_address_is_refused_with_its_kind_and_never_echoed_for_a_host(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    kind = classify(address)
    if is_allowed(kind, DEFAULT_POLICY):
        check_addresses([address], DEFAULT_POLICY)
        return
    with pytest.raises(WebhookRefusedError) as refused:
        check_addresses([address], DEFAULT_POLICY)
    assert kind.value in refused.value.detail
    assert str(address) not in refused.value.detail


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://lender.example/hook", "KIOSKMATCH_WEBHOOK_ALLOW_HTTP=true"),
        ("HTTP://lender.example/hook", "use an https:// URL"),
        ("ftp://lender.example/hook", "use an absolute https:// URL"),
        ("file:///etc/passwd", "use an absolute https:// URL"),
        ("gopher://127.0.0.1:6379/_INFO", "use an absolute https:// URL"),
        ("lender.example/hook", "use an absolute https:// URL"),
        ("https:///hook", "use an absolute https:// URL"),
        ("https://user:pass@lender.example/hook", "remove the user name and password"),
        ("https://user@lender.example/hook", "remove the user name and password"),
        ("https://lender.example@127.0.0.1/hook", "remove the user name and password"),
        ("https://:@lender.example/", "remove the user name and password"),
        ("https://lender.example:0/", "port must be a number from 1 to 65535"),
        ("https://lender.example:65536/", "port must be a number from 1 to 65535"),
        ("https://lender.example:http/", "port must be a number from 1 to 65535"),
        ("https://lender.example/a b", "spaces or control characters"),
        ("https://lender.example/\r\nX-Injected: 1", "spaces or control characters"),
        ("https://a..b/", "not a valid host name"),
        ("https://-lender.example/", "not a valid host name"),
        ("https://lender.example\\@127.0.0.1/", "remove the user name and password"),
        ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
        ("https://[::1]:8443/hook", "::1 is a loopback address"),
        ("https://[::ffff:127.0.0.1]/", "is a loopback address"),
        ("https://169.254.169.254/latest/meta-data/", "is a link-local address"),
        ("https://[fe80::1%25eth0]/", "is a link-local address"),
        ("https://10.0.0.5/", "is a private-network address"),
        ("https://0.0.0.0:8000/", "is the unspecified address"),
        ("https://[::]/", "is the unspecified address"),
        ("https://224.0.0.1/", "is a multicast address"),
    ],
)
def test_urls_the_policy_refuses_before_resolving(url: str, says: str) -> None:
    with pytest.raises(WebhookRefusedError) as refused:
        parse_target(url, DEFAULT_POLICY)
    assert says in refused.value.detail


def test_the_fix_for_a_private_address_names_the_setting_only_where_it_helps() -> None:
    with pytest.raises(WebhookRefusedError) as private:
        parse_target("https://192.168.0.10/", DEFAULT_POLICY)
    assert "KIOSKMATCH_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true" in private.value.detail
    with pytest.raises(WebhookRefusedError) as metadata:
        parse_target("https://169.254.169.254/", LOCAL)  # no setting opens this one
    assert "KIOSKMATCH_WEBHOOK" not in metadata.value.detail


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path", "header"),
    [
        ("https://lender.example", "https", "lender.example", 443, "/", "lender.example"),
        (
            "https://Lender.Example:8443/k/m?x=1&y=2#frag",
            "https",
            "lender.example",
            8443,
            "/k/m?x=1&y=2",
            "lender.example:8443",
        ),
        ("https://bücher.example/", "https", "xn--bcher-kva.example", 443, "/", None),
        ("https://8.8.8.8/hook", "https", "8.8.8.8", 443, "/hook", "8.8.8.8"),
        ("https://[2606:4700::1]:444/", "https", "2606:4700::1", 444, "/", "[2606:4700::1]:444"),
        ("http://127.0.0.1:8080/h", "http", "127.0.0.1", 8080, "/h", "127.0.0.1:8080"),
        ("http://localhost/h", "http", "localhost", 80, "/h", "localhost"),
    ],
)
def test_urls_the_policy_accepts_are_read_into_targets(
    url: str, scheme: str, host: str, port: int, path: str, header: str | None
) -> None:
    target = parse_target(url, LOCAL)
    assert (target.scheme, target.host, target.port, target.path) == (scheme, host, port, path)
    assert target.host_header == (header or host)


def test_a_target_is_sent_to_a_checked_address_under_its_own_name() -> None:
    target = parse_target("https://lender.example:8443/hook?a=1")
    assert target.url() == "https://lender.example:8443/hook?a=1"
    assert (
        target.url(ipaddress.ip_address("93.184.215.14")) == "https://93.184.215.14:8443/hook?a=1"
    )
    v6 = ipaddress.ip_address("2606:4700::1")
    assert target.url(v6) == "https://[2606:4700::1]:8443/hook?a=1"
    assert parse_target("https://lender.example/").url(v6) == "https://[2606:4700::1]/"


def answering(found: list[str]) -> Resolver:
    return lambda host, port: found


def test_every_resolved_address_must_be_public() -> None:
    target, addresses = vet(
        "https://lender.example/hook",
        DEFAULT_POLICY,
        lambda host, port: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    )
    assert target.host == "lender.example" and len(addresses) == 2
    # One private address among public ones: a connection could go to it.
    for found in (["93.184.215.14", "10.0.0.7"], ["::ffff:7f00:1"], ["fe80::1%eth0"]):
        with pytest.raises(WebhookRefusedError) as refused:
            vet("https://lender.example/hook", DEFAULT_POLICY, answering(found))
        assert "the host name resolves to" in refused.value.detail
        assert all(a.split("%")[0] not in refused.value.detail for a in found)
    assert vet("https://lender.example/", LOCAL, lambda h, p: ["10.0.0.7"])[1] == [
        ipaddress.ip_address("10.0.0.7")
    ]


def test_the_resolver_is_asked_for_the_host_and_port_and_not_for_a_literal_address() -> None:
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["8.8.8.8"]

    vet("https://Lender.Example:8443/x", DEFAULT_POLICY, resolver)
    vet("https://8.8.4.4/x", DEFAULT_POLICY, resolver)
    assert asked == [("lender.example", 8443)]


@pytest.mark.parametrize(
    "failure", [OSError("Name or service not known"), UnicodeError("label too long")]
)
def test_a_host_that_does_not_resolve_is_its_own_error(failure: Exception) -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise failure

    with pytest.raises(WebhookUnresolvedError) as unresolved:
        vet("https://nowhere.example/", DEFAULT_POLICY, resolver)
    assert "does not resolve" in unresolved.value.detail
    with pytest.raises(WebhookUnresolvedError):
        vet("https://nowhere.example/", DEFAULT_POLICY, lambda h, p: [])
    with pytest.raises(WebhookUnresolvedError):
        vet("https://nowhere.example/", DEFAULT_POLICY, lambda h, p: ["not-an-address"])


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/",
        "https://LOCALHOST/",
        "https://127.1/",  # inet_aton's short forms, which a URL parser does not call addresses
        "https://2130706433/",
        "https://0x7f000001/",
        "https://0177.0.0.1/",
        "https://0/",
    ],
)
def test_the_system_resolver_sees_through_spellings_of_this_machine(url: str) -> None:
    # Numbers and localhost resolve without the network.
    with pytest.raises(WebhookRefusedError):
        vet(url, DEFAULT_POLICY, resolve_host)


def test_every_error_is_a_422_with_a_detail() -> None:
    assert issubclass(WebhookRefusedError, WebhookUrlError)
    assert issubclass(WebhookUnresolvedError, WebhookUrlError)
    from gateway.errors import InvalidRequestError

    assert issubclass(WebhookUrlError, InvalidRequestError)


def test_settings_relax_the_policy_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALLOW_HTTP", "ALLOW_PRIVATE_NETWORKS", "PROXY"):
        monkeypatch.delenv(f"KIOSKMATCH_WEBHOOK_{name}", raising=False)
    strict = GatewaySettings(_env_file=None)
    assert not strict.webhook_allow_http and not strict.webhook_allow_private_networks
    assert strict.webhook_proxy is None
    monkeypatch.setenv("KIOSKMATCH_WEBHOOK_ALLOW_HTTP", "true")
    monkeypatch.setenv("KIOSKMATCH_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "1")
    monkeypatch.setenv("KIOSKMATCH_WEBHOOK_PROXY", "http://proxy.internal:3128")
    relaxed = GatewaySettings(_env_file=None)
    assert relaxed.webhook_allow_http and relaxed.webhook_allow_private_networks
    assert relaxed.webhook_proxy == "http://proxy.internal:3128"


@pytest.mark.parametrize(
    "proxy", ["socks5://p:1080", "proxy.internal:3128", "http://", "http://user:pw@p:99999"]
)
def test_a_proxy_that_is_not_an_http_url_is_refused_at_load(proxy: str) -> None:
    with pytest.raises(ValidationError) as bad:
        GatewaySettings(webhook_proxy=proxy, _env_file=None)
    [error] = bad.value.errors()
    assert error["loc"] == ("webhook_proxy",)
    assert "use http://host:port" in error["msg"]
    assert "pw" not in error["msg"]


def test_a_setting_that_is_not_a_boolean_is_refused_at_load() -> None:
    with pytest.raises(ValidationError) as bad:
        GatewaySettings(webhook_allow_http="sometimes", _env_file=None)
    assert bad.value.errors()[0]["loc"] == ("webhook_allow_http",)
