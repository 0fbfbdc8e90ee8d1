"""SQLModel tables. Changes go through an Alembic migration in ``gateway/db/migrations``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, LargeBinary, Text, event
from sqlmodel import Field, SQLModel


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


class Kiosk(SQLModel, table=True):
    """Latest known state of a kiosk (presence and last heartbeat)."""

    kiosk_id: str = Field(primary_key=True, max_length=64)
    state: str = Field(default="unknown", max_length=16)
    state_at: datetime | None = _ts(nullable=True)
    last_seen_at: datetime | None = _ts(nullable=True)
    agent_version: str | None = Field(default=None, max_length=64)
    telemetry: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    telemetry_at: datetime | None = _ts(nullable=True)
    last_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    out_of_order: int = Field(default=0)
    dealer_org: str | None = Field(
        default=None,
        max_length=128,
        description="The dealer whose kiosk this is (only it may start appraisals); none: any",
    )


class KioskHistory(SQLModel, table=True):
    """Presence changes and heartbeats over time, pruned after the retention period."""

    __tablename__ = "kiosk_history"
    __table_args__ = (Index("ix_kiosk_history_kiosk_at", "kiosk_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    kiosk_id: str = Field(max_length=64)
    kind: str = Field(max_length=16, description="status or telemetry")
    at: datetime = _ts(nullable=False, index=True)
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class InboundMessage(SQLModel, table=True):
    """Every message_id the gateway has committed: the idempotency key of ingest."""

    __tablename__ = "inbound_message"

    message_id: str = Field(primary_key=True, max_length=36)
    kiosk_id: str = Field(index=True, max_length=64)
    schema_name: str = Field(max_length=64)
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = _ts(nullable=False)
    received_at: datetime = _ts(nullable=False)
    duplicates: int = Field(default=0, description="How many times it arrived again")


class Appraisal(SQLModel, table=True):
    appraisal_id: str = Field(primary_key=True, max_length=36)
    message_id: str = Field(unique=True, max_length=36)
    kiosk_id: str = Field(index=True, max_length=64)
    # As read, so not always 17 characters (the report's vin_valid says whether it is a VIN).
    vin: str | None = Field(default=None, index=True)
    status: str = Field(max_length=32)
    value_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    currency: str = Field(default="USD", max_length=3)
    created_at: datetime = _ts(nullable=False)
    received_at: datetime = _ts(nullable=False, index=True)
    odometer_km: float | None = None
    report: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    gateway_flags: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, default=list),
        description="Flags the gateway raised across appraisals (photo reuse, odometer rollback)",
    )


class AppraisalPhoto(SQLModel, table=True):
    """The photos an appraisal's report names, for access checks and the reuse check."""

    __tablename__ = "appraisal_photo"

    id: int | None = Field(default=None, primary_key=True)
    appraisal_id: str = Field(index=True, max_length=36)
    sha256: str = Field(index=True, max_length=64)
    view: str = Field(max_length=32)
    phash: str | None = Field(default=None, max_length=16)
    vin: str | None = None  # as read, like Appraisal.vin


class DeadLetter(SQLModel, table=True):
    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(sa_column=Column(Text, nullable=False))
    kiosk_id: str | None = Field(default=None, max_length=64)
    message_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = _ts(nullable=False)
    digest: str | None = Field(
        default=None,
        max_length=64,
        index=True,
        description="SHA-256 of topic and payload: the same message delivered again is this row",
    )
    duplicates: int = Field(default=0, description="Deliveries of the same message since")


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(unique=True, max_length=64, description="SHA-256 hex of the key")
    prefix: str = Field(max_length=12, description="First characters, to tell keys apart")
    role: str = Field(max_length=16)
    org: str = Field(index=True, max_length=128)
    created_at: datetime = _ts(nullable=False)
    revoked_at: datetime | None = _ts(nullable=True)


class IdempotencyKey(SQLModel, table=True):
    """A dealer's ``Idempotency-Key`` on starting an appraisal: a retried request gets the
    appraisal the first one made, not a second one (nor a second command to the kiosk)."""

    __tablename__ = "idempotency_key"

    dealer_org: str = Field(primary_key=True, max_length=128)
    key: str = Field(primary_key=True, max_length=255)
    request_sha256: str = Field(max_length=64, description="Of the request body, canonical JSON")
    appraisal_id: str = Field(max_length=36)
    created_at: datetime = _ts(nullable=False)


class AppraisalRequest(SQLModel, table=True):
    """A dealer's request for an on-site appraisal, sent to a kiosk as a command."""

    __tablename__ = "appraisal_request"

    appraisal_id: str = Field(primary_key=True, max_length=36)
    dealer_org: str = Field(index=True, max_length=128)
    kiosk_id: str = Field(index=True, max_length=64)
    command_id: str = Field(unique=True, max_length=36)
    created_at: datetime = _ts(nullable=False)


