"""``kioskmatch kiosk run``: the kiosk agent until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware_config import KioskConfig


def register_kiosk(ksub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = ksub.add_parser(
        "run",
        help="run the kiosk agent",
        description="Reads the configuration (defaults, then each --config file in order), "
        "connects to the broker and waits for the gateway's commands.",
    )
    run.add_argument("--config", type=Path, action="append", required=True, help="YAML file(s)")
    run.add_argument(
        "--appraise-now", action="store_true", help="run one appraisal at start (bench testing)"
    )
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edge.adapters import build_agent
    from edge.obd import ObdError
    from edge.outbox import OutboxError, OutboxInUseError
    from firmware_config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return 2
    problem = _missing_files(config)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        agent = build_agent(config)
    except OutboxInUseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:
        print(
            f"error: cannot open the outbox {config.outbox.path} ({exc}). Check outbox.path"
            " names a file in a folder this user can write; if another kiosk agent is running"
            " on it, stop that one first; if the file is damaged, move it aside (keep it: it"
            " may hold appraisals not yet delivered) and start again",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"error: the kiosk agent cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(*_: object) -> None:
        stop.set()
        agent.request_stop()  # an appraisal waiting for a failing outbox gives up

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    agent.start(wait_s=None)
    try:
        if args.appraise_now:
            try:
                agent.appraise()
            except ObdError as exc:
                # An unreachable device is exit 2 (DESIGN.md), said in a sentence that names the
                # port and what to check.
                print(f"error: the appraisal could not read the vehicle: {exc}", file=sys.stderr)
                return 2
            except OutboxError as exc:
                print(f"error: the appraisal could not be queued: {exc}", file=sys.stderr)
                return 1
        stop.wait()
    finally:
        agent.stop()
    return 0


def _missing_files(config: KioskConfig) -> str | None:
    """The first TLS file the configuration names that is not there (paho's own error would
    not say which one), or None."""
    files = {"mqtt.ca": config.mqtt.ca, "mqtt.cert": config.mqtt.cert, "mqtt.key": config.mqtt.key}
    if config.gateway is not None:
        files["gateway.ca"] = config.gateway.ca
    for key, path in files.items():
        if path is not None and not path.is_file():
            return (
                f"{key}: {path} is not a readable file (relative paths start from"
                f" {Path.cwd()}); fix the path in the configuration"
            )
    return None
