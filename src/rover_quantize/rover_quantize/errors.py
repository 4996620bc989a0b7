"""The one error type the CLI turns into a single clear line (no traceback)."""


class QuantizeError(Exception):
    """A problem the user can fix: bad checkpoint, bad bag, failed validation, ..."""


class CheckpointError(QuantizeError):
    """The LeRobot checkpoint is missing, corrupt or does not match its config."""


class BagError(QuantizeError):
    """A rosbag cannot be read or does not hold what we need."""


class ValidationFailed(QuantizeError):
    """The quantized model missed the accuracy bar."""
