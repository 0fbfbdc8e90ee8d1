"""The kiosk agent's composition root: outbox → uplink → heartbeat, stopped in reverse.

Commands from the gateway arrive on the uplink; each is refused after its ``expires_at``, applied
once, and answered with events. Its ``command_id`` is recorded as running in the outbox's command
ledger before the work starts, and its outcome (done, failed, rejected) in the same transaction
as the event that reports it. A command still running when the agent starts was cut short by a
crash or a power cut: it is reported ``command_failed`` ("the kiosk restarted during the
inspection"; the inspector starts again, DESIGN.md's "applies a command_id once"), or
``command_done`` if its appraisal had been queued before the cut. The same command delivered
again is answered with its recorded outcome.

An outbox that fails (disk full, read-only, damaged) stops nothing for good: a finished appraisal
and a command's outcome wait in memory and are stored once the outbox works again (the disk alarm
is up meanwhile); progress events that cannot be stored are skipped.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from edge.inspection import InspectionState, PhotoTaker, Valuer, VehicleReader, run_inspection
from edge.outbox import CommandState, OutboxStorageError, SqliteOutbox
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
from edge.uplink import MqttUplink, PhotoUploader, UplinkHealth
from firmware_config import KioskConfig
from kioskmatch import __version__

logger = logging.getLogger(__name__)

T = TypeVar("T")

PERSIST_RETRY_MIN_S = 0.5  # first wait when the outbox refuses something that must be kept
PERSIST_RETRY_MAX_S = 30.0
RESTARTED = "the kiosk restarted during the inspection; start the appraisal again"


@dataclass(frozen=True)
class AgentHealth:
    """What works on this kiosk right now."""

    uplink: UplinkHealth
    heartbeat_thread: bool
    disk_alarm: bool  # the outbox is over budget or its storage fails (see ``outbox_fault``)
    outbox_fault: str | None

    @property
    def ok(self) -> bool:
        return self.uplink.ok and self.heartbeat_thread and not self.disk_alarm


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
        self._commands_lock = threading.Lock()
        self._running_commands: set[str] = set()  # claimed by this process and not finished
        self._recovered = False  # commands a previous run left running have been reported
        # (depth, oldest age): what telemetry reports while the outbox cannot be read
        self._last_depth: tuple[int, float | None] = (0, None)

    def attach_photos(self, photos: PhotoTaker, uploader: PhotoUploader) -> None:
        """Take photos in every inspection and upload them (before :meth:`start`)."""
        self._photos = photos
        self._uploader = uploader

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, *, wait_s: float | None = 15.0) -> None:
        self.recover_interrupted_commands()  # before new commands can arrive
        self.uplink.start(wait_s=wait_s)
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="heartbeat", daemon=True
        )
        self._heartbeat.start()
        if self._uploader is not None:
            self._uploader.start()
        logger.info("kiosk %s started (outbox %s)", self.config.kiosk_id, self.config.outbox.path)

    def request_stop(self) -> None:
        """Make waiting work give up (a signal handler may call this; :meth:`stop` follows)."""
        self._stop.set()

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

    def health(self) -> AgentHealth:
        return AgentHealth(
            uplink=self.uplink.health(),
            heartbeat_thread=self._heartbeat is not None and self._heartbeat.is_alive(),
            disk_alarm=self.outbox.disk_alarm,
            outbox_fault=self.outbox.fault,
        )

    def _queue(self, channel: Channel, body: Any) -> str:
        """Store a message (raises :class:`OutboxStorageError`, which the outbox logged)."""
        item = self.outbox.put(channel, body)
        self.uplink.kick()
        return item.message_id

    def _persist(
        self, what: str, action: Callable[[], T], *, give_up: Callable[[], bool] = lambda: False
    ) -> T:
        """``action()`` until the outbox takes it, backing off while the outbox fails; raises
        the last error once the agent stops or ``give_up()`` says so (one attempt at least)."""
        delay = PERSIST_RETRY_MIN_S
        waited = False
        while True:
            try:
                result = action()
            except OutboxStorageError as exc:
                if self._stop.is_set() or give_up():
                    logger.critical("%s: given up, the outbox fails (%s)", what, exc)
                    raise
                if not waited:
                    logger.warning("%s waits: the outbox fails (%s); retrying", what, exc)
                    waited = True
                self._stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, PERSIST_RETRY_MAX_S)
                continue
            if waited:
                logger.warning("%s: done, the outbox works again", what)
            return result

    def _try_queue(self, channel: Channel, body: Any) -> None:
        """Queue a message that may be lost (progress, a repeated answer) if the outbox fails."""
        try:
            self._queue(channel, body)
        except OutboxStorageError as exc:
            logger.warning("skipped a %s message: the outbox fails (%s)", channel.value, exc)

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
            self._try_queue(
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
            self._try_queue(
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
            # The inspection is done and the car may be gone: keep it until the outbox takes it.
            self._persist(
                f"appraisal {appraisal_id}", lambda: self._queue(Channel.APPRAISALS, body)
            )
        if self._uploader is not None:
            self._uploader.kick()
        with self._completed_cv:
            self.completed.append(body)
            self._completed_cv.notify_all()
        return body

    def handle_command(self, envelope: Envelope[CommandBody]) -> None:
        command = envelope.body
        if _expired(command):
            logger.warning(
                "ignoring command %s: it expired at %s", command.command_id, command.expires_at
            )
            self._report(EventKind.COMMAND_REJECTED, command, "expired before it arrived")
            return
        self.recover_interrupted_commands()
        appraisal_id = None
        if command.kind is CommandKind.START_APPRAISAL:
            appraisal_id = str(command.params.get("appraisal_id") or new_id())
        try:
            claimed = self._persist(
                f"command {command.command_id}",
                lambda: self._claim(command.command_id, appraisal_id),
                give_up=lambda: _expired(command),
            )
        except OutboxStorageError:
            return  # not applied, not recorded: the gateway sends it again after a reconnect
        if not claimed:
            self._answer_again(command)
            return
        try:
            self._apply(command, appraisal_id)
        finally:
            with self._commands_lock:
                self._running_commands.discard(command.command_id)

    def _claim(self, command_id: str, appraisal_id: str | None) -> bool:
        with self._commands_lock:
            claimed = self.outbox.claim_command(command_id, appraisal_id=appraisal_id)
            if claimed:
                self._running_commands.add(command_id)
            return claimed

    def _apply(self, command: CommandBody, appraisal_id: str | None) -> None:
        if command.kind is not CommandKind.START_APPRAISAL or appraisal_id is None:
            self._finish(
                command.command_id,
                CommandState.REJECTED,
                EventKind.COMMAND_REJECTED,
                f"{command.kind.value} is not supported yet",
                appraisal_id=None,
            )
            return
        self._report(EventKind.COMMAND_ACCEPTED, command, None, appraisal_id=appraisal_id)
        try:
            body = self.appraise(
                appraisal_id=appraisal_id,
                hints=dict(command.params.get("vehicle") or {}),
                command_id=command.command_id,
            )
        except Exception as exc:  # reported to the gateway; the kiosk keeps running
            logger.exception("appraisal for command %s failed", command.command_id)
            self._finish(
                command.command_id,
                CommandState.FAILED,
                EventKind.COMMAND_FAILED,
                str(exc)[:500],
                appraisal_id=appraisal_id,
            )
            return
        self._finish(
            command.command_id,
            CommandState.DONE,
            EventKind.COMMAND_DONE,
            f"appraisal {body.appraisal_id} queued",
            appraisal_id=appraisal_id,
        )

    def _answer_again(self, command: CommandBody) -> None:
        """A command delivered again: answer with what became of it."""
        try:
            record = self.outbox.command(command.command_id)
        except OutboxStorageError:
            return  # the outbox logged it; the gateway asks again after a reconnect
        appraisal_id = record.appraisal_id if record is not None else None
        detail: str | None
        if record is None or record.state is CommandState.RUNNING:
            logger.info("command %s is in progress; acknowledging again", command.command_id)
            kind, detail = EventKind.COMMAND_ACCEPTED, "already in progress"
        elif record.state is CommandState.DONE:
            logger.info("command %s was already applied; acknowledging again", command.command_id)
            kind, detail = EventKind.COMMAND_ACCEPTED, "already applied"
        else:
            logger.info(
                "command %s already %s; reporting it again", command.command_id, record.state
            )
            kind = (
                EventKind.COMMAND_FAILED
                if record.state is CommandState.FAILED
                else EventKind.COMMAND_REJECTED
            )
            detail = record.detail
        self._report(kind, command, detail, appraisal_id=appraisal_id)

    def recover_interrupted_commands(self) -> int:
        """Report the commands a previous run left running (it was cut short); how many.

        Runs once per agent (at start, or with the first command); while the outbox fails it
        is tried again with the next command and heartbeat.
        """
        with self._commands_lock:
            if self._recovered:
                return 0
            try:
                interrupted = [
                    record
                    for record in self.outbox.running_commands()
                    if record.command_id not in self._running_commands
                ]
                for record in interrupted:
                    if record.appraisal_queued:
                        # Cut after its appraisal was stored: that appraisal is the outcome.
                        state, kind = CommandState.DONE, EventKind.COMMAND_DONE
                        detail = f"appraisal {record.appraisal_id} queued"
                    else:
                        state, kind, detail = (
                            CommandState.FAILED,
                            EventKind.COMMAND_FAILED,
                            RESTARTED,
                        )
                    self.outbox.finish_command(
                        record.command_id,
                        state,
                        EventBody(
                            kind=kind,
                            command_id=record.command_id,
                            appraisal_id=record.appraisal_id,
                            detail=detail,
                        ),
                    )
                    logger.warning(
                        "command %s was cut short by a restart of the kiosk; reported %s",
                        record.command_id,
                        kind.value,
                    )
            except OutboxStorageError as exc:
                logger.error(
                    "cannot check for commands a restart cut short (%s); trying again later", exc
                )
                return 0
            self._recovered = True
        if interrupted:
            self.uplink.kick()
        return len(interrupted)

    def _finish(
        self,
        command_id: str,
        state: CommandState,
        kind: EventKind,
        detail: str | None,
        *,
        appraisal_id: str | None,
    ) -> None:
        """Record the outcome with the event that reports it; kept until the outbox takes it."""
        event = EventBody(
            kind=kind, command_id=command_id, appraisal_id=appraisal_id, detail=detail
        )
        try:
            self._persist(
                f"the outcome of command {command_id}",
                lambda: self.outbox.finish_command(command_id, state, event),
            )
        except OutboxStorageError:
            # Still 'running' in the ledger: the next start reports it (done if its appraisal
            # was stored, else failed).
            return
        self.uplink.kick()

    def _report(
        self,
        kind: EventKind,
        command: CommandBody,
        detail: str | None,
        *,
        appraisal_id: str | None = None,
    ) -> None:
        if appraisal_id is None and command.params.get("appraisal_id"):
            appraisal_id = str(command.params["appraisal_id"])
        self._try_queue(
            Channel.EVENTS,
            EventBody(
                kind=kind, command_id=command.command_id, appraisal_id=appraisal_id, detail=detail
            ),
        )

    def wait_for_appraisals(self, count: int, timeout: float) -> bool:
        with self._completed_cv:
            return self._completed_cv.wait_for(lambda: len(self.completed) >= count, timeout)

    def wait_until_drained(self, timeout: float) -> bool:
        """True once every queued message has its receipt."""
        deadline = time.monotonic() + timeout
        with self.uplink.receipted:
            while self._depth()[0] > 0:
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
        depth, oldest = self._depth()
        return TelemetryBody(
            uptime_s=time.monotonic() - self._started_at,
            cpu_percent=cpu,
            memory_percent=memory,
            disk_free_bytes=disk.free,
            temperature_c=temperature,
            outbox_depth=depth,
            outbox_oldest_age_s=oldest,
            disk_alarm=self.outbox.disk_alarm or disk.free < 50_000_000,
            model_versions=self._valuer.versions,
            config_version=self.config.config_version,
            obd_adapter_state=self._adapter_state(),
            agent_version=__version__,
        )

    def _depth(self) -> tuple[int, float | None]:
        """The outbox's depth and oldest age; the last known ones while it cannot be read."""
        with contextlib.suppress(OutboxStorageError):  # the outbox logged it; the alarm is up
            self._last_depth = (self.outbox.depth(), self.outbox.oldest_age_s())
        return self._last_depth

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.recover_interrupted_commands()
                self._queue(Channel.TELEMETRY, self.telemetry())
            except OutboxStorageError as exc:
                logger.debug("no heartbeat queued: the outbox fails (%s)", exc)
            except Exception:  # a heartbeat must never take the kiosk down
                logger.exception("could not queue a heartbeat")
            self._stop.wait(self.config.heartbeat_s)


def _expired(command: CommandBody) -> bool:
    return command.expires_at <= datetime.now(UTC)
