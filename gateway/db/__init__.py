"""Storage: SQLModel tables, engine set-up and Alembic migrations (SQLite WAL or PostgreSQL)."""

from gateway.db.engine import DatabaseUnavailableError, WalCheckpointer, make_engine, migrate
from gateway.db.models import (
    ApiKey,
    Appraisal,
    AppraisalRequest,
    CommandRow,
    DeadLetter,
    IdempotencyKey,
    InboundMessage,
    Kiosk,
    LenderProgramRow,
    LoanRequestRow,
    MatchRow,
)

__all__ = [
    "ApiKey",
    "Appraisal",
    "AppraisalRequest",
    "CommandRow",
    "DatabaseUnavailableError",
    "DeadLetter",
    "IdempotencyKey",
    "InboundMessage",
    "Kiosk",
    "LenderProgramRow",
    "LoanRequestRow",
    "MatchRow",
    "WalCheckpointer",
    "make_engine",
    "migrate",
]
