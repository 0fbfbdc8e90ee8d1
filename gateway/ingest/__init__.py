"""MQTT ingest: the worker that commits kiosk messages and publishes receipts."""

from gateway.ingest.mqtt import BrokerUnavailableError, MqttConnection, TlsFiles
from gateway.ingest.worker import IngestWorker

__all__ = ["BrokerUnavailableError", "IngestWorker", "MqttConnection", "TlsFiles"]
