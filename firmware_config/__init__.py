"""Kiosk configuration: schema, YAML loading with precise errors, JSON Schema."""

from firmware_config.loader import ConfigError, ConfigIssue, load_config
from firmware_config.schema import CURRENT_SCHEMA_VERSION, KioskConfig

__all__ = ["CURRENT_SCHEMA_VERSION", "ConfigError", "ConfigIssue", "KioskConfig", "load_config"]
