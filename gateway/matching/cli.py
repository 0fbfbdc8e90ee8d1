"""``kioskmatch programs validate|schema``: check lender program files without a gateway.

Exit status: 0 every file is valid, 1 at least one is not (each problem printed with its file,
line, field, value and fix), 2 a path does not exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.matching.errors import ProgramError
from gateway.matching.loader import PROGRAM_SUFFIXES, load_program
from gateway.matching.program import LenderProgram


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``programs`` command and its subcommands."""
    programs = sub.add_parser("programs", help="lender program tools")
    psub = programs.add_subparsers(dest="programs_command", metavar="COMMAND", required=True)
    validate = psub.add_parser(
        "validate", help="check lender program files (YAML/JSON) or folders of them"
    )
    validate.add_argument("paths", nargs="+", type=Path)
    validate.add_argument("--json", action="store_true", help="one JSON report on stdout")
    validate.set_defaults(func=_validate)
    schema = psub.add_parser("schema", help="print the lender program JSON Schema")
    schema.set_defaults(func=_schema)


def _files(paths: list[Path]) -> list[Path] | None:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in PROGRAM_SUFFIXES))
        elif path.exists():
            out.append(path)
        else:
            sys.stderr.write(f"error: {path} does not exist\n")
            return None
    return out


def _validate(args: argparse.Namespace) -> int:
    files = _files(args.paths)
    if files is None:
        return 2
    report: list[dict[str, Any]] = []
    ok = True
    for path in files:
        try:
            program = load_program(path)
        except ProgramError as exc:
            ok = False
            report.append(
                {
                    "file": str(path),
                    "valid": False,
                    "issues": [
                        {
                            "line": i.line,
                            "column": i.column,
                            "field": i.field,
                            "message": i.message,
                            "value": repr(i.value) if i.value is not None else None,
                            "fix": i.fix,
                        }
                        for i in exc.issues
                    ],
                }
            )
            if not args.json:
                for issue in exc.issues:
                    sys.stderr.write(f"error: {issue}\n")
            continue
        report.append(
            {"file": str(path), "valid": True, "program_id": program.program_id,
             "version": program.version}
        )  # fmt: skip
        if not args.json:
            sys.stdout.write(f"ok: {path} ({program.program_id} v{program.version})\n")
    if args.json:
        sys.stdout.write(json.dumps({"valid": ok, "files": report}) + "\n")
    return 0 if ok else 1


def _schema(_args: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(LenderProgram.model_json_schema(), indent=2) + "\n")
    return 0
