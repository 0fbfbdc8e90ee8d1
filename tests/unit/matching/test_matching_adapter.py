"""From the wire appraisal to collateral facts, and the package's public surface."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

import gateway.matching as matching
from edge.protocol import AppraisalBody
from gateway.matching import (
    Code,
    CreditBand,
    LoanRequest,
    collateral_from_appraisal,
    load_programs,
    match,
    sample_programs_dir,
)

AS_OF = date(2026, 3, 1)


def appraisal(**valuation: Any) -> AppraisalBody:
    doc: dict[str, Any] = {
        "appraisal_id": "6f1c2a9e-0000-4000-8000-000000000001",
        "started_at": "2026-03-01T10:00:00Z",
        "completed_at": "2026-03-01T10:09:00Z",
        "vehicle": {
            "vin": "1G1ZB5ST5KF000001",
            "vin_valid": True,
            "make": "Chevrolet",
            "model": "Malibu",
            "trim": "LS Sedan 4D",
            "model_year": 2019,
            "odometer_km": 48_000.0,
        },
        "photos": [
            {"view": v, "sha256": "ab" * 32, "passed": v != "interior"}
            for v in ("front", "rear", "left", "right", "interior", "dashboard", "vin_plate")
        ],
        "condition": {
            "grade": 4.0,
            "deductions": [{"code": "flood", "description": "water line in trunk", "points": 2}],
        },
        "valuation": {
            "status": "valued",
            "value_minor": 1_240_000,
            "residual_curve": [0.99**m for m in range(85)],
            **valuation,
        },
        "flags": [
            {"code": "codes_recently_cleared", "severity": "warning", "message": "3 warm-ups"}
        ],
    }
    return AppraisalBody.model_validate(doc)


def test_the_adapter_reads_age_odometer_flags_photos_and_curve() -> None:
    facts = collateral_from_appraisal(appraisal(), as_of=AS_OF)
    assert facts.appraisal_id == "6f1c2a9e-0000-4000-8000-000000000001"
    assert facts.value_minor == 1_240_000
    assert facts.vehicle_age_years == 7
    assert facts.odometer_km == 48_000.0
    # a flood deduction from the checklist counts as a flag; only passed photos count
    assert facts.flags == {"codes_recently_cleared", "flood"}
    more = collateral_from_appraisal(appraisal(), as_of=AS_OF, extra_flags=["duplicate_photo"])
    assert "duplicate_photo" in more.flags
    assert "interior" not in facts.photo_views and "vin_plate" in facts.photo_views
    assert len(facts.residual_curve) == 85
    assert facts.is_valued


@pytest.mark.parametrize(
    "curve", [[1.0, 0.9, 0.0], [1.0, 11.0], [0.99**m for m in range(401)], [1.0, -0.5]]
)
def test_a_residual_curve_the_engine_cannot_use_is_treated_as_missing(curve: list[float]) -> None:
    # The wire takes any finite floats: such a report must still be matched (the residual rule
    # says the curve is missing), never an error that leaves the loan request unmatched.
    facts = collateral_from_appraisal(appraisal(residual_curve=curve), as_of=AS_OF)
    assert facts.residual_curve == () and facts.is_valued


def test_manual_appraisal_is_ineligible_everywhere_with_a_clear_reason() -> None:
    body = appraisal(status="manual_appraisal_required", value_minor=None, reason="unknown trim")
    facts = collateral_from_appraisal(body, as_of=AS_OF)
    assert not facts.is_valued and facts.value_minor is None
    ask = LoanRequest(
        amount_requested_minor=900_000,
        down_payment_minor=150_000,
        term_months=48,
        monthly_income_minor=550_000,
        credit_band=CreditBand.PRIME,
    )
    results = match(facts, ask, load_programs(sample_programs_dir()), as_of=AS_OF)
    assert results and not any(r.eligible for r in results)
    for r in results:
        codes = [o.code for o in r.outcomes]
        assert Code.MANUAL_APPRAISAL_REQUIRED in codes
        assert r.apr_pct is None
    sentence = next(
        o.message for o in results[0].outcomes if o.code is Code.MANUAL_APPRAISAL_REQUIRED
    )
    assert "manual appraisal" in sentence and "unknown trim" in sentence


def test_a_model_year_ahead_of_the_calendar_is_age_zero() -> None:
    body = appraisal()
    newer = body.model_copy(
        update={"vehicle": body.vehicle.model_copy(update={"model_year": 2027})}
    )
    assert collateral_from_appraisal(newer, as_of=AS_OF).vehicle_age_years == 0


def test_requests_need_a_score_or_a_band() -> None:
    with pytest.raises(ValidationError, match="credit_score or credit_band"):
        LoanRequest(amount_requested_minor=1, term_months=12, monthly_income_minor=1)
    band = LoanRequest(
        amount_requested_minor=1, term_months=12, monthly_income_minor=1,
        credit_band=CreditBand.NEAR_PRIME,
    )  # fmt: skip
    assert band.effective_score == 601


def test_public_surface_is_deliberate() -> None:
    exported = set(matching.__all__)
    assert {
        "load_program",
        "load_programs",
        "parse_program",
        "match",
        "match_batch",
        "render_reason",
        "sample_programs_dir",
        "collateral_from_appraisal",
        "CollateralFacts",
        "LoanRequest",
        "LenderProgram",
        "MatchResult",
        "BatchResult",
        "ProgramError",
        "MatchingError",
    } <= exported
    for name in exported:
        assert hasattr(matching, name), name
    public = {n for n in dir(matching) if not n.startswith("_")}
    modules = {
        "amortise", "cli", "engine", "errors", "facts", "loader", "program", "reasons", "results",
        "synthetic",
    }  # fmt: skip
    assert public - exported <= modules


def test_gateway_matching_imports_nothing_from_edge_but_the_protocol() -> None:
    import ast
    from pathlib import Path

    for path in Path(matching.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edge"):
                assert node.module == "edge.protocol", (path.name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("edge") or alias.name == "edge.protocol"
