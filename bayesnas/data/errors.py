"""Errors of the data module."""


class DatasetUnavailableError(FileNotFoundError):
    """The dataset's files are not on disk (and were not, or could not be, downloaded)."""
