"""Builders of realistic wire values for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edge.protocol import (
    AppraisalBody,
    Condition,
    Dtc,
    ObdSummary,
    OdometerSource,
    Valuation,
    ValuationFactor,
    ValuationStatus,
    Vehicle,
    VinSource,
    new_id,
)


def appraisal_body(
    *,
    appraisal_id: str | None = None,
    value_minor: int = 1_250_000,
    months: int = 85,
    monthly_drop: float = 0.012,
    vin: str = "1G1ZB5ST7KF123456",
    **overrides: Any,
) -> AppraisalBody:
    now = datetime.now(UTC)
    curve = [round((1 - monthly_drop) ** m, 6) for m in range(months)]
    body = AppraisalBody(
        appraisal_id=appraisal_id or new_id(),
        started_at=now,
        completed_at=now,
        vehicle=Vehicle(
            vin=vin,
            vin_source=VinSource.OBD,
            vin_valid=True,
            make="Chevrolet",
            model="Malibu",
            trim="LS Sedan 4D",
            model_year=2019,
            odometer_km=48_000.0,
            odometer_source=OdometerSource.OBD,
        ),
        obd=ObdSummary(
            protocol="ISO 15765-4 (CAN 11/500)",
            mil_on=False,
            dtcs=[
                Dtc(code="P0420", kind="pending"),
            ],
        ),
        condition=Condition(grade=4.5),
        valuation=Valuation(
            status=ValuationStatus.VALUED,
            model_version="test-1",
            value_minor=value_minor,
            low_minor=int(value_minor * 0.93),
            high_minor=int(value_minor * 1.07),
            interval=0.9,
            valued_at=now,
            factors=[
                ValuationFactor(
                    code="catalogue_base", description="test", value_after_minor=value_minor
                )
            ],
            residual_curve=curve,
        ),
    )
    return body.model_copy(update=overrides) if overrides else body


def stored_match(lender_org: str, **fields: Any) -> Any:
    """A stored match row of ``lender_org`` (a ``gateway.db.MatchRow``), eligible by default."""
    from gateway.db import MatchRow

    values: dict[str, Any] = {
        "id": new_id(),
        "appraisal_id": new_id(),
        "loan_request_id": new_id(),
        "lender_org": lender_org,
        "program_id": "p",
        "program_version": "1",
        "eligible": True,
        "result": {},
        "created_at": datetime.now(UTC),
    }
    return MatchRow(**{**values, **fields})
