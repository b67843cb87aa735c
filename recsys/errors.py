"""Errors that the command-line entry points turn into a one-line message and exit code 2."""


class RecsysError(Exception):
    """Base class for user-facing errors (bad config, bad data, bad trace)."""


class ConfigError(RecsysError, ValueError):
    """A configuration value is invalid (non-positive rate, unknown option, K too large...)."""


class DataError(RecsysError, ValueError):
    """An input file is missing or malformed (bad columns, non-numeric ids, empty file...)."""


class ArtifactError(RecsysError):
    """A cached artifact (model, index, profile) is missing or corrupt."""
