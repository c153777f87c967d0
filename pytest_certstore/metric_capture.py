"""``cert_metrics``: every metric certstore emitted during one test.

It subscribes a :class:`~certstore.metrics.RecordingEmitter` to every
:class:`~certstore.metrics.Metrics` in the process for the test's duration, so it sees what the
code under test emits through *any* metrics object, including the default one.

Every question is checked against the catalog first. The background project counted
``cert.s3.write.fail`` in its tests while the code emitted ``cert.s3.save.fail``, so the tests
passed while measuring nothing; here asking about a name (or label) the catalog does not have
fails the test with the list of valid names.
"""

from __future__ import annotations

from collections.abc import Mapping

from certstore import metrics as catalog
from certstore.metrics import MetricEvent, MetricSpec, RecordingEmitter
from pytest_certstore.errors import MetricNameError


def _spec(name: str, labels: Mapping[str, object]) -> MetricSpec:
    try:
        metric = catalog.spec(name)
    except catalog.UnknownMetricError:
        raise MetricNameError(
            f"metric {name!r} is not in certstore's catalog; valid names: "
            f"{', '.join(catalog.names())}",
            name=name,
        ) from None
    unknown = sorted(set(labels) - set(metric.labels))
    if unknown:
        valid = ", ".join(metric.labels) or "none"
        raise MetricNameError(
            f"metric {name!r} has no label(s) {', '.join(unknown)}; its labels: {valid}",
            name=name,
        )
    return metric


class MetricCapture:
    """Counts, labels and observations of what was emitted since :meth:`start`."""

    def __init__(self) -> None:
        self._recorder = RecordingEmitter()
        self._active = False

    def start(self) -> MetricCapture:
        """Begin recording (idempotent)."""
        if not self._active:
            catalog.subscribe(self._recorder)
            self._active = True
        return self

    def stop(self) -> None:
        """Stop recording (what was recorded stays readable)."""
        if self._active:
            catalog.unsubscribe(self._recorder)
            self._active = False

    def clear(self) -> None:
        """Forget everything recorded so far (e.g. after arranging the test's data)."""
        self._recorder.clear()

    @property
    def events(self) -> list[MetricEvent]:
        """Every event, in emission order (a copy)."""
        return list(self._recorder.events)

    def emitted_names(self) -> list[str]:
        """Names emitted at least once, sorted."""
        return sorted({event.name for event in self.events})

    def events_for(self, name: str, **labels: object) -> list[MetricEvent]:
        """Events for catalog ``name`` whose labels include ``labels``."""
        _spec(name, labels)
        return self._recorder.matching(name, **{k: str(v) for k, v in labels.items()})

    def count(self, name: str, **labels: object) -> float:
        """Sum of a counter's increments (or number of observations of a histogram/gauge)."""
        metric = _spec(name, labels)
        found = self.events_for(name, **labels)
        if metric.kind == "counter":
            return sum(event.value for event in found)
        return float(len(found))

    def observations(self, name: str, **labels: object) -> list[float]:
        """Observed values of a histogram (seconds for latencies) or set values of a gauge."""
        return [event.value for event in self.events_for(name, **labels)]

    def label_values(self, name: str, label: str) -> list[str]:
        """Distinct values one label took, sorted (e.g. the fallback reasons seen)."""
        _spec(name, {label: ""})
        return sorted({event.labels[label] for event in self.events_for(name)})

    def assert_emitted(self, name: str, count: float | None = None, **labels: object) -> None:
        """Fail unless ``name`` (with ``labels``) was emitted -- exactly ``count`` if given."""
        got = self.count(name, **labels)
        where = f"{name}{_fmt(labels)}"
        if count is None and got == 0:
            raise AssertionError(
                f"{where} was not emitted; emitted: {', '.join(self.emitted_names()) or 'nothing'}"
            )
        if count is not None and got != count:
            seen = [f"{e.name}{_fmt(e.labels)}={e.value:g}" for e in self.events_for(name)]
            raise AssertionError(
                f"{where} counted {got:g}, expected {count:g}; events: {seen or 'none'}"
            )

    def assert_not_emitted(self, name: str, **labels: object) -> None:
        """Fail if ``name`` (with ``labels``) was emitted at all."""
        got = self.count(name, **labels)
        if got:
            raise AssertionError(f"{name}{_fmt(labels)} was emitted ({got:g}), expected none")

    def __enter__(self) -> MetricCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _fmt(labels: Mapping[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
