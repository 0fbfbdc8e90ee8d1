"""Where the gateway may deliver webhooks: the guard against server-side request forgery.

A lender names a URL and the gateway POSTs to it, then reports the outcome back to the lender. Left
open, that lets a lender reach the gateway's own network (its loopback, the cloud metadata service
at 169.254.169.254, the database next door) and scan its ports. The policy:

- https only (plain http only when the operator allows it, for tests and demos);
- no user name or password in the URL (receivers check ``Kioskmatch-Signature`` instead);
- the host must resolve only to public (global) addresses. Loopback and private addresses
  (10/8, 172.16/12, 192.168/16, 100.64/10 shared address space, fc00::/7, fec0::/10) are allowed
  only when the operator allows private networks; link-local (169.254/16, fe80::/10, where cloud
  metadata services live), multicast, unspecified and reserved or special-purpose addresses never
  are. IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4
  ``2002::/16``, NAT64 ``64:ff9b::/96``) are judged by the IPv4 address they carry.

A URL is checked when it is subscribed and again before every delivery, against the addresses its
host resolves to then (DNS can change after subscribing); the delivery then connects to an address
it checked, so a name cannot resolve once for the check and again elsewhere for the connection.

Everything here but :func:`resolve_host` (the one piece of IO, passed in as a :data:`Resolver` so
tests can replace it) is pure.

Errors (both :class:`~gateway.errors.InvalidRequestError`, a 422 when a subscription is made):

WebhookUrlError               the URL cannot be used for a webhook
 +-- WebhookRefusedError      the policy refuses the URL or an address its host resolves to
 +-- WebhookUnresolvedError   the host name does not resolve (perhaps for now)
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from gateway.errors import InvalidRequestError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port)`` → the IP addresses (as text) the host name resolves to.

Raises :class:`OSError` (``socket.gaierror`` is one) when the name does not resolve.
"""

ALLOW_HTTP_SETTING = "KIOSKMATCH_WEBHOOK_ALLOW_HTTP"
ALLOW_PRIVATE_SETTING = "KIOSKMATCH_WEBHOOK_ALLOW_PRIVATE_NETWORKS"

_HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookUrlError(InvalidRequestError):
    """The URL cannot be used for a webhook; ``detail`` says why and what to do."""


class WebhookRefusedError(WebhookUrlError):
    """The policy refuses the URL, or an address its host resolves to."""


class WebhookUnresolvedError(WebhookUrlError):
    """The URL's host name does not resolve (it may later: DNS can be down or not yet set)."""


class AddressKind(StrEnum):
    """What kind of address a host resolved to; the value is a phrase for messages."""

    PUBLIC = "a public address"
    LOOPBACK = "a loopback address"
    PRIVATE = "a private-network address"
    LINK_LOCAL = "a link-local address (where cloud metadata services live)"
    MULTICAST = "a multicast address"
    UNSPECIFIED = "the unspecified address"
    RESERVED = "a reserved or special-purpose address"


PRIVATE_NETWORK_KINDS = frozenset({AddressKind.LOOPBACK, AddressKind.PRIVATE})
"""What ``allow_private_networks`` lets through; every other kind but PUBLIC is always refused."""

_PRIVATE_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
    ipaddress.IPv4Network("100.64.0.0/10"),  # shared address space (carrier-grade NAT)
    ipaddress.IPv6Network("fc00::/7"),  # unique local
    ipaddress.IPv6Network("fec0::/10"),  # site-local (deprecated, still routed by some)
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Special-purpose blocks some Python versions call global.
_SPECIAL_NETWORKS = (ipaddress.IPv4Network("192.0.0.0/24"),)  # IETF protocol assignments


@dataclass(frozen=True)
class WebhookPolicy:
    """Which webhook URLs the gateway accepts; the default is the production policy."""

    allow_http: bool = False
    allow_private_networks: bool = False


DEFAULT_POLICY = WebhookPolicy()


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL as the policy read it; deliveries are built from this, not from the text."""

    scheme: Literal["http", "https"]
    host: str
    """The host name in ASCII (IDNA), lowercase; or an IP address's text."""
    port: int
    path: str
    """Path and query, at least ``/``."""
    address: IPAddress | None
    """The address when the URL names one instead of a host name."""

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def url(self, address: IPAddress | None = None) -> str:
        """The URL to send to: at ``address`` when given (the host name goes in the Host header
        and TLS's server name), else at the host itself."""
        if address is None:
            host = self.host_header
        else:
            text = str(address).replace("%", "%25")  # an IPv6 zone, as a URL writes it
            host = f"[{text}]" if address.version == 6 else text
            if self.port != _DEFAULT_PORTS[self.scheme]:
                host = f"{host}:{self.port}"
        return f"{self.scheme}://{host}{self.path}"


