"""One exception tree; the CLI maps each class to a documented exit code (DESIGN §5)."""

from __future__ import annotations


class ReconcileError(Exception):
    """An error the user can act on: printed as one paragraph, exit code 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(ReconcileError):
    exit_code = 64


class InvalidInputError(ReconcileError):
    """An origin or plan file that cannot be used; `problems` lists every finding."""

    exit_code = 65

    def __init__(self, message: str, problems: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems or []


class StalePlanError(ReconcileError):
    exit_code = 3


class LockTimeoutError(ReconcileError):
    exit_code = 4


class ResolutionError(ReconcileError):
    """libsolv found no solution; `problems` holds each problem in words."""

    def __init__(self, message: str, problems: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems


class PackageError(ReconcileError):
    """A package that cannot be fetched, read or imported."""


class DownloadError(PackageError):
    """A package no URL of its repo could give intact."""


class SignatureError(PackageError):
    """A package that fails rpm's signature check against its repo's keys."""


class OstreeError(ReconcileError):
    """A libostree call failed; the message names the operation."""
