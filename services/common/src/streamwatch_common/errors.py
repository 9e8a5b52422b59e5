"""The project's exception hierarchy: one root, one-line subclasses per domain."""


class StreamwatchError(Exception):
    """Root of every error raised on purpose by streamwatch code."""


class ConfigurationError(StreamwatchError):
    """A setting is missing or invalid."""


class SinkError(StreamwatchError):
    """A write to an external system failed after its retries."""


class SourceError(StreamwatchError):
    """Records could not be read from a source as planned (bad options, deleted records, a stalled read)."""


class CheckpointError(StreamwatchError):
    """A Spark checkpoint could not be read."""
