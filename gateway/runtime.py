"""The gateway process's composition root: broker → database → ingest worker → HTTP.

Started in that order and stopped in reverse. Nothing here runs at import time.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta

import httpx
import uvicorn

from edge.protocol import MqttEndpoint
from gateway.api.app import create_app
from gateway.broker import EmbeddedBroker
from gateway.context import GatewayContext
from gateway.db import WalCheckpointer, make_engine, migrate
from gateway.gc_policy import settle_after_startup
from gateway.ingest.mqtt import TlsFiles
from gateway.ingest.worker import IngestWorker
from gateway.photos import FilesystemPhotoStore
from gateway.services import commands, maintenance, offers, webhooks
from gateway.services.fraud import PhotoIndex
from gateway.services.ingest import IngestOutcome
from gateway.services.sealing import Sealer
from gateway.services.webhook_policy import WebhookPolicy
from gateway.settings import GatewaySettings, Mode

logger = logging.getLogger(__name__)


class PortInUseError(OSError):
    """The HTTP port is taken by another program."""


@dataclass
class _Http:
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket


def bind_http(host: str, port: int, *, next_free: bool) -> socket.socket:
    """Bind the HTTP socket; with ``next_free`` try the following ports when it is taken."""
    last_error: OSError | None = None
    for candidate in range(port, port + (50 if next_free and port else 1)):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            last_error = exc
            if exc.errno != errno.EADDRINUSE:
                break
            continue
        sock.listen(512)
        return sock
    raise PortInUseError(
        f"cannot listen on http://{host}:{port}: {last_error}; set KIOSKMATCH_HTTP_PORT to a free "
        "port (0 lets the system choose)"
    )


class GatewayRuntime:
    def __init__(self, settings: GatewaySettings, *, http_next_free: bool = False) -> None:
        self.settings = settings
        self._http_next_free = http_next_free
        self.broker: EmbeddedBroker | None = None
        self.worker: IngestWorker | None = None
        self.context: GatewayContext | None = None
        self._http: _Http | None = None
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None
        self._webhooks: threading.Thread | None = None
        self._checkpointer: WalCheckpointer | None = None
        self.mqtt_url: str | None = None

    @property
    def http_url(self) -> str:
        if self._http is None:
            raise RuntimeError("the gateway's HTTP server is not running")
        host, port = self._http.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> GatewayRuntime:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if s.mqtt_url:
            self.mqtt_url = s.mqtt_url
        else:
            self.broker = EmbeddedBroker().start()
            self.mqtt_url = self.broker.url
        sqlite = s.resolved_database_url.startswith("sqlite")
        engine = make_engine(s.resolved_database_url, background_checkpoint=sqlite)
        migrate(engine)
        if sqlite:
            self._checkpointer = WalCheckpointer(engine).start()
        self.context = GatewayContext(
            engine=engine,
            sealer=Sealer(s.resolved_secret_key()),
            command_ttl=timedelta(seconds=s.command_ttl_s),
            kiosk_silent_after=timedelta(seconds=s.kiosk_silent_after_s),
            photos=FilesystemPhotoStore(s.photo_dir or s.data_dir / "photos"),
            webhook_policy=WebhookPolicy(
                allow_http=s.webhook_allow_http,
                allow_private_networks=s.webhook_allow_private_networks,
            ),
        )
        if s.mode is Mode.PRODUCTION and (s.webhook_allow_http or s.webhook_allow_private_networks):
            logger.warning(
                "production mode with a relaxed webhook policy (http allowed: %s, private "
                "networks allowed: %s): lenders can have the gateway send matches unencrypted, or "
                "requests to hosts on its own network; unset KIOSKMATCH_WEBHOOK_ALLOW_HTTP and "
                "KIOSKMATCH_WEBHOOK_ALLOW_PRIVATE_NETWORKS unless that is meant",
                s.webhook_allow_http,
                s.webhook_allow_private_networks,
            )
        self.worker = IngestWorker(
            MqttEndpoint.parse(self.mqtt_url),
            session_factory=self.context.session,
            worker_id=s.worker_id,
            shared_group=s.mqtt_shared_group,
            tls=TlsFiles(s.mqtt_ca, s.mqtt_cert, s.mqtt_key),
            after_commit=self._after_commit,
            photo_index=PhotoIndex(),
        )
        self.context.link = self.worker
        self.worker.start()
        self._start_http()
        self._maintenance = threading.Thread(target=self._maintain, name="maintenance", daemon=True)
        self._maintenance.start()
        self._webhooks = threading.Thread(target=self._push_webhooks, name="webhooks", daemon=True)
        self._webhooks.start()
        settle_after_startup()  # the collector's policy for a long-lived server (gc_policy)
        logger.info(
            "gateway up: %s (broker %s)",
            self.http_url,
            MqttEndpoint.parse(self.mqtt_url).redacted(),
        )
        return self

    def _start_http(self) -> None:
        assert self.context is not None
        sock = bind_http(
            self.settings.http_host, self.settings.http_port, next_free=self._http_next_free
        )
        config = uvicorn.Config(
            create_app(self.context), log_level="warning", access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
        )
        thread.start()
        self._http = _Http(server, thread, sock)
        for _ in range(200):
            if server.started:
                return
            thread.join(0.05)
            if not thread.is_alive():
                raise RuntimeError("the HTTP server stopped while starting; see the log above")
        raise RuntimeError("the HTTP server did not start within 10 s")

    def _maintain(self, every_s: float = 3600.0) -> None:
        retention = timedelta(days=self.settings.history_retention_days)
        while not self._stop.is_set():
            context = self.context
            if context is None:
                return
            try:
                with context.session() as session:
                    maintenance.prune(session, retention=retention)
                    # Loan requests a crash left unmatched (between an ingest commit and its
                    # matching): at start, then hourly.
                    offers.match_pending(session, context.sealer)
            except Exception:  # housekeeping must not take the gateway down; it retries later
                logger.exception("housekeeping failed; retrying in %.0f s", every_s)
            self._stop.wait(every_s)

    def _push_webhooks(self, every_s: float = 1.0) -> None:
        """Deliver due webhooks; a failure waits its backoff, the gateway keeps going.

        The client ignores proxy variables from the environment (``trust_env=False``): a proxy
        would resolve the host itself, after the webhook policy checked it. One set as
        ``KIOSKMATCH_WEBHOOK_PROXY`` is used on purpose."""
        proxy = self.settings.webhook_proxy
        with httpx.Client(
            timeout=10.0, follow_redirects=False, trust_env=False, proxy=proxy
        ) as client:
            while not self._stop.is_set():
                context = self.context
                if context is None:
                    return
                try:
                    with context.session() as session:
                        webhooks.deliver_due(
                            session,
                            context.sealer,
                            client,
                            policy=context.webhook_policy,
                            resolver=context.webhook_resolver,
                            pin_addresses=proxy is None,
                        )
                except Exception:  # a broken receiver or database hiccup must not stop delivery
                    logger.exception("webhook delivery round failed; retrying")
                self._stop.wait(every_s)

    def _after_commit(self, outcome: IngestOutcome) -> None:
        assert self.context is not None and self.worker is not None
        with self.context.session() as session:
            for kiosk_id in dict.fromkeys(outcome.kiosks_online):
                commands.deliver(
                    session,
                    kiosk_id=kiosk_id,
                    publish=self.worker.publish,
                    next_seq=self.worker.next_seq,
                )
            offers.match_appraisals(
                session, self.context.sealer, appraisal_ids=outcome.new_appraisals
            )

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._maintenance, self._webhooks):
            if thread is not None:
                thread.join(15)
        self._maintenance = self._webhooks = None
        if self._http is not None:
            self._http.server.should_exit = True
            self._http.thread.join(10)
            self._http.sock.close()
            self._http = None
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self.context is not None:
            self.context.engine.dispose()
            self.context = None

    def __enter__(self) -> GatewayRuntime:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
