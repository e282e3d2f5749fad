"""The per-record error: what a pipeline dead-letters instead of failing the batch."""

from __future__ import annotations


class RecordError(ValueError):
    """A problem with one record; ``reason`` is a stable code for dead-letter files."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        # Exceptions pickle as type(*args); ours takes the reason too (it crosses process
        # boundaries inside the engine's results when Beam shares the model).
        return type(self), (self.reason, str(self))
