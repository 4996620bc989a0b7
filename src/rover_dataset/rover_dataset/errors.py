"""The one error type the CLI turns into a single clear line and exit code 2."""


class DatasetError(Exception):
    """A problem the user can fix: bad bag, missing topic, clock jump, bad dataset dir, ..."""
