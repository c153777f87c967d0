"""pytest_certstore: S3 fixtures, fault injection, metric capture and SLO markers for pytest.

Load it either way -- both register the same module, :mod:`pytest_certstore.plugin`, once:

* automatically, through the ``pytest11`` entry point named ``certstore``;
* explicitly, with ``pytest -p pytest_certstore`` (e.g. with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``
  or after ``-p no:certstore``).

This package module is *not* the plugin. When ``-p pytest_certstore`` registers it, its only
hook, :func:`pytest_addhooks`, registers :mod:`pytest_certstore.plugin` under the entry point's
name ``certstore`` -- so the entry point, loaded next, sees that name taken and skips itself
instead of registering the module a second time (which would add every option twice). If the
name ``certstore`` is blocked (``-p no:certstore``), the module is registered under its own
module name instead.
"""

from __future__ import annotations

import logging
from typing import Any

from pytest_certstore.botocore_faults import BotocoreFaults
from pytest_certstore.errors import (
    FaultRuleError,
    FixtureConfigError,
    MetricNameError,
    PluginError,
    SloMarkerError,
)
from pytest_certstore.fault_proxy import FaultProxy
from pytest_certstore.faults import (
    Effect,
    FaultCall,
    FaultPlan,
    FaultRule,
    connection_refused,
    connection_reset,
    corrupt_body,
    error,
    latency,
    presign_error,
    read_timeout,
)
from pytest_certstore.metric_capture import MetricCapture
from pytest_certstore.moto_server import MotoServer
from pytest_certstore.slo_marker import SloSampler, percentile
from pytest_certstore.targets import S3Target

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: The name the ``pytest11`` entry point registers the plugin module under (pyproject.toml).
ENTRY_POINT_NAME = "certstore"


def pytest_addhooks(pluginmanager: Any) -> None:
    """Register :mod:`pytest_certstore.plugin` exactly once (see the module docstring)."""
    from pytest_certstore import plugin

    if pluginmanager.is_registered(plugin):
        return
    if pluginmanager.is_blocked(ENTRY_POINT_NAME):
        pluginmanager.register(plugin, plugin.__name__)
    else:
        pluginmanager.register(plugin, ENTRY_POINT_NAME)


__all__ = [
    "ENTRY_POINT_NAME",
    "BotocoreFaults",
    "Effect",
    "FaultCall",
    "FaultPlan",
    "FaultProxy",
    "FaultRule",
    "FaultRuleError",
    "FixtureConfigError",
    "MetricCapture",
    "MetricNameError",
    "MotoServer",
    "PluginError",
    "S3Target",
    "SloMarkerError",
    "SloSampler",
    "connection_refused",
    "connection_reset",
    "corrupt_body",
    "error",
    "latency",
    "percentile",
    "presign_error",
    "read_timeout",
]
