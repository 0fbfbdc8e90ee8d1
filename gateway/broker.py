"""An embedded MQTT broker (amqtt) for the demo and single-site installs.

It runs on its own asyncio loop in a daemon thread and listens on 127.0.0.1. The port is chosen by
the operating system (port 0) unless one is given, so it never takes 1883 from another broker.
amqtt has no shared subscriptions, so a gateway on the embedded broker runs one ingest worker.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not start or stop."""


class EmbeddedBroker:
    """Start with :meth:`start` (or ``with``); ``url`` is then ``mqtt://127.0.0.1:PORT``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedBrokerError("the embedded broker is not running")
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_broker())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise EmbeddedBrokerError(f"the embedded broker did not start within {timeout:.0f} s")
        if failure:
            raise EmbeddedBrokerError(f"the embedded broker failed to start: {failure[0]}")
        logger.info("embedded MQTT broker listening on %s", self.url)
        return self

    async def _start_broker(self) -> None:
        from amqtt.broker import Broker

        # Bind a socket ourselves so the port is ours before the broker takes it over.
        port = self._requested_port or _free_port(self.host)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        self._broker = Broker(config)
        await self._broker.start()
        self.port = port

    def stop(self, timeout: float = 10.0) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None or self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
        try:
            future.result(timeout)
        except Exception:  # shutdown errors leave nothing to recover; the thread still ends
            logger.warning("embedded broker did not shut down cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout)
        self._broker = None
        self.port = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
