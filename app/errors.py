"""Domain errors. Front ends map them to their own form (HTTP codes, gr.Error, CLI exit codes).

Every message is written for the user: it names what is wrong and what is allowed.
"""


class EaselError(Exception):
    """Base class of every error a user can be shown as it is."""


class InvalidRequest(EaselError):
    """A request field is out of range or inconsistent with another field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ModelNotFound(EaselError):
    """No model of that name is in the catalog."""


class MissingModelFiles(EaselError):
    """A model is known but cannot be loaded offline: a part, config or tokenizer file is missing."""


class UnreadableModel(EaselError):
    """A model file exists but cannot be read (corrupt, truncated, pickled, unknown layout)."""


class OutOfMemory(EaselError):
    """The device ran out of memory; the message suggests a lower-memory plan."""


class Interrupted(EaselError):
    """The job was interrupted by the user; partial results may be attached."""
