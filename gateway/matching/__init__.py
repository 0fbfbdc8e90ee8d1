"""Lender programs and the matching engine (pure: no IO beyond reading program files).

Load programs with :func:`load_programs` (or :func:`parse_program` for uploaded text), turn an
appraisal into :class:`CollateralFacts` with :func:`collateral_from_appraisal`, and call
:func:`match` for one appraisal (full explanation, optional LTV curve) or :func:`match_batch` for
many (arrays, vectorised). Compile programs once with :func:`compile_programs` when matching
repeatedly against the same set.

Errors (see :mod:`gateway.matching.errors`)::

    MatchingError
    ├── ProgramError          file, line, field, value and fix of every problem
    │   └── ProgramSetError   valid programs that clash (duplicate program_id)
    └── MatchInputError       inputs the engine cannot evaluate
"""

from gateway.matching.amortise import Installment, amortisation_schedule, monthly_payment_minor
from gateway.matching.engine import (
    DEFAULT_CHUNK_PAIRS,
    ProgramSet,
    compile_programs,
    match,
    match_batch,
)
from gateway.matching.errors import (
    MatchingError,
    MatchInputError,
    ProgramError,
    ProgramIssue,
    ProgramSetError,
)
from gateway.matching.facts import (
    CollateralFacts,
    CreditBand,
    LoanRequest,
    collateral_from_appraisal,
)
from gateway.matching.loader import load_program, load_programs, parse_program, sample_programs_dir
from gateway.matching.program import (
    LenderKind,
    LenderProgram,
    LoanKind,
    PhotoView,
    ScoreModel,
    VehicleFlag,
)
from gateway.matching.reasons import BIT, FAIL_MASK, Code, Rule, Status, codes_in, render_reason
from gateway.matching.results import (
    AprSpread,
    BatchResult,
    LtvCurve,
    MatchResult,
    RuleOutcome,
    apr_spread,
)

__all__ = [
    "BIT",
    "DEFAULT_CHUNK_PAIRS",
    "FAIL_MASK",
    "AprSpread",
    "BatchResult",
    "Code",
    "CollateralFacts",
    "CreditBand",
    "Installment",
    "LenderKind",
    "LenderProgram",
    "LoanKind",
    "LoanRequest",
    "LtvCurve",
    "MatchInputError",
    "MatchResult",
    "MatchingError",
    "PhotoView",
    "ProgramError",
    "ProgramIssue",
    "ProgramSet",
    "ProgramSetError",
    "Rule",
    "RuleOutcome",
    "ScoreModel",
    "Status",
    "VehicleFlag",
    "amortisation_schedule",
    "apr_spread",
    "codes_in",
    "collateral_from_appraisal",
    "compile_programs",
    "load_program",
    "load_programs",
    "match",
    "match_batch",
    "monthly_payment_minor",
    "parse_program",
    "render_reason",
    "sample_programs_dir",
]
