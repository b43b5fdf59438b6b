"""Exceptions that name the file or config key at fault."""


class DataError(ValueError):
    """Input data is missing, corrupt or inconsistent; the message names the file."""


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


class DeviceError(RuntimeError):
    """A job that was given a GPU cannot use it; the message names the driver and torch build."""
