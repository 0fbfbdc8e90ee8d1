"""The subcommand registrars, one per area, and the small commands that belong to no area."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kioskmatch.cli import Registrar

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _kiosk(sub: SubParsers) -> None:
    from edge.camera.cli import register_kiosk as register_check_photo
    from edge.cli import register_kiosk as register_run
    from edge.obd.cli import register_kiosk as register_read_obd

    kiosk = sub.add_parser("kiosk", help="run the kiosk agent and its tools")
    ksub = kiosk.add_subparsers(dest="kiosk_command", metavar="COMMAND", required=True)
    register_run(ksub)
    register_read_obd(ksub)
    register_check_photo(ksub)


def _config(sub: SubParsers) -> None:
    config = sub.add_parser("config", help="kiosk configuration tools")
    csub = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    validate = csub.add_parser(
        "validate", help="check kiosk configuration files (merged in order, later wins)"
    )
    validate.add_argument("files", nargs="+", type=Path)
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(func=_config_validate)
    schema = csub.add_parser("schema", help="print the kiosk configuration's JSON Schema")
    schema.set_defaults(func=_config_schema)


def _config_validate(args: argparse.Namespace) -> int:
    from firmware_config import ConfigError, load_config

    try:
        config = load_config(args.files)
    except ConfigError as exc:
        if args.json:
            print(
                json.dumps(
                    {
                        "valid": False,
                        "issues": [i.__dict__ | {"value": repr(i.value)} for i in exc.issues],
                    }
                )
            )
        else:
            for issue in exc.issues:
                print(f"error: {issue}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"valid": True, "kiosk_id": config.kiosk_id}))
    else:
        print(f"ok: {', '.join(map(str, args.files))} (kiosk {config.kiosk_id})")
    return 0


def _config_schema(_args: argparse.Namespace) -> int:
    from firmware_config import KioskConfig

    print(json.dumps(KioskConfig.model_json_schema(), indent=2))
    return 0


def _protocol(sub: SubParsers) -> None:
    protocol = sub.add_parser("protocol", help="the kiosk-gateway wire contract")
    psub = protocol.add_subparsers(dest="protocol_command", metavar="COMMAND", required=True)
    docs = psub.add_parser("docs", help="print docs/protocol.md (generated from the models)")
    docs.set_defaults(func=lambda _a: (print(_protocol_markdown(), end=""), 0)[1])
    schema = psub.add_parser("schema", help="print the JSON Schema of every message")
    schema.set_defaults(func=lambda _a: (print(json.dumps(_json_schemas(), indent=2)), 0)[1])


def _protocol_markdown() -> str:
    from edge.protocol import protocol_markdown

    return protocol_markdown()


def _json_schemas() -> object:
    from edge.protocol import json_schemas

    return json_schemas()


def _gateway(sub: SubParsers) -> None:
    from gateway.cli import register

    register(sub)


def _demo(sub: SubParsers) -> None:
    from kioskmatch.demo import register

    register(sub)


def _valuation(sub: SubParsers) -> None:
    from edge.inference.cli import register

    register(sub)


def _obd_tools(sub: SubParsers) -> None:
    from edge.obd.cli import register

    register(sub)


def _programs(sub: SubParsers) -> None:
    from gateway.matching.cli import register

    register(sub)


def _simulate(sub: SubParsers) -> None:
    from kioskmatch.simulate import register

    register(sub)


REGISTRARS: list[Registrar] = [
    _demo,
    _gateway,
    _kiosk,
    _valuation,
    _simulate,
    _programs,
    _obd_tools,
    _config,
    _protocol,
]
