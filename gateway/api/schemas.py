"""HTTP request and response schemas (``XCreate`` in, ``XPublic`` out)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from edge.protocol.topics import KIOSK_ID_PATTERN
from gateway.matching.program import MAX_TERM_MONTHS

T = TypeVar("T")


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value (SQLite gives stored timestamps back naive) is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC day
        raise ValueError("the time is out of range once converted to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
"""A timestamp shown as RFC 3339 in UTC (``...Z``), whatever the database gave back."""

CreditBandName = Literal["super_prime", "prime", "near_prime", "subprime", "deep_subprime"]


class Problem(BaseModel):
    """An error, as ``application/problem+json`` (RFC 9457)."""

    type: str = Field("about:blank", description="A URI for the kind of problem")
    title: str = Field(description="A short summary of the kind of problem", examples=["Not found"])
    status: int = Field(description="The HTTP status code", examples=[404])
    detail: str = Field(description="What went wrong with this request, and what to do")
    instance: str | None = Field(None, description="The request path")


class FieldProblem(BaseModel):
    field: str = Field(description="Where: body.x, query.x, path.x", examples=["query.limit"])
    message: str


class ValidationProblem(Problem):
    """A request whose parameters or body do not validate (422)."""

    errors: list[FieldProblem] = Field(default_factory=list)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page")


MAX_VEHICLE_OPTIONS = 100
"""Options a dealer may name. The catalogue knows a handful (cruise, sound, leather) and a kiosk
ignores the rest; the bound keeps the kiosk's command far inside the wire's 256 KiB."""

MAX_HINT_CHARS = 64
"""The longest make, model, trim, body or option name."""


def _no_control_characters(value: str) -> str:
    # A kiosk refuses a message holding U+0000 (PostgreSQL text cannot store it), and no
    # catalogue name has a use for a control character: refused here, where the field is named.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("control characters (U+0000 to U+001F, U+007F) are not allowed")
    return value


HintText = Annotated[
    str, StringConstraints(max_length=MAX_HINT_CHARS), AfterValidator(_no_control_characters)
]
VinText = Annotated[str, StringConstraints(max_length=17), AfterValidator(_no_control_characters)]
OptionName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_HINT_CHARS),
    AfterValidator(_no_control_characters),
]


class VehicleHints(BaseModel):
    """What the dealer knows that OBD cannot tell: the catalogue model, trim and options.

    Sent to the kiosk in its ``start_appraisal`` command, so every field is bounded: the command
    must fit one MQTT message (``edge.protocol.MAX_PAYLOAD_BYTES``).
    """

    model_config = ConfigDict(extra="forbid")

    make: HintText | None = Field(None, examples=["Chevrolet"])
    model: HintText | None = Field(None, examples=["Malibu"])
    trim: HintText | None = Field(None, examples=["LS Sedan 4D"])
    body: HintText | None = None
    vin: VinText | None = Field(None, description="Typed VIN, checked against OBD")
    options: dict[OptionName, bool] = Field(
        default_factory=dict,
        max_length=MAX_VEHICLE_OPTIONS,
        description=f"Equipment flags (at most {MAX_VEHICLE_OPTIONS}, names of 1 to "
        f"{MAX_HINT_CHARS} characters), e.g. cruise, sound, leather",
        examples=[{"cruise": True}],
    )


class LoanRequestCreate(BaseModel):
    """A loan request. Income and credit are personal data: encrypted at rest, masked when shown.

    Each rule names its own field in a 422 (``body.consent``, ``body.credit_band``, ...), so an
    integrator's form can mark the field to fix. Values are taken as JSON types only: consent is
    ``true``, not ``"yes"`` or ``1``; amounts are integers, not text or ``true``.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    loan_kind: Literal["purchase", "equity"] = "purchase"
    amount_minor: int = Field(
        gt=0,
        le=10_000_000_00,
        description="In cents. Purchase: the car's selling price. Equity: the cash wanted",
    )
    down_payment_minor: int = Field(
        0, ge=0, le=10_000_000_00, description="Cash and trade-in equity put down, in cents"
    )
    term_months: int = Field(
        ge=6,
        le=MAX_TERM_MONTHS,
        description=f"6 to {MAX_TERM_MONTHS} (the longest any program offers)",
    )
    currency: Literal["USD"] = Field(
        "USD",
        description="The currency of the amounts: the kiosks' valuation currency (US dollars). "
        "Another would compare amounts with a car valued in dollars, so it is refused",
    )
    monthly_income_minor: int = Field(gt=0, le=10_000_000_00, description="Gross monthly income")
    credit_score: int | None = Field(None, ge=300, le=850, description="FICO-style score")
    credit_band: CreditBandName | None = Field(
        None,
        validate_default=True,
        description="Used when no score is given; priced at the band's lowest score",
    )
    consent: bool = Field(description="The applicant agreed to share this data with lenders")

    @field_validator("down_payment_minor")
    @classmethod
    def _leaves_something_to_finance(cls, value: int, info: ValidationInfo) -> int:
        amount = info.data.get("amount_minor")
        if amount is not None and value >= amount:
            raise ValueError(
                f"the down payment ({value}) must be less than amount_minor ({amount}): "
                "nothing would be left to finance"
            )
        return value

    @field_validator("credit_band")
    @classmethod
    def _score_or_band(cls, value: str | None, info: ValidationInfo) -> str | None:
        # credit_score is absent from info.data when it failed its own checks: one error is enough.
        if value is None and "credit_score" in info.data and info.data["credit_score"] is None:
            raise ValueError("give credit_score (300-850) or credit_band")
        return value

    @field_validator("consent")
    @classmethod
    def _consented(cls, value: bool) -> bool:
        if not value:
            raise ValueError("the applicant's consent is required to share their data with lenders")
        return value


class AppraisalStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kiosk_id: str = Field(pattern=KIOSK_ID_PATTERN)
    vehicle: VehicleHints = Field(default_factory=VehicleHints)
    loan_request: LoanRequestCreate | None = None


class MatchPublic(BaseModel):
    id: str
    seq: int
    appraisal_id: str
    loan_request_id: str
    lender: str
    program_id: str
    program_version: str
    eligible: bool
    apr_percent: float | None
    term_months: int | None
    amount_minor: int | None = Field(description="Amount financed, in cents")
    max_amount_minor: int | None = Field(description="The most this program would lend, in cents")
    monthly_payment_minor: int | None
    peak_ltv: float | None
    rank: int | None
    decision: str
    created_at: UtcDatetime
    result: dict[str, Any] = Field(description="Every rule's outcome, with codes and sentences")


class LoanRequestPublic(BaseModel):
    id: str
    appraisal_id: str
    loan_kind: str
    amount_minor: int
    down_payment_minor: int
    term_months: int
    currency: str
    applicant: dict[str, str] = Field(description="Masked applicant data")
    created_at: UtcDatetime
    matched_at: UtcDatetime | None
    offers: list[MatchPublic] = Field(
        default_factory=list,
        description="Every lender's offer or refusal for this request: offers first, best first",
    )
    apr_spread: float | None = Field(
        None, description="Max minus min APR of this request's eligible offers"
    )


class AppraisalPublic(BaseModel):
    appraisal_id: str
    kiosk_id: str
    state: Literal["requested", "received"]
    command_state: str | None = None
    report: dict[str, Any] | None = None
    gateway_flags: list[dict[str, Any]] = Field(
        default_factory=list, description="Flags raised across appraisals (photo reuse, rollback)"
    )
    loan_requests: list[LoanRequestPublic] = Field(
        default_factory=list, description="Oldest first, each with its own offers and APR spread"
    )
    offers: list[MatchPublic] = Field(
        default_factory=list,
        description="The offers and refusals for the latest loan request (one customer's terms: "
        "ranks and the spread compare like with like)",
    )
    apr_spread: float | None = Field(
        None, description="Max minus min APR of the latest loan request's eligible offers"
    )


class AppraisalSummary(BaseModel):
    """One of a dealer's appraisals in a list (``GET /v1/dealer/appraisals/{id}`` has it all)."""

    appraisal_id: str
    kiosk_id: str
    state: Literal["requested", "received"]
    requested_at: UtcDatetime
    received_at: UtcDatetime | None = None
    vin: str | None = None
    value_minor: int | None = None
    currency: str | None = None


class DecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accepted", "declined"]
    note: str | None = Field(None, max_length=500)


class KioskPublic(BaseModel):
    kiosk_id: str
    state: str = Field(
        description="online, offline, stopped or unknown, as the kiosk's presence says; silent "
        "when it says online but nothing has come from the kiosk for the configured time "
        "(KIOSKMATCH_KIOSK_SILENT_AFTER_S)"
    )
    state_at: UtcDatetime | None
    last_seen_at: UtcDatetime | None
    agent_version: str | None
    telemetry: dict[str, Any] | None
    dealer_org: str | None = Field(
        description="The dealer whose kiosk this is: only its keys may start appraisals on it "
        "(none: any dealer's)"
    )


class KioskDealer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dealer_org: str | None = Field(
        description="The dealer organisation (as in its API keys) the kiosk belongs to; null "
        "lets any dealer use it"
    )


class Stats(BaseModel):
    appraisals: int
    dead_letters: int
    duplicates_ignored: int
    kiosks_online: int = Field(description="Online and heard from recently")
    kiosks_silent: int = Field(
        description="Online by their presence, but nothing heard for the configured time"
    )
    kiosks: int
    matches: int
    commands_pending: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    broker: bool
    ingest: bool = Field(description="The threads that store what kiosks send are running")


class ProgramIssuePublic(BaseModel):
    line: int | None
    column: int | None
    field: str
    message: str
    value: str | None
    fix: str | None


class ProgramPublic(BaseModel):
    program_id: str
    version: str
    lender: str
    active: bool
    in_force_today: bool
    uploaded_at: UtcDatetime
    document: dict[str, Any]


class ProgramValidation(BaseModel):
    valid: bool
    program_id: str | None = None
    version: str | None = None
    issues: list[ProgramIssuePublic] = Field(default_factory=list)


class ProgramProblem(Problem, ProgramValidation):
    """An invalid program (422): every issue with its line, column, field, value and fix."""


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=2000,
        description="An https URL whose host resolves only to public internet addresses; no "
        "user:password@ (verify Kioskmatch-Signature instead). Checked again at every delivery",
        examples=["https://lender.example/kioskmatch/matches"],
    )


class WebhookPublic(BaseModel):
    id: str
    url: str
    active: bool
    created_at: UtcDatetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="Shown once: verify Kioskmatch-Signature with it")


class DeliveryPublic(BaseModel):
    id: str
    subscription_id: str
    match_id: str
    state: str
    attempts: int
    next_attempt_at: UtcDatetime
    last_status: int | None
    last_error: str | None
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None
