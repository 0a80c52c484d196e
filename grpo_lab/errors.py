"""Errors a user can fix by changing their config or input; the CLI prints them as one line."""


class ConfigError(ValueError):
    """A config value, reward function, dataset or model path that cannot be used."""


class RewardFunctionError(ValueError):
    """A reward function raised, returned the wrong number of scores, or a NaN/inf score."""


class TrainingDivergedError(RuntimeError):
    """Too many consecutive steps whose loss or gradient was NaN/inf."""
