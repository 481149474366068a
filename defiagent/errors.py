"""Error types that carry the CLI exit code convention.

0 ok, 1 refused or check failed, 2 usage or configuration error, 3 infrastructure error.
Every error message is one sentence a person can act on; the CLI prints it without a
traceback unless --debug is given.
"""

from __future__ import annotations


class DefiagentError(Exception):
    """Base class: an expected failure with a human-readable message and an exit code."""

    exit_code: int = 3
    kind: str = "error"

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        if self.remedy:
            return f"{self.message} ({self.remedy})"
        return self.message


class Refused(DefiagentError):
    """A check failed or a request was refused (exit 1)."""

    exit_code = 1
    kind = "refused"


class ConfigError(DefiagentError):
    """Bad usage, bad configuration or bad input file (exit 2)."""

    exit_code = 2
    kind = "config"


class InfraError(DefiagentError):
    """Infrastructure is not there: RPC down, tool missing, device unreachable (exit 3)."""

    exit_code = 3
    kind = "infrastructure"


class ToolMissing(InfraError):
    """A toolchain binary or package is not installed."""
