"""Webhooks: matches pushed to lenders, signed, retried with backoff, kept when they keep failing.

Signature header (DESIGN.md): ``Kioskmatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">`` with the subscription's secret. A receiver recomputes the HMAC over the raw
body and rejects timestamps older than a few minutes (see :func:`verify_signature`).

Where a webhook may go is :mod:`gateway.services.webhook_policy`'s to say: a URL is checked when it
is subscribed, and again before every delivery against the addresses its host resolves to then;
the delivery connects to an address it checked. A delivery the policy refuses fails at once (it
is not retried), and the lender is told no more than :data:`POLICY_REFUSAL`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update
from sqlmodel import Session, col, select

from edge.protocol import new_id
from gateway.db.models import MatchRow, WebhookDelivery, WebhookSubscription, lender_match_json
from gateway.errors import NotFoundError
from gateway.services.pages import (
    check_limit,
    encode_newest_cursor,
    newest_after,
    page_by_text_key,
    split_page,
)
from gateway.services.sealing import Sealer
from gateway.services.webhook_policy import (
    DEFAULT_POLICY,
    IPAddress,
    Resolver,
    WebhookPolicy,
    WebhookRefusedError,
    WebhookTarget,
    WebhookUnresolvedError,
    resolve_host,
    vet,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Kioskmatch-Signature"
MAX_ATTEMPTS = 12
FIRST_RETRY_S = 10.0
MAX_RETRY_S = 3600.0
TOLERANCE_S = 300
# A delivery being sent is its sender's for this long: well beyond one attempt's HTTP timeout.
CLAIM_S = 120.0
# Addresses of one host tried in one attempt (each may take a connect timeout).
MAX_ADDRESSES_PER_ATTEMPT = 3
POLICY_REFUSAL = "refused by the gateway's webhook policy"
"""The whole of what a lender learns about a delivery the policy refused (the log says more)."""


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The signature header's value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """What a receiver does: check the HMAC and that the timestamp is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp=t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def subscribe(
    session: Session,
    sealer: Sealer,
    *,
    lender_org: str,
    url: str,
    policy: WebhookPolicy = DEFAULT_POLICY,
    resolver: Resolver = resolve_host,
) -> tuple[WebhookSubscription, str]:
    """Register ``url``; returns the subscription and its secret (shown once).

    Raises :class:`~gateway.services.webhook_policy.WebhookUrlError` (an
    :class:`~gateway.errors.InvalidRequestError`) when ``policy`` refuses the URL or an address
    its host resolves to now, or when the host does not resolve.
    """
    vet(url, policy, resolver)
    secret = "whsec_" + secrets.token_urlsafe(32)
    row = WebhookSubscription(
        id=new_id(),
        lender_org=lender_org,
        url=url,
        secret_sealed=sealer.seal({"secret": secret}),
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.commit()
    return row, secret


def unsubscribe(session: Session, *, lender_org: str, subscription_id: str) -> None:
    row = session.get(WebhookSubscription, subscription_id)
    if row is None or row.lender_org != lender_org:
        raise NotFoundError(f"webhook {subscription_id} does not exist for lender {lender_org!r}")
    row.active = False
    session.commit()


def enqueue(session: Session, matches: Sequence[MatchRow], *, now: datetime | None = None) -> int:
    """Queue a delivery of each match to every active subscription of its lender (not committed)."""
    now = now or datetime.now(UTC)
    orgs = {m.lender_org for m in matches}
    if not orgs:
        return 0
    subs = session.exec(
        select(WebhookSubscription).where(
            col(WebhookSubscription.lender_org).in_(orgs),
            WebhookSubscription.active == True,  # noqa: E712
        )
    ).all()
    if any(m.seq is None for m in matches):
        session.flush()  # the seq a lender's pull cursor shows, so the two can be reconciled
    queued = 0
    for match in matches:
        assert match.seq is not None
        # The match exactly as the lender's pull shows it.
        body = (
            f'{{"match":{lender_match_json(match.seq, match.decision, match.public_json)},'
            '"type":"match.created"}'
        )
        for sub in subs:
            if sub.lender_org != match.lender_org:
                continue
            session.add(
                WebhookDelivery(
                    id=new_id(),
                    subscription_id=sub.id,
                    lender_org=sub.lender_org,
                    match_id=match.id,
                    payload=body,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            queued += 1
    return queued


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: 10 s, 20 s, 40 s, ... capped at an hour."""
    return timedelta(seconds=min(FIRST_RETRY_S * 2 ** max(attempts - 1, 0), MAX_RETRY_S))


def deliver_due(
    session: Session,
    sealer: Sealer,
    client: httpx.Client,
    *,
    now: datetime | None = None,
    limit: int = 50,
    policy: WebhookPolicy = DEFAULT_POLICY,
    resolver: Resolver = resolve_host,
    pin_addresses: bool = True,
) -> int:
    """Attempt every due delivery once; returns how many were attempted.

    Each URL is checked against ``policy`` again, with its host resolved by ``resolver``. With
    ``pin_addresses`` the request goes to an address that was checked (the host name in the Host
    header and as TLS's server name); without it (a ``client`` that goes through a proxy, which
    resolves the name itself) it goes to the URL as written, after the same check.

    Each delivery is claimed in a commit of its own before it is sent (its next attempt moved
    :data:`CLAIM_S` ahead), and its outcome is committed right after: two gateway processes on
    one database never send the same delivery at once, and a crash in the middle of a send
    leaves that delivery due again once the claim lapses, the attempt counted.
    """
    now = now or datetime.now(UTC)
    due = session.exec(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.state == "pending", col(WebhookDelivery.next_attempt_at) <= now)
        .order_by(col(WebhookDelivery.next_attempt_at))
        .limit(limit)
    ).all()
    session.rollback()  # end the read: each claim below is its own short write
    attempted = 0
    for delivery_id in due:
        delivery = _claim(session, delivery_id, now)
        if delivery is not None:
            _attempt(
                session,
                sealer,
                client,
                delivery,
                now,
                policy=policy,
                resolver=resolver,
                pin_addresses=pin_addresses,
            )
            session.commit()
            attempted += 1
    return attempted


def _claim(session: Session, delivery_id: str, now: datetime) -> WebhookDelivery | None:
    """The delivery, counted as attempted and claimed by us; ``None`` when someone else has it."""
    claimed = session.execute(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == delivery_id,
            col(WebhookDelivery.state) == "pending",
            col(WebhookDelivery.next_attempt_at) <= now,
        )
        .values(
            next_attempt_at=now + timedelta(seconds=CLAIM_S),
            attempts=col(WebhookDelivery.attempts) + 1,
        )
    )
    session.commit()
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    return session.get(WebhookDelivery, delivery_id)


def _attempt(
    session: Session,
    sealer: Sealer,
    client: httpx.Client,
    delivery: WebhookDelivery,
    now: datetime,
    *,
    policy: WebhookPolicy,
    resolver: Resolver,
    pin_addresses: bool,
) -> None:
    """Send a claimed delivery once and record what happened (not committed)."""
    sub = session.get(WebhookSubscription, delivery.subscription_id)
    if sub is None or not sub.active:
        delivery.state = "failed"
        delivery.last_error = "the subscription was removed"
        return
    try:
        target, addresses = vet(sub.url, policy, resolver)
    except WebhookRefusedError as exc:
        # Final: retrying would only probe the same address again. The lender may retry by hand.
        delivery.state = "failed"
        delivery.last_status = None
        delivery.last_error = POLICY_REFUSAL
        session.add(delivery)
        logger.warning(
            "webhook delivery %s (subscription %s of %r) refused by the webhook policy: %s; "
            "marked failed without sending",
            delivery.id,
            sub.id,
            sub.lender_org,
            exc.detail,
        )
        return
    except WebhookUnresolvedError:  # perhaps for now: retried like a receiver that is down
        ok = False
        delivery.last_status = None
        delivery.last_error = "the host name did not resolve"
    else:
        secret = str(sealer.open(sub.secret_sealed)["secret"])
        body = delivery.payload.encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
        delivery.last_status, delivery.last_error = _send(
            client, target, addresses if pin_addresses else [], body, headers
        )
        ok = delivery.last_error is None
    if ok:
        delivery.state = "delivered"
        delivery.delivered_at = now
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.state = "failed"
        logger.warning(
            "webhook delivery %s to %s failed %d times (%s); kept for the lender to retry",
            delivery.id,
            sub.url,
            delivery.attempts,
            delivery.last_error,
        )
    else:
        delivery.next_attempt_at = now + backoff(delivery.attempts)
    session.add(delivery)


def _send(
    client: httpx.Client,
    target: WebhookTarget,
    addresses: list[IPAddress],
    body: bytes,
    headers: dict[str, str],
) -> tuple[int | None, str | None]:
    """POST ``body`` to ``target``, at each of ``addresses`` in turn until one connects (at the
    URL's host when there are none); the status, and an error unless it was a 2xx."""
    urls = [target.url()]
    extensions: dict[str, str] = {}
    if addresses and target.address is None:
        # The connection goes to a checked address; the host name still names the site.
        urls = [target.url(address) for address in addresses[:MAX_ADDRESSES_PER_ATTEMPT]]
        # Not kept alive: a pooled connection to this address, made for another host name's
        # certificate, must not carry the next delivery.
        headers = {**headers, "Host": target.host_header, "Connection": "close"}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host.rstrip(".")
    error = "no address to connect to"
    for url in urls:
        try:
            response = client.post(
                url,
                content=body,
                headers=headers,
                extensions=extensions,
                follow_redirects=False,  # a redirect could point anywhere, unchecked
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            continue  # nothing was sent: the next address may answer
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        ok = 200 <= response.status_code < 300
        return response.status_code, None if ok else f"HTTP {response.status_code}"
    return None, error


def list_deliveries(
    session: Session,
    *,
    lender_org: str,
    state: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[WebhookDelivery], str | None]:
    """A page of a lender's deliveries, newest first, and the cursor of the next page."""
    limit = check_limit(limit)
    query = select(WebhookDelivery).where(WebhookDelivery.lender_org == lender_org)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    after = newest_after(cursor, col(WebhookDelivery.created_at), col(WebhookDelivery.id))
    if after is not None:
        query = query.where(after)
    return split_page(
        session.exec(
            query.order_by(
                col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc()
            ).limit(limit + 1)
        ).all(),
        limit,
        lambda row: encode_newest_cursor(row.created_at, row.id),
    )


def list_subscriptions(
    session: Session, *, lender_org: str, limit: int = 50, cursor: str | None = None
) -> tuple[list[WebhookSubscription], str | None]:
    """A page of the lender's subscriptions, by id, and the cursor of the next page."""
    query = select(WebhookSubscription).where(WebhookSubscription.lender_org == lender_org)
    return page_by_text_key(session, query, col(WebhookSubscription.id), check_limit(limit), cursor)


def retry(session: Session, *, lender_org: str, delivery_id: str) -> WebhookDelivery:
    """Send a failed (or pending) delivery again now."""
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.lender_org != lender_org:
        raise NotFoundError(f"delivery {delivery_id} does not exist for lender {lender_org!r}")
    row.state = "pending"
    row.attempts = 0
    row.next_attempt_at = datetime.now(UTC)
    session.commit()
    return row
