"""Lender programs in the database: stored as validated documents, one row per version."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from gateway.db.models import LenderProgramRow
from gateway.errors import ConflictError
from gateway.matching import (
    LenderProgram,
    ProgramSet,
    compile_programs,
    load_program,
    parse_program,
)

logger = logging.getLogger(__name__)

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
    """Store a new version of a lender's program (an identical copy of a stored one is a no-op).

    Versions only go up: a version lower than one already stored, or a stored version with
    different content, is refused (:class:`ConflictError`), so a lender's versions always mean
    one document each. Several versions may be active at once (a rate sheet is often published
    before the day it takes effect): on any day the highest version in force applies (see
    :func:`active_programs`). An older version the new one covers for the rest of its days is
    retired (``active`` false).

    A ``program_id`` belongs to the lender that first stored it: matches are attributed to
    lenders by program id, so another lender's program under the same id is refused rather than
    taking over or clashing with the owner's.
    """
    owner = session.exec(
        select(LenderProgramRow.lender_org)
        .where(
            LenderProgramRow.program_id == program.program_id,
            LenderProgramRow.lender_org != lender_org,
        )
        .limit(1)
    ).first()
    if owner is not None:
        raise ConflictError(
            f"program_id {program.program_id!r} is already used by another lender; "
            "choose a program_id of your own (e.g. prefixed with your name)"
        )
    stored = session.exec(
        select(LenderProgramRow).where(
            LenderProgramRow.lender_org == lender_org,
            LenderProgramRow.program_id == program.program_id,
        )
    ).all()
    document = program.model_dump(mode="json")
    for row in stored:
        if int(row.version) != program.version:
            continue
        if _same_document(row.document, document):
            return row
        raise ConflictError(
            f"version {program.version} of program {program.program_id!r} is already stored "
            "with other content; give the changed program a higher version"
        )
    newest = max((int(r.version) for r in stored), default=0)
    if program.version < newest:
        raise ConflictError(
            f"version {program.version} of program {program.program_id!r} is older than the "
            f"stored version {newest}; give the program a version above {newest}"
        )
    today = datetime.now(UTC).date()
    for row in stored:
        if row.active and _covers(program, LenderProgram.model_validate(row.document), today):
            row.active = False
            session.add(row)
    row = LenderProgramRow(
        lender_org=lender_org,
        program_id=program.program_id,
        version=str(program.version),
        active=True,
        document=document,
        uploaded_at=datetime.now(UTC),
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def _covers(new: LenderProgram, old: LenderProgram, today: date) -> bool:
    """Whether ``new`` is in force on every remaining day of ``old`` (from today on)."""
    starts = max(old.effective_from, today)
    if new.effective_from > starts:
        return False
    if new.effective_to is None:
        return True
    return old.effective_to is not None and new.effective_to >= old.effective_to


def is_stored(session: Session, program: LenderProgram, *, lender_org: str) -> bool:
    """Whether this very version, with this content, is stored for ``lender_org`` already."""
    rows = session.exec(
        select(LenderProgramRow.document).where(
            LenderProgramRow.lender_org == lender_org,
            LenderProgramRow.program_id == program.program_id,
            LenderProgramRow.version == str(program.version),
        )
    ).all()
    document = program.model_dump(mode="json")
    return any(_same_document(stored, document) for stored in rows)


def _same_document(stored: Mapping[str, Any], document: dict[str, Any]) -> bool:
    """Whether a stored program is ``document``, read through today's model (a field added
    since it was stored, with its default, is no difference)."""
    if stored == document:
        return True
    try:
        return LenderProgram.model_validate(stored).model_dump(mode="json") == document
    except ValueError:
        return False


def store_program_file(session: Session, path: Path, *, lender_org: str | None) -> LenderProgramRow:
    program = load_program(path)
    return store_program(session, program, lender_org=lender_org or program.lender)


def store_program_text(
    session: Session, text: str, *, source_name: str, lender_org: str
) -> LenderProgramRow:
    program = parse_program(text, source_name=source_name)
    return store_program(session, program, lender_org=lender_org)


@dataclass(frozen=True)
class ActivePrograms:
    """The programs in force, compiled once for the engine, and each one's lender of record."""

    rows: tuple[LenderProgramRow, ...]
    programs: tuple[LenderProgram, ...]
    compiled: ProgramSet
    org_of: dict[str, str]


_cache: dict[tuple[date, str | None, tuple[int, ...]], ActivePrograms] = {}
_cache_lock = threading.Lock()


def active_programs(session: Session, *, on: date, lender_org: str | None = None) -> ActivePrograms:
    """Active programs in force on ``on``, compiled (cached until a program changes)."""
    query = select(LenderProgramRow).where(LenderProgramRow.active == True)  # noqa: E712
    if lender_org is not None:
        query = query.where(LenderProgramRow.lender_org == lender_org)
    rows: Sequence[LenderProgramRow] = session.exec(query.order_by(col(LenderProgramRow.id))).all()
    key = (on, lender_org, tuple(r.id or 0 for r in rows))
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    in_force: dict[str, tuple[LenderProgramRow, LenderProgram]] = {}
    owners: dict[str, str] = {}
    for row in rows:
        program = LenderProgram.model_validate(row.document)
        if not program.is_effective(on):
            continue
        if owners.setdefault(program.program_id, row.lender_org) != row.lender_org:
            # Stored before store_program refused such clashes: the first owner keeps the id,
            # and nobody's matching stops over it.
            logger.error(
                "program %s of lender %s is skipped: lender %s already has a program with that "
                "id; give it another program_id and upload it again",
                program.program_id,
                row.lender_org,
                owners[program.program_id],
            )
            continue
        # Of a program's versions in force that day, the highest applies.
        current = in_force.get(program.program_id)
        if current is None or program.version > current[1].version:
            in_force[program.program_id] = (row, program)
    chosen = sorted(in_force.values(), key=lambda pair: pair[0].id or 0)
    result = ActivePrograms(
        rows=tuple(r for r, _ in chosen),
        programs=tuple(p for _, p in chosen),
        compiled=compile_programs([p for _, p in chosen]),
        org_of={p.program_id: r.lender_org for r, p in chosen},
    )
    with _cache_lock:
        _cache.clear()  # one entry: the set in force changes rarely
        _cache[key] = result
    return result
