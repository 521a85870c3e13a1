"""Errors a user can act on. Each says what went wrong and what to do next."""


class FcmonError(Exception):
    """A failure the CLI reports in one line (exit code 2)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message}; {self.hint}" if self.hint else message


class NotFound(FcmonError):
    pass


class Forbidden(FcmonError):
    """The acting user's role or relation to a tasking does not allow this."""


class AuditUnavailable(FcmonError):
    """The audit log cannot be written: whatever needed logging is refused (fail closed)."""
