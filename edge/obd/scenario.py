"""Simulator scenarios: a vehicle and the adapter in front of it, loaded from YAML.

The schema forbids unknown keys so a typo in a training scenario fails loudly, naming the file
and the key. Bundled scenarios live in ``edge/obd/scenarios/<name>.yaml``.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.obd.decoders import LIVE_PIDS, Ignition, MonitorState

logger = logging.getLogger(__name__)

__all__ = [
    "AdapterSpec",
    "EcuSpec",
    "Scenario",
    "ScenarioError",
    "VehicleSpec",
    "bundled_scenarios",
    "load_scenario",
]

DtcCode = Annotated[str, Field(pattern=r"^[PCBU][0-3][0-9A-F]{3}$")]
LIVE_NAMES = {spec.name: pid for pid, spec in LIVE_PIDS.items()}


class ScenarioError(ValueError):
    """A scenario file is missing or invalid; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdapterSpec(_Strict):
    """How the ELM327 adapter behaves (genuine or clone, speed, faults)."""

    identity: str = Field("ELM327 v1.5", description="Answer to ATI and ATZ")
    description: str = Field("OBDII to RS232 Interpreter", description="Answer to AT@1")
    voltage: float = Field(12.6, ge=0, le=30, description="Answer to ATRV, volts")
    latency_s: float = Field(0.0, ge=0, le=10, description="Delay before each OBD answer")
    search_latency_s: float = Field(
        0.0, ge=0, le=30, description="Extra delay of the first request while SEARCHING..."
    )
    refuse: dict[str, str] = Field(
        default_factory=dict,
        description="AT commands the adapter refuses (e.g. ATH1) and its reply: 'ERROR', '?' or ''"
        " (an empty prompt); a refused command changes nothing",
    )
    unplug_after_requests: int | None = Field(
        None, ge=0, description="OBD requests answered before the adapter goes away"
    )
    unplug_mode: Literal["close", "silent"] = Field(
        "close", description="close: the device disappears; silent: it stops answering"
    )
    transient_errors: dict[int, str] = Field(
        default_factory=dict,
        description="OBD request number (1-based) → status line answered instead, once",
    )
    garbage_before_requests: list[int] = Field(
        default_factory=list, description="OBD request numbers preceded by a line of noise bytes"
    )
    max_pids_per_request: int = Field(6, ge=1, le=6, description="Mode 01 PIDs per CAN request")
    lost_lines: dict[str, list[int]] = Field(
        default_factory=dict,
        description="OBD request (e.g. '03') → indexes (0-based) of its answer lines the adapter"
        " loses every time it is asked: a CAN frame missed on the bus",
    )

    @model_validator(mode="after")
    def _refusals_are_at_commands(self) -> AdapterSpec:
        for command, reply in self.refuse.items():
            if not command.upper().startswith("AT"):
                raise ValueError(f"refuse: {command!r} is not an AT command")
            if reply not in {"ERROR", "?", ""}:
                raise ValueError(f"refuse: reply {reply!r} must be 'ERROR', '?' or ''")
        return self


class EcuSpec(_Strict):
    """A further ECU (transmission, body...) that answers the DTC services, and PID 0x01 too
    when ``monitors`` is given (every emissions ECU does on a real car)."""

    address: str = Field(pattern=r"^[0-9A-F]{2,8}$", description="CAN id (7E9) or legacy source")
    name: str = "transmission"
    stored: list[DtcCode] = Field(default_factory=list)
    pending: list[DtcCode] = Field(default_factory=list)
    permanent: list[DtcCode] = Field(default_factory=list)
    monitors: dict[str, MonitorState] | None = Field(
        None,
        description="Answers 0100 and 0101 with these monitors (its own MIL and code count);"
        " null: answers the DTC services only, and the engine's 0101 counts its codes",
    )
    mil_on: bool | None = Field(None, description="Its MIL request; default: on with stored codes")

    @property
    def answers_monitor_status(self) -> bool:
        return self.monitors is not None

    @property
    def effective_mil(self) -> bool:
        return bool(self.stored) if self.mil_on is None else self.mil_on


