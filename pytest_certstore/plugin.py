"""Hooks, options, markers and fixtures of the certstore pytest plugin."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the plugin's option group."""
    parser.getgroup("certstore", "certstore S3 fixtures and SLO checks")
