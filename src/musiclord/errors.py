"""Errors that reach the user as one clear line (the CLI prints them and exits non-zero)."""


class MusiclordError(Exception):
    """Base class of every error a user can cause: bad audio, bad config, bad checkpoint."""


class AudioError(MusiclordError):
    """Audio that cannot be read, is empty, or is otherwise unusable."""


class ConfigError(MusiclordError):
    """An unknown config key, a value of the wrong type, an unknown preset."""


class CheckpointError(MusiclordError):
    """A missing, truncated, foreign or incompatible checkpoint."""


class DataError(MusiclordError):
    """A dataset directory or source that cannot be used."""