class VehicleSpec(_Strict):
    """The vehicle: its engine ECU's data and any further ECUs."""

    protocol: Literal["3", "4", "5", "6", "7", "8", "9"] = Field(
        "6", description="ELM327 protocol number: 6 = CAN 11/500, 3 = ISO 9141-2, ..."
    )
    ignition_on: bool = True
    vin: str | None = Field(None, description="Answer to 0902; null: the car does not support it")
    odometer_km: float | None = Field(None, ge=0, description="PID 0xA6; null: not supported")
    mil_on: bool | None = Field(None, description="Default: on when there are stored codes")
    ignition: Ignition = Ignition.SPARK
    monitors: dict[str, MonitorState] = Field(
        default_factory=lambda: {
            "misfire": MonitorState.COMPLETE,
            "fuel_system": MonitorState.COMPLETE,
            "components": MonitorState.COMPLETE,
            "catalyst": MonitorState.COMPLETE,
            "evaporative_system": MonitorState.COMPLETE,
            "oxygen_sensor": MonitorState.COMPLETE,
            "oxygen_sensor_heater": MonitorState.COMPLETE,
            "egr_vvt_system": MonitorState.COMPLETE,
        }
    )
    warmups_since_clear: int | None = Field(255, ge=0, le=255)
    distance_since_clear_km: int | None = Field(12000, ge=0, le=65535)
    minutes_since_clear: int | None = Field(9000, ge=0, le=65535)
    distance_with_mil_km: int | None = Field(0, ge=0, le=65535)
    live: dict[str, float] = Field(
        default_factory=lambda: {
            "engine_rpm": 760.0,
            "coolant_temp_c": 88.0,
            "engine_load_pct": 21.2,
            "short_fuel_trim_bank1_pct": 0.8,
            "long_fuel_trim_bank1_pct": -1.6,
            "control_module_voltage_v": 14.2,
        }
    )
    engine_address: str = Field("7E8", pattern=r"^[0-9A-F]{2,8}$")
    stored: list[DtcCode] = Field(default_factory=list)
    pending: list[DtcCode] = Field(default_factory=list)
    permanent: list[DtcCode] = Field(default_factory=list)
    supports_permanent: bool = Field(True, description="Answers mode 0A (2010+ CAN cars do)")
    other_ecus: list[EcuSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_names(self) -> VehicleSpec:
        unknown = sorted(set(self.live) - set(LIVE_NAMES))
        if unknown:
            raise ValueError(f"live: unknown PID names {unknown}; known: {sorted(LIVE_NAMES)}")
        return self

    @property
    def is_can(self) -> bool:
        return self.protocol in {"6", "7", "8", "9"}

    @property
    def effective_mil(self) -> bool:
        return bool(self.stored) if self.mil_on is None else self.mil_on


class Scenario(_Strict):
    """One simulator scenario (file ``scenarios/<name>.yaml``)."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    adapter: AdapterSpec = Field(default_factory=AdapterSpec)
    vehicle: VehicleSpec = Field(default_factory=VehicleSpec)


def _scenario_dir() -> Path:
    return Path(str(resources.files("edge.obd") / "scenarios"))


def bundled_scenarios() -> list[str]:
    """Names of the scenarios shipped with the kiosk, sorted."""
    return sorted(p.stem for p in _scenario_dir().glob("*.yaml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a bundled scenario by name, or a scenario file by path.

    Raises :class:`ScenarioError` naming the file, the key and what is wrong.
    """
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = _scenario_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            raise ScenarioError(
                f"no scenario named {name_or_path!r}; bundled: {', '.join(bundled_scenarios())}"
            )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ScenarioError(f"{path}: invalid scenario: {details}") from exc
