"""Option types the commands share."""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloatRange(click.FloatRange):
    """click's ``FloatRange`` that also refuses ``nan`` and ``inf``.

    Why: ``nan`` passes every bound check (each comparison is False, so none fails): a
    ``--progress-interval nan`` silenced every progress line and ``--size-kb nan`` crashed
    with a traceback. Every float option of the CLI uses this type.
    """

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
