"""The cloud gateway: MQTT ingest, storage, lender matching, and the HTTP API.

Imports only ``edge.protocol`` from the kiosk side. The process's composition root is
:class:`gateway.runtime.GatewayRuntime`.
"""
