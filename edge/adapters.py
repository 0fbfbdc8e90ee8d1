"""Real adapters behind the inspection's ports, and the kiosk agent built from configuration."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from edge.app import KioskAgent
from edge.camera.config import CameraConfig
from edge.obd import ObdError, ReadOptions, read_vehicle
from edge.outbox import SqliteOutbox
from edge.protocol import Condition, Flag, MaskedArea, ObdSummary, PhotoRecord, Valuation, Vehicle
from edge.uplink import PhotoUploader
from firmware_config import KioskConfig
from firmware_config.schema import ObdConfig

logger = logging.getLogger(__name__)


class ObdVehicleReader:
    """Reads the car through the configured adapter (serial, Bluetooth RFCOMM or TCP).

    The first read searches for the protocol; the one found is pinned for this kiosk (kept in
    ``state_file``) so later reads skip the search. A pinned protocol that does not answer
    falls back to a search, so a car on another bus still reads.
    """

    def __init__(self, config: ObdConfig, *, state_file: Path | None = None) -> None:
        self._config = config
        self._state_file = state_file
        self.state: str | None = "idle"

    def pinned_protocol(self) -> str | None:
        if self._config.protocol is not None:
            return self._config.protocol
        if self._state_file is not None and self._state_file.exists():
            return self._state_file.read_text(encoding="ascii").strip() or None
        return None

    def read(self) -> tuple[Vehicle, ObdSummary]:
        self.state = "reading"
        config = self._config
        try:
            reading = read_vehicle(
                config.port_url,
                timeout=config.timeout_s,
                protocol=self.pinned_protocol(),
                options=ReadOptions(baudrate=config.baudrate),
            )
        except ObdError as exc:
            self.state = f"error: {type(exc).__name__}"
            raise
        self.state = "partial" if reading.partial else "ok"
        number = reading.protocol.number
        if self._state_file is not None and config.protocol is None and number and number != "0":
            _write_durably(self._state_file, number.encode("ascii"))
        return reading.to_protocol()


class TfliteValuer:
    """The on-device valuation and residual models (TFLite, run by LiteRT).

    The interpreters are not thread-safe; a lock serialises the (sub-millisecond) calls.
    """

    def __init__(self) -> None:
        from edge.inference import Valuator

        self._valuator = Valuator.load()
        self._lock = threading.Lock()

    @property
    def versions(self) -> dict[str, str]:
        return {
            "valuation": self._valuator.model_version,
            "residual": self._valuator.residual_model_version,
        }

    def value(
        self, vehicle: Vehicle, obd: ObdSummary | None, condition: Condition, *, valued_at: datetime
    ) -> tuple[Valuation, list[Flag]]:
        from edge.inference import ValuationRequest

        request = ValuationRequest.from_report(vehicle, obd, condition)
        with self._lock:
            result = self._valuator.appraise(request, valued_at=valued_at)
        return result.valuation, list(result.flags)


class CameraPhotoTaker:
    """Guides the inspector through the required views; spools each masked JPEG for upload."""

    def __init__(self, config: CameraConfig, *, outbox: SqliteOutbox, spool: Path) -> None:
        from edge.camera import PhotoPipeline

        self._config = config
        self._outbox = outbox
        self._spool = spool
        self._pipeline = PhotoPipeline(config)
        spool.mkdir(parents=True, exist_ok=True)

    def take(self, on_prompt: Callable[[str, str], None] | None = None) -> list[PhotoRecord]:
        from edge.camera import Prompt, capture_views, make_source

        def prompt(p: Prompt) -> None:
            # The kiosk's screen shows this; headless kiosks log it for the inspector's handset.
            logger.info("inspector: %s", p.text)
            if on_prompt is not None:
                on_prompt(p.view, p.text)

        with make_source(self._config.source) as source:
            run = capture_views(source, self._pipeline, on_prompt=prompt)
        records = []
        for view in run.guide.views:
            photo = run.photos.get(view)
            if photo is None:
                continue
            path = self._spool / f"{photo.record.sha256}.jpg"
            _write_durably(path, photo.jpeg)
            self._outbox.enqueue_upload(photo.record.sha256, path, len(photo.jpeg))
            masked = [
                MaskedArea(kind=r.kind, box=(r.box.x, r.box.y, r.box.w, r.box.h))
                for r in photo.masked_regions
            ]
            records.append(
                photo.record.model_copy(update={"masked": masked, "bytes": len(photo.jpeg)})
            )
        return records


def _write_durably(path: Path, data: bytes) -> None:
    """Write, fsync, rename: a power cut leaves the old file or the new one, never half."""
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def build_agent(config: KioskConfig) -> KioskAgent:
    """The kiosk agent with its real adapters, as the configuration says."""
    reader = ObdVehicleReader(config.obd, state_file=config.outbox.path.parent / "obd-protocol")
    agent = KioskAgent(
        config, reader=reader, valuer=TfliteValuer(), adapter_state=lambda: reader.state
    )
    if config.camera is not None and config.gateway is not None:
        gw = config.gateway
        agent.attach_photos(
            CameraPhotoTaker(
                config.camera, outbox=agent.outbox, spool=config.outbox.path.parent / "photos"
            ),
            PhotoUploader(
                agent.outbox,
                base_url=gw.url,
                api_key=gw.api_key,
                chunk_bytes=gw.chunk_bytes,
                verify=str(gw.ca) if gw.ca else True,
            ),
        )
    return agent
