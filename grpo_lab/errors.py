"""Errors a user can fix by changing their config or input; the CLI prints them as one line."""


class ConfigError(ValueError):
    """A config value, reward function, dataset or model path that cannot be used."""
