"""Errors a user can act on. Each says what went wrong and what to do next."""
from __future__ import annotations

from pydantic import ValidationError


def first_error(exc: ValidationError | ValueError, what: str) -> str:
    """One line for invalid input: "invalid WHAT: the field: what is wrong with it" (the first problem found)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or what
        return f"invalid {what}: {where}: {first.get('msg')}"
    return f"invalid {what}: {exc}"


class FcmonError(Exception):
    """A failure the CLI reports in one line (exit code 2)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    @property
    def message(self) -> str:
        """What went wrong, without the hint."""
        return super().__str__()

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class NotFound(FcmonError):
    pass


class Unavailable(FcmonError):
    """A backend (the index, the bus) cannot be reached or refuses: nothing was done; try again when it is back."""


class Forbidden(FcmonError):
    """The acting user's role or relation to a tasking does not allow this."""


class AuditUnavailable(FcmonError):
    """The audit log cannot be written: whatever needed logging is refused (fail closed)."""
