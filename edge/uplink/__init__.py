"""The kiosk's MQTT uplink."""

from edge.uplink.paho import MqttUplink, UplinkError

__all__ = ["MqttUplink", "UplinkError"]
