"""One error tree for the plugin: every error names the rule, marker argument or metric that
was wrong, so the failing test's report says what to fix."""

from __future__ import annotations

from typing import Any


class PluginError(Exception):
    """Base of every error the certstore pytest plugin raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[PluginError], message: str, context: dict[str, Any]) -> PluginError:
    error = cls.__new__(cls)
    PluginError.__init__(error, message, **context)
    return error


class FaultRuleError(PluginError, ValueError):
    """A fault rule (operation, key glob, effect, times/probability) is invalid."""


class SloMarkerError(PluginError, ValueError):
    """An ``@pytest.mark.slo`` marker has an unknown or invalid argument, or no sampler."""


class MetricNameError(PluginError, AssertionError):
    """A test asked ``cert_metrics`` about a name or label that is not in the catalog.

    It is an ``AssertionError`` so the test *fails* (a drifted name is a test bug), and its
    message lists every valid name.
    """


class FixtureConfigError(PluginError, ValueError):
    """A fixture was asked for something it cannot provide (e.g. an unknown S3 fixture name)."""
