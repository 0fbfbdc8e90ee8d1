"""The kiosk's MQTT uplink."""

from edge.uplink.paho import MqttUplink, UplinkError, UplinkHealth
from edge.uplink.photos import PhotoUploader, UploadRejectedError

__all__ = ["MqttUplink", "PhotoUploader", "UplinkError", "UplinkHealth", "UploadRejectedError"]
