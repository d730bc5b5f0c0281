"""Configuration: pydantic models (`model`) and loading from YAML and the environment (`load`)."""

from lanner.config.load import ConfigError, load_config, load_default
from lanner.config.model import Config, ListenerConfig, split_hostport

__all__ = ["Config", "ConfigError", "ListenerConfig", "load_config", "load_default", "split_hostport"]
