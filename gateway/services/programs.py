"""Lender programs in the database: stored as validated documents, one row per version."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from sqlmodel import Session, col, select

from gateway.db.models import LenderProgramRow
from gateway.matching import LenderProgram, load_program, parse_program

PROGRAM_SUFFIXES = (".yaml", ".yml", ".json")


def collect_program_files(paths: Iterable[Path]) -> list[Path]:
    """The program files among ``paths``, folders expanded, in a stable order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in PROGRAM_SUFFIXES))
        else:
            out.append(path)
    return out


def store_program(session: Session, program: LenderProgram, *, lender_org: str) -> LenderProgramRow:
    """Store ``program`` for ``lender_org``; it replaces older active versions of the same id."""
    older = session.exec(
        select(LenderProgramRow).where(
            LenderProgramRow.lender_org == lender_org,
            LenderProgramRow.program_id == program.program_id,
            LenderProgramRow.active == True,  # noqa: E712  (SQL expression)
        )
    ).all()
    for row in older:
        row.active = False
    row = LenderProgramRow(
        lender_org=lender_org,
        program_id=program.program_id,
        version=str(program.version),
        active=True,
        document=program.model_dump(mode="json"),
        uploaded_at=datetime.now(UTC),
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def store_program_file(session: Session, path: Path, *, lender_org: str | None) -> LenderProgramRow:
    program = load_program(path)
    return store_program(session, program, lender_org=lender_org or program.lender)


def store_program_text(
    session: Session, text: str, *, source_name: str, lender_org: str
) -> LenderProgramRow:
    program = parse_program(text, source_name=source_name)
    return store_program(session, program, lender_org=lender_org)


def active_programs(
    session: Session, *, on: date, lender_org: str | None = None
) -> list[tuple[LenderProgramRow, LenderProgram]]:
    """Active programs in force on ``on``, with their rows (whose org is the lender of record)."""
    query = select(LenderProgramRow).where(LenderProgramRow.active == True)  # noqa: E712
    if lender_org is not None:
        query = query.where(LenderProgramRow.lender_org == lender_org)
    rows: Sequence[LenderProgramRow] = session.exec(query.order_by(col(LenderProgramRow.id))).all()
    out = []
    for row in rows:
        program = LenderProgram.model_validate(row.document)
        if program.is_effective(on):
            out.append((row, program))
    return out
