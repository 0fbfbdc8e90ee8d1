"""OBD-II on the kiosk: python-obd sessions over our ELM327 link, own decoders, a simulator.

Read a car::

    from edge.obd import read_vehicle
    reading = read_vehicle("/dev/ttyUSB0", timeout=60)
    vehicle, obd_summary = reading.to_protocol()

Simulate one (tests, demo, dealer training)::

    from edge.obd import start_simulator
    with start_simulator("malibu_2019") as sim:
        reading = read_vehicle(sim.port)

Errors (see :mod:`edge.obd.errors`): ``ObdError`` > ``AdapterNotFound``, ``AdapterNotResponding``,
``AdapterDisconnected``, ``NoVehicleData``, ``ReadTimeout``.
"""

from edge.obd.errors import (
    AdapterDisconnected,
    AdapterNotFound,
    AdapterNotResponding,
    NoVehicleData,
    ObdError,
    ReadTimeout,
)
from edge.obd.reader import ReadOptions, read_vehicle
from edge.obd.reading import FieldStatus, Sourced, VehicleReading
from edge.obd.scenario import Scenario, ScenarioError, bundled_scenarios, load_scenario
from edge.obd.simulator import Simulator, start_simulator
from edge.obd.vin import VinCheck, check_vin

__all__ = [
    "AdapterDisconnected",
    "AdapterNotFound",
    "AdapterNotResponding",
    "FieldStatus",
    "NoVehicleData",
    "ObdError",
    "ReadOptions",
    "ReadTimeout",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "Sourced",
    "VehicleReading",
    "VinCheck",
    "bundled_scenarios",
    "check_vin",
    "load_scenario",
    "read_vehicle",
    "start_simulator",
]
