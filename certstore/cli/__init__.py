"""The ``certstore`` command line (see :mod:`certstore.cli._app`)."""

from __future__ import annotations

from certstore.cli._app import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    cli,
    exit_without_finalizing,
    main,
    run,
)

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "cli",
    "exit_without_finalizing",
    "main",
    "run",
]
