"""The builder's user-facing error."""


class EnrollmentError(ValueError):
    """The input cannot make an avatar (no usable hand, too few views); the message says what to
    record instead."""