class LoanRequestRow(SQLModel, table=True):
    """A loan request on an appraisal. Applicant data (income, credit) is encrypted at rest."""

    __tablename__ = "loan_request"

    id: str = Field(primary_key=True, max_length=36)
    appraisal_id: str = Field(index=True, max_length=36)
    dealer_org: str = Field(index=True, max_length=128)
    loan_kind: str = Field(max_length=16)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    down_payment_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    term_months: int
    currency: str = Field(default="USD", max_length=3)
    applicant_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    consent_at: datetime = _ts(nullable=False)
    created_at: datetime = _ts(nullable=False)
    matched_at: datetime | None = _ts(nullable=True)


class LenderProgramRow(SQLModel, table=True):
    __tablename__ = "lender_program"
    __table_args__ = (Index("ix_program_lender_id_version", "lender_org", "program_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    lender_org: str = Field(max_length=128)
    program_id: str = Field(max_length=128)
    version: str = Field(max_length=64)
    active: bool = Field(default=True)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    uploaded_at: datetime = _ts(nullable=False)


class MatchRow(SQLModel, table=True):
    """One program's verdict on one loan request; ``seq`` orders a lender's pull cursor."""

    __tablename__ = "match"
    __table_args__ = (Index("ix_match_lender_seq", "lender_org", "seq"),)

    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=36)
    appraisal_id: str = Field(index=True, max_length=36)
    loan_request_id: str = Field(index=True, max_length=36)
    lender_org: str = Field(max_length=128)
    program_id: str = Field(max_length=128)
    program_version: str = Field(max_length=64)
    eligible: bool
    apr_percent: float | None = None
    term_months: int | None = None
    amount_minor: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True), description="Amount financed"
    )
    max_amount_minor: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True), description="Program's maximum"
    )
    monthly_payment_minor: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True)
    )
    peak_ltv: float | None = None
    rank: int | None = None
    decision: str = Field(default="pending", max_length=16, description="pending/accepted/declined")
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(nullable=False, index=True)
    public_json: str = Field(
        default="",
        sa_column=Column(Text, nullable=False, default=""),
        description="The match as lenders pull it, but seq and decision (filled in at insert)",
    )


#: MatchRow fields a lender sees, as stored in ``public_json`` (seq and decision are spliced in
#: at read time: seq is known only after the insert, decision changes).
MATCH_PUBLIC_FIELDS = (
    "id",
    "appraisal_id",
    "loan_request_id",
    "program_id",
    "program_version",
    "eligible",
    "apr_percent",
    "term_months",
    "amount_minor",
    "max_amount_minor",
    "monthly_payment_minor",
    "peak_ltv",
    "rank",
)


def render_match_public(row: MatchRow) -> str:
    """The JSON text of a match for lenders, without seq and decision."""
    fields: dict[str, Any] = {name: getattr(row, name) for name in MATCH_PUBLIC_FIELDS}
    fields["lender"] = row.lender_org
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    fields["created_at"] = created.astimezone(UTC).isoformat().replace("+00:00", "Z")
    fields["result"] = row.result
    return json.dumps(fields, separators=(",", ":"), default=str)


def lender_match_json(seq: int, decision: str, public_json: str) -> str:
    """A stored match as a lender sees it (pulled or by webhook): ``public_json`` with its seq and
    decision spliced in front."""
    return f'{{"seq":{seq},"decision":"{decision}",{public_json[1:]}'


@event.listens_for(MatchRow, "before_insert")
def _materialise_public(_mapper: object, _connection: object, target: MatchRow) -> None:
    target.public_json = render_match_public(target)


class CommandRow(SQLModel, table=True):
    """A command for a kiosk, kept until acknowledged by an event or expired."""

    __tablename__ = "command"

    command_id: str = Field(primary_key=True, max_length=36)
    kiosk_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=32)
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: str = Field(default="pending", max_length=16)
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
    sent_at: datetime | None = _ts(nullable=True)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class WebhookSubscription(SQLModel, table=True):
    """Where a lender wants its matches pushed; the signing secret is sealed at rest."""

    __tablename__ = "webhook_subscription"

    id: str = Field(primary_key=True, max_length=36)
    lender_org: str = Field(index=True, max_length=128)
    url: str = Field(sa_column=Column(Text, nullable=False))
    secret_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    active: bool = Field(default=True)
    created_at: datetime = _ts(nullable=False)


class WebhookDelivery(SQLModel, table=True):
    """One match to push to one subscription; retried with backoff, kept when it keeps failing."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "state", "next_attempt_at"),)

    id: str = Field(primary_key=True, max_length=36)
    subscription_id: str = Field(index=True, max_length=36)
    lender_org: str = Field(index=True, max_length=128)
    match_id: str = Field(max_length=36)
    payload: str = Field(sa_column=Column(Text, nullable=False), description="The exact body sent")
    state: str = Field(default="pending", max_length=16, description="pending/delivered/failed")
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _ts(nullable=False)
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _ts(nullable=False)
    delivered_at: datetime | None = _ts(nullable=True)