def parse_target(url: str, policy: WebhookPolicy = DEFAULT_POLICY) -> WebhookTarget:
    """``url`` read as a webhook target; :class:`WebhookRefusedError` for what the policy refuses
    before any name is resolved (scheme, credentials, a refused IP address written in the URL)."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise WebhookRefusedError("the URL must not contain spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if scheme == "http" and not policy.allow_http:
        raise WebhookRefusedError(
            "use an https:// URL: plain http is refused, since a match holds personal data "
            f"(an operator can allow http for tests and demos with {ALLOW_HTTP_SETTING}=true)"
        )
    if scheme not in allowed or not parts.netloc:
        raise WebhookRefusedError(
            f"use an absolute {' or '.join(s + '://' for s in allowed)} URL, such as "
            "https://lender.example/kioskmatch/matches"
        )
    if "@" in parts.netloc:
        raise WebhookRefusedError(
            "remove the user name and password from the URL: the gateway signs every delivery "
            "(Kioskmatch-Signature), which is how your receiver knows it is us"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise WebhookRefusedError("the URL's port must be a number from 1 to 65535")
    host = _ascii_host(parts.hostname or "")
    target = WebhookTarget(
        scheme="https" if scheme == "https" else "http",
        host=host,
        port=port or _DEFAULT_PORTS[scheme],
        path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        address=_literal_address(host),
    )
    if target.address is not None:
        check_addresses([target.address], policy, literal=True)
    return target


def _ascii_host(host: str) -> str:
    if not host:
        raise WebhookRefusedError("the URL must name a host, such as lender.example")
    if _literal_address(host) is not None:
        return host
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        ascii_host = ""
    if not _HOST_NAME.fullmatch(ascii_host):
        raise WebhookRefusedError(f"{host!r} is not a valid host name")
    return ascii_host


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def classify(address: IPAddress) -> AddressKind:
    """What kind of address ``address`` is, judging an IPv6 form that carries an IPv4 address
    (mapped, 6to4, NAT64) by that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = address.ipv4_mapped or address.sixtofour
        if carried is None and address in _NAT64:
            carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if carried is not None:
            return classify(carried)
    # The order matters: 127.0.0.1 is also "private" to ipaddress, 224.0.0.1 "global".
    if address.is_unspecified:
        return AddressKind.UNSPECIFIED
    if address.is_loopback:
        return AddressKind.LOOPBACK
    if address.is_link_local:
        return AddressKind.LINK_LOCAL
    if address.is_multicast:
        return AddressKind.MULTICAST
    if any(address in network for network in _PRIVATE_NETWORKS):
        return AddressKind.PRIVATE
    if (
        address.is_reserved
        or not address.is_global
        or any(address in network for network in _SPECIAL_NETWORKS)
    ):
        return AddressKind.RESERVED
    return AddressKind.PUBLIC


def is_allowed(kind: AddressKind, policy: WebhookPolicy) -> bool:
    return kind is AddressKind.PUBLIC or (
        policy.allow_private_networks and kind in PRIVATE_NETWORK_KINDS
    )


def check_addresses(
    addresses: Sequence[IPAddress], policy: WebhookPolicy, *, literal: bool = False
) -> None:
    """:class:`WebhookRefusedError` unless every address is allowed: a host that resolves to a
    public and a private address is refused, since a connection may go to either."""
    if not addresses:
        raise WebhookUnresolvedError("the host name resolves to no address")
    for address in addresses:
        kind = classify(address)
        if is_allowed(kind, policy):
            continue
        what = f"{address} is" if literal else "the host name resolves to"
        fix = "use a URL whose host is reachable from the internet"
        if kind in PRIVATE_NETWORK_KINDS:
            fix += (
                " (an operator can allow loopback and private networks for tests and demos "
                f"with {ALLOW_PRIVATE_SETTING}=true)"
            )
        raise WebhookRefusedError(f"{what} {kind.value}, where webhooks may not go: {fix}")


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to for a TCP connection (the system's resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def vet(
    url: str, policy: WebhookPolicy, resolver: Resolver = resolve_host
) -> tuple[WebhookTarget, list[IPAddress]]:
    """``url``'s target and the addresses to connect to, all allowed by ``policy`` now.

    Raises :class:`WebhookRefusedError` or :class:`WebhookUnresolvedError`. The messages never
    name the addresses a host name resolved to.
    """
    target = parse_target(url, policy)
    if target.address is not None:
        return target, [target.address]
    try:
        found = resolver(target.host, target.port)
    except (OSError, UnicodeError):
        raise WebhookUnresolvedError(
            f"the host name {target.host} does not resolve; publish its DNS record, "
            "then subscribe again"
        ) from None
    addresses: list[IPAddress] = []
    for text in found:
        address = _literal_address(text)
        if address is None:
            raise WebhookUnresolvedError(f"the host name {target.host} resolved to a non-address")
        addresses.append(address)
    check_addresses(addresses, policy)
    return target, addresses
