"""``kioskmatch kiosk run``: the kiosk agent until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


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
    from firmware_config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    agent = build_agent(config)
    agent.start(wait_s=None)
    try:
        if args.appraise_now:
            agent.appraise()
        stop.wait()
    finally:
        agent.stop()
    return 0
