"""The kiosk agent: OBD-II reading, photos, on-device valuation, durable uplink.

``edge.protocol`` is the wire contract shared with the gateway; it imports nothing else from
``edge``.
"""
