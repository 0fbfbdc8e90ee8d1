"""``kioskmatch gateway ...`` subcommands."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gateway = sub.add_parser("gateway", help="run and administer the cloud gateway")
    gsub = gateway.add_subparsers(dest="gateway_command", metavar="COMMAND", required=True)

    serve = gsub.add_parser(
        "serve",
        help="run the HTTP API and the MQTT ingest worker",
        description="Configured by KIOSKMATCH_MQTT_URL, KIOSKMATCH_DATABASE_URL, "
        "KIOSKMATCH_HTTP_HOST/PORT and the other KIOSKMATCH_* settings (see README).",
    )
    serve.set_defaults(func=_serve)

    key = gsub.add_parser("create-key", help="create an API key; the key is the last line printed")
    key.add_argument("--role", required=True, choices=["dealer", "lender", "ops", "kiosk"])
    key.add_argument("--org", required=True, help="the organisation the key acts for")
    key.add_argument("--json", action="store_true", help="print JSON (the key is in 'key')")
    key.set_defaults(func=_create_key)

    revoke = gsub.add_parser(
        "revoke-key", help="revoke an API key (it stops working within 10 s on running gateways)"
    )
    revoke.add_argument("--prefix", required=True, help="the key's first 10 characters")
    revoke.set_defaults(func=_revoke_key)

    assign = gsub.add_parser(
        "assign-kiosk",
        help="give a kiosk to a dealer: only that dealer's keys may then start appraisals on it",
    )
    assign.add_argument("--kiosk", required=True, help="the kiosk id, e.g. dlr-042-k1")
    who = assign.add_mutually_exclusive_group(required=True)
    who.add_argument("--dealer", help="the dealer organisation, as in its API keys")
    who.add_argument("--any-dealer", action="store_true", help="let every dealer use it again")
    assign.set_defaults(func=_assign_kiosk)

    programs = gsub.add_parser("load-programs", help="store lender programs from YAML/JSON files")
    programs.add_argument("paths", nargs="+", help="program files or folders of them")
    programs.add_argument("--lender", help="the lender organisation; default: each program's own")
    programs.set_defaults(func=_load_programs)


def _settings() -> Any:
    from gateway.settings import GatewaySettings

    try:
        return GatewaySettings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "KIOSKMATCH_" + "_".join(str(p) for p in err["loc"]).upper()
            message = err["msg"].removeprefix("Value error, ")  # pydantic's prefix says nothing
            print(f"error: {name}: {message}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    from gateway.db import DatabaseUnavailableError
    from gateway.ingest.mqtt import BrokerUnavailableError
    from gateway.runtime import GatewayRuntime, PortInUseError

    settings = _settings()
    if settings is None:
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runtime = GatewayRuntime(settings)
    try:
        runtime.start()
    except (BrokerUnavailableError, DatabaseUnavailableError, PortInUseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        runtime.stop()
        return 2
    print(
        f"kioskmatch gateway serving on {runtime.http_url}, MQTT broker {runtime.mqtt_url} "
        "(Ctrl-C stops)",
        file=sys.stderr,
    )
    # Start-up objects live as long as the process: keep them out of every GC pass (latency).
    gc.freeze()
    try:
        stop.wait()
    finally:
        runtime.stop()
    return 0


def _open_db() -> Any:
    from sqlmodel import Session

    from gateway.db import DatabaseUnavailableError, make_engine, migrate

    settings = _settings()
    if settings is None:
        return None
    try:
        engine = make_engine(settings.resolved_database_url)
        migrate(engine)
    except DatabaseUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return Session(engine)


def _in_db(action: Callable[[Any], None]) -> int:
    """Run ``action`` with a database session: exit 0, or 2 with the reason when the database
    cannot be used or the input is refused."""
    from gateway.errors import InvalidRequestError

    session = _open_db()
    if session is None:
        return 2
    with session:
        try:
            action(session)
        except InvalidRequestError as exc:
            print(f"error: {exc.detail}", file=sys.stderr)
            return 2
    return 0


def _create_key(args: argparse.Namespace) -> int:
    from gateway.services.keys import Role, create_key

    def create(session: Any) -> None:
        token, row = create_key(session, role=Role(args.role), org=args.org)
        if args.json:
            print(
                json.dumps({"role": row.role, "org": row.org, "prefix": row.prefix, "key": token})
            )
        else:
            print(
                f"created a {row.role} key for {row.org!r}; it is shown only once:", file=sys.stderr
            )
            print(token)

    return _in_db(create)


def _revoke_key(args: argparse.Namespace) -> int:
    from gateway.services.keys import revoke_key

    def revoke(session: Any) -> None:
        row = revoke_key(session, prefix=args.prefix)
        print(f"revoked the {row.role} key {row.prefix}... of {row.org!r}")

    return _in_db(revoke)


def _assign_kiosk(args: argparse.Namespace) -> int:
    from gateway.services.ops import assign_kiosk

    def assign(session: Any) -> None:
        kiosk = assign_kiosk(session, kiosk_id=args.kiosk, dealer_org=args.dealer)
        whom = "any dealer" if kiosk.dealer_org is None else f"only {kiosk.dealer_org!r}"
        print(f"kiosk {kiosk.kiosk_id} now serves {whom}")

    return _in_db(assign)


def _load_programs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.errors import ConflictError
    from gateway.matching import ProgramError
    from gateway.services.programs import collect_program_files, store_program_file

    session = _open_db()
    if session is None:
        return 2
    failures = 0
    with session:
        for path in collect_program_files([Path(p) for p in args.paths]):
            try:
                row = store_program_file(session, path, lender_org=args.lender)
            except ProgramError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failures += 1
                continue
            except ConflictError as exc:
                print(f"error: {path}: {exc}", file=sys.stderr)
                failures += 1
                continue
            print(f"stored {row.program_id} v{row.version} for {row.lender_org} from {path}")
    return 2 if failures else 0
