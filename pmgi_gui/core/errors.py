"""The project's error types. Their messages are shown to users as they are."""

__all__ = ["PmgiError", "ImageError", "CheckpointError", "Cancelled"]


class PmgiError(Exception):
    """A problem the user can act on (bad input, wrong checkpoint, ...)."""


class ImageError(PmgiError):
    """An image could not be read, is invalid for the job, or could not be written."""


class CheckpointError(PmgiError):
    """A checkpoint is missing, malformed, tampered with, or for another task."""


class Cancelled(PmgiError):
    """The user cancelled a running job."""
