"""One exception tree for the ``slo`` package.

Every error names what was wrong — the file, the objective, the field — so that the one line the
gate prints is enough to fix the input. All of them mean "bad input" (the gate exits 2): a missed
objective is not an error, it is a ``FAIL`` verdict.
"""

from __future__ import annotations

from certstore.errors import ContextError


class SloError(ContextError):
    """Base of every error ``slo`` raises on purpose (context and pickling from the base)."""


class SpecError(SloError, ValueError):
    """The SLO spec is invalid. ``path``, ``objective`` and ``field`` say where."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        objective: str | None = None,
        field: str | None = None,
    ) -> None:
        where = path
        if objective:
            where += f": {objective}"
        if field:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}", path=path, objective=objective, field=field)


class ResultsError(SloError, ValueError):
    """A results file is missing or could not be parsed. ``path`` and ``source`` name it."""

    def __init__(self, message: str, *, path: str, source: str) -> None:
        super().__init__(f"{source} results {path}: {message}", path=path, source=source)


class BaselineError(SloError, ValueError):
    """The ``--baseline`` verdict is missing, unreadable or of another format version."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"baseline {path}: {message}", path=path)


class OutputError(SloError, OSError):
    """A report could not be written (``--out-dir``, ``$GITHUB_STEP_SUMMARY``). ``path``
    names it."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"cannot write {path}: {message}", path=path)
