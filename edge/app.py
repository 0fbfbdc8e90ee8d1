"""The kiosk agent's composition root: outbox → uplink → heartbeat, stopped in reverse.

Commands from the gateway arrive on the uplink; each is applied once (its ``command_id`` is
claimed in the outbox database), refused after its ``expires_at``, and answered with events.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from edge.inspection import InspectionState, PhotoTaker, Valuer, VehicleReader, run_inspection
from edge.outbox import OutboxFullError, SqliteOutbox
from edge.protocol import (
    AppraisalBody,
    Channel,
    CommandBody,
    CommandKind,
    Envelope,
    EventBody,
    EventKind,
    MqttEndpoint,
    TelemetryBody,
    new_id,
)
from edge.uplink import MqttUplink, PhotoUploader
from firmware_config import KioskConfig
from kioskmatch import __version__

logger = logging.getLogger(__name__)


class KioskAgent:
    def __init__(
        self,
        config: KioskConfig,
        *,
        reader: VehicleReader,
        valuer: Valuer,
        photos: PhotoTaker | None = None,
        adapter_state: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.config = config
        self._reader = reader
        self._valuer = valuer
        self._photos = photos
        self._adapter_state = adapter_state
        self._started_at = time.monotonic()
        self._stop = threading.Event()
        self._inspection_lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self.outbox = SqliteOutbox(
            config.outbox.path,
            kiosk_id=config.kiosk_id,
            max_bytes=config.outbox.max_bytes,
            max_age_s=config.outbox.max_age_s,
            resend_after_s=config.outbox.resend_after_s,
        )
        self.uplink = MqttUplink(
            MqttEndpoint.parse(config.mqtt.url),
            kiosk_id=config.kiosk_id,
            outbox=self.outbox,
            on_command=self.handle_command,
            agent_version=__version__,
            ca=config.mqtt.ca,
            cert=config.mqtt.cert,
            key=config.mqtt.key,
            keepalive=config.mqtt.keepalive_s,
        )
        self._uploader: PhotoUploader | None = None
        self.completed: list[AppraisalBody] = []
        self._completed_cv = threading.Condition()

    def attach_photos(self, photos: PhotoTaker, uploader: PhotoUploader) -> None:
        """Take photos in every inspection and upload them (before :meth:`start`)."""
        self._photos = photos
        self._uploader = uploader

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, *, wait_s: float | None = 15.0) -> None:
        self.uplink.start(wait_s=wait_s)
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="heartbeat", daemon=True
        )
        self._heartbeat.start()
        if self._uploader is not None:
            self._uploader.start()
        logger.info("kiosk %s started (outbox %s)", self.config.kiosk_id, self.config.outbox.path)

    def stop(self) -> None:
        self._stop.set()
        if self._uploader is not None:
            self._uploader.stop()
        if self._heartbeat is not None:
            self._heartbeat.join(5)
        self.uplink.stop()
        self.outbox.close()
        logger.info("kiosk %s stopped", self.config.kiosk_id)

    # -- work ----------------------------------------------------------------------------------

    def _queue(self, channel: Channel, body: Any) -> str:
        try:
            item = self.outbox.put(channel, body)
        except OutboxFullError:
            logger.critical("the outbox cannot grow: free disk space on this kiosk")
            raise
        self.uplink.kick()
        return item.message_id

    def appraise(
        self,
        *,
        appraisal_id: str | None = None,
        hints: dict[str, Any] | None = None,
        command_id: str | None = None,
    ) -> AppraisalBody:
        """Run one inspection and queue its appraisal (sent, and resent, until receipted)."""
        appraisal_id = appraisal_id or new_id()

        def progress(state: InspectionState) -> None:
            logger.info("appraisal %s: %s", appraisal_id, state.value)
            self._queue(
                Channel.EVENTS,
                EventBody(
                    kind=EventKind.INSPECTION_PROGRESS,
                    appraisal_id=appraisal_id,
                    command_id=command_id,
                    state=state.value,
                ),
            )

        def prompted(view: str, text: str) -> None:
            # Dealers and ops see what the inspector is asked (and why a retake is needed).
            self._queue(
                Channel.EVENTS,
                EventBody(
                    kind=EventKind.INSPECTION_PROGRESS,
                    appraisal_id=appraisal_id,
                    command_id=command_id,
                    state=f"photo:{view}",
                    detail=text,
                ),
            )

        with self._inspection_lock:
            body = run_inspection(
                appraisal_id=appraisal_id,
                reader=self._reader,
                valuer=self._valuer,
                hints=hints or {},
                photos=self._photos,
                command_id=command_id,
                on_state=progress,
                on_prompt=prompted,
            )
            self._queue(Channel.APPRAISALS, body)
        if self._uploader is not None:
            self._uploader.kick()
        with self._completed_cv:
            self.completed.append(body)
            self._completed_cv.notify_all()
        return body

    def handle_command(self, envelope: Envelope[CommandBody]) -> None:
        command = envelope.body
        if command.expires_at <= datetime.now(UTC):
            logger.warning(
                "ignoring command %s: it expired at %s", command.command_id, command.expires_at
            )
            self._event(EventKind.COMMAND_REJECTED, command, "expired before it arrived")
            return
        if not self.outbox.claim_command(command.command_id):
            logger.info("command %s was already applied; acknowledging again", command.command_id)
            self._event(EventKind.COMMAND_ACCEPTED, command, "already applied")
            return
        if command.kind is not CommandKind.START_APPRAISAL:
            self._event(
                EventKind.COMMAND_REJECTED, command, f"{command.kind.value} is not supported yet"
            )
            return
        self._event(EventKind.COMMAND_ACCEPTED, command, None)
        params = command.params
        try:
            body = self.appraise(
                appraisal_id=str(params.get("appraisal_id") or new_id()),
                hints=dict(params.get("vehicle") or {}),
                command_id=command.command_id,
            )
        except Exception as exc:  # reported to the gateway; the kiosk keeps running
            logger.exception("appraisal for command %s failed", command.command_id)
            self._event(EventKind.COMMAND_FAILED, command, str(exc)[:500])
            return
        self._event(EventKind.COMMAND_DONE, command, f"appraisal {body.appraisal_id} queued")

    def _event(self, kind: EventKind, command: CommandBody, detail: str | None) -> None:
        appraisal_id = command.params.get("appraisal_id")
        self._queue(
            Channel.EVENTS,
            EventBody(
                kind=kind,
                command_id=command.command_id,
                appraisal_id=str(appraisal_id) if appraisal_id else None,
                detail=detail,
            ),
        )

    def wait_for_appraisals(self, count: int, timeout: float) -> bool:
        with self._completed_cv:
            return self._completed_cv.wait_for(lambda: len(self.completed) >= count, timeout)

    def wait_until_drained(self, timeout: float) -> bool:
        """True once every queued message has its receipt."""
        deadline = time.monotonic() + timeout
        with self.uplink.receipted:
            while self.outbox.depth() > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.uplink.receipted.wait(min(remaining, 0.5))
        return True

    # -- telemetry -----------------------------------------------------------------------------

    def telemetry(self) -> TelemetryBody:
        try:
            import psutil

            cpu = psutil.cpu_percent(interval=None)
            memory = psutil.virtual_memory().percent
            temps: dict[str, Any] = getattr(psutil, "sensors_temperatures", dict)()
            temperature = next((t.current for entries in temps.values() for t in entries), None)
        except ImportError:
            cpu = memory = temperature = None
        disk = shutil.disk_usage(self.config.outbox.path.parent)
        return TelemetryBody(
            uptime_s=time.monotonic() - self._started_at,
            cpu_percent=cpu,
            memory_percent=memory,
            disk_free_bytes=disk.free,
            temperature_c=temperature,
            outbox_depth=self.outbox.depth(),
            outbox_oldest_age_s=self.outbox.oldest_age_s(),
            disk_alarm=self.outbox.disk_alarm or disk.free < 50_000_000,
            model_versions=self._valuer.versions,
            config_version=self.config.config_version,
            obd_adapter_state=self._adapter_state(),
            agent_version=__version__,
        )

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._queue(Channel.TELEMETRY, self.telemetry())
            except Exception:  # a heartbeat must never take the kiosk down
                logger.exception("could not queue a heartbeat")
            self._stop.wait(self.config.heartbeat_s)
