"""The metric catalog and the emitters that publish it.

One name per thing. The background project shipped ``cert.s3.save.fail`` in code and
``cert.s3.write.fail`` in its dashboards; here the catalog below is the only place a metric is
named, emitting a name that is not in it raises, and the Prometheus names are derived from it
(``.`` becomes ``_``, counters end in ``_total``) so they cannot drift from the runbook's PromQL.

Emitters: :class:`PrometheusEmitter` (``prometheus_client``, its own registry by default),
:class:`LogEmitter` (one structured ``METRIC:`` line per event) and :class:`RecordingEmitter`
(in memory, for tests). :class:`Metrics` fans one event out to its emitters and to every
process-wide listener added with :func:`subscribe` (the pytest plugin's ``cert_metrics`` is one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from certstore.errors import CertstoreError

logger = logging.getLogger(__name__)

Kind = Literal["counter", "histogram", "gauge"]

#: Latency buckets in seconds: fine below 100 ms where the SLOs are, coarse above.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.12, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class UnknownMetricError(CertstoreError, KeyError):
    """A metric name (or label) that is not in the catalog."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message, name=name)


@dataclass(frozen=True)
class MetricSpec:
    """One catalog entry."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    @property
    def prometheus_name(self) -> str:
        """The exposition name: dots to underscores, counters suffixed ``_total``."""
        base = self.name.replace(".", "_")
        return f"{base}_total" if self.kind == "counter" else base


CATALOG: tuple[MetricSpec, ...] = (
    MetricSpec("cert.s3.save", "counter", "S3 save attempts made by the router"),
    MetricSpec("cert.s3.save.fail", "counter", "S3 saves that failed after retries", ("error",)),
    MetricSpec("cert.s3.read", "counter", "S3 reads (open/exists/size) attempted by the router"),
    MetricSpec(
        "cert.s3.read.fallback", "counter", "reads served from local after S3 missed", ("reason",)
    ),
    MetricSpec("cert.s3.delete", "counter", "S3 deletes attempted by the router"),
    MetricSpec(
        "cert.s3.delete.fail", "counter", "S3 deletes that failed after retries", ("error",)
    ),
    MetricSpec("cert.s3.url", "counter", "presigned URLs requested from S3"),
    MetricSpec(
        "cert.s3.url.fallback", "counter", "URLs served from local after S3 failed", ("reason",)
    ),
    MetricSpec("cert.s3.save.seconds", "histogram", "latency of router S3 saves"),
    MetricSpec("cert.s3.read.seconds", "histogram", "latency of router S3 reads"),
    MetricSpec("cert.s3.url.seconds", "histogram", "latency of presigned URL generation"),
    MetricSpec("cert.s3.retry", "counter", "retries botocore made (from each response)", ("op",)),
    MetricSpec("cert.local.free_ratio", "gauge", "free share of the local media volume"),
    MetricSpec("cert.backfill.objects", "counter", "objects the backfill processed", ("outcome",)),
    MetricSpec(
        "cert.backfill.mismatch_rate_percent",
        "gauge",
        "share of sampled objects whose S3 copy does not match",
    ),
)

_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOG}


def spec(name: str) -> MetricSpec:
    """The catalog entry for ``name``; an unknown name raises with the valid names listed."""
    try:
        return _BY_NAME[name]
    except KeyError:
        valid = ", ".join(sorted(_BY_NAME))
        raise UnknownMetricError(
            f"metric {name!r} is not in the catalog; valid names: {valid}", name=name
        ) from None


def names() -> list[str]:
    """Every catalog name, sorted."""
    return sorted(_BY_NAME)


def _check_labels(metric: MetricSpec, labels: Mapping[str, str]) -> None:
    if set(labels) != set(metric.labels):
        raise UnknownMetricError(
            f"metric {metric.name!r} takes labels {list(metric.labels)}, got {sorted(labels)}",
            name=metric.name,
        )


@dataclass(slots=True)
class MetricEvent:
    """One emission: a counter increment, a histogram observation or a gauge value."""

    name: str
    kind: Kind
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, object] = field(default_factory=dict)


class Emitter(Protocol):
    """Anything that publishes :class:`MetricEvent` s."""

    def emit(self, event: MetricEvent) -> None:
        """Publish one event. Must not raise for a valid event."""


class LogEmitter:
    """One structured line per event: ``METRIC: cert.s3.save.fail key=... error=...``.

    Failures and fallbacks log at WARNING so none is silent; the rest at DEBUG.
    """

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logging.getLogger("certstore.metric")

    def emit(self, event: MetricEvent) -> None:
        loud = event.name.endswith((".fail", ".fallback"))
        level = logging.WARNING if loud else logging.DEBUG
        if not self._log.isEnabledFor(level):
            return
        fields = {**event.labels, **event.context}
        if event.kind != "counter" or event.value != 1:
            fields["value"] = event.value
        text = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        self._log.log(level, "METRIC: %s %s", event.name, text)


def _quote(value: object) -> str:
    text = str(value)
    return repr(text) if (not text or any(c.isspace() for c in text) or "=" in text) else text


class PrometheusEmitter:
    """Publishes the catalog through ``prometheus_client`` on its own registry by default."""

    def __init__(self, registry: object | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, object] = {}
        for metric in CATALOG:
            base = metric.name.replace(".", "_")
            if metric.kind == "counter":
                collector = Counter(base, metric.help, metric.labels, registry=self.registry)
            elif metric.kind == "histogram":
                collector = Histogram(
                    base,
                    metric.help,
                    metric.labels,
                    buckets=LATENCY_BUCKETS,
                    registry=self.registry,
                )
            else:
                collector = Gauge(base, metric.help, metric.labels, registry=self.registry)
            self._metrics[metric.name] = collector

    def emit(self, event: MetricEvent) -> None:
        collector = self._metrics[event.name]
        if event.labels:
            collector = collector.labels(**event.labels)  # type: ignore[attr-defined]
        if event.kind == "counter":
            collector.inc(event.value)  # type: ignore[attr-defined]
        elif event.kind == "histogram":
            collector.observe(event.value)  # type: ignore[attr-defined]
        else:
            collector.set(event.value)  # type: ignore[attr-defined]

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)  # type: ignore[arg-type]


class RecordingEmitter:
    """Keeps every event in memory; thread-safe. The plugin's ``cert_metrics`` builds on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[MetricEvent] = []

    def emit(self, event: MetricEvent) -> None:
        with self._lock:
            self.events.append(event)

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self.events.clear()

    def matching(self, name: str, **labels: str) -> list[MetricEvent]:
        """Events for catalog ``name`` whose labels include ``labels``."""
        spec(name)
        with self._lock:
            events = list(self.events)
        return [
            e
            for e in events
            if e.name == name and all(e.labels.get(k) == str(v) for k, v in labels.items())
        ]

    def count(self, name: str, **labels: str) -> float:
        """Sum of counter increments (or number of observations) for ``name``."""
        found = self.matching(name, **labels)
        if spec(name).kind == "counter":
            return sum(e.value for e in found)
        return float(len(found))

    def values(self, name: str, **labels: str) -> list[float]:
        """Observed values (histograms) or set values (gauges), in order."""
        return [e.value for e in self.matching(name, **labels)]


_listeners: list[Emitter] = []
_listeners_lock = threading.Lock()


def subscribe(emitter: Emitter) -> None:
    """Send every event from every :class:`Metrics` in this process to ``emitter`` too."""
    with _listeners_lock:
        _listeners.append(emitter)


def unsubscribe(emitter: Emitter) -> None:
    """Undo :func:`subscribe` (no error if it was not subscribed)."""
    with _listeners_lock:
        if emitter in _listeners:
            _listeners.remove(emitter)


@contextmanager
def capture() -> Iterator[RecordingEmitter]:
    """Record every event emitted in this process while the block runs."""
    recorder = RecordingEmitter()
    subscribe(recorder)
    try:
        yield recorder
    finally:
        unsubscribe(recorder)


class Metrics:
    """The emission front door: checks names and labels against the catalog, then fans out."""

    def __init__(self, emitters: Sequence[Emitter] = ()) -> None:
        self.emitters = list(emitters)

    def _emit(
        self,
        name: str,
        kind: Kind,
        value: float,
        labels: Mapping[str, str] | None,
        context: Mapping[str, object],
    ) -> None:
        metric = _BY_NAME.get(name) or spec(name)
        if metric.kind != kind:
            raise UnknownMetricError(f"metric {name!r} is a {metric.kind}, not a {kind}", name=name)
        clean = {k: str(v) for k, v in labels.items()} if labels else {}
        if clean or metric.labels:
            _check_labels(metric, clean)
        event = MetricEvent(name, kind, float(value), clean, context)
        for emitter in (*self.emitters, *_listeners) if _listeners else self.emitters:
            try:
                emitter.emit(event)
            except Exception:  # a broken exporter must never break a save
                logger.exception("metric emitter %r failed on %s", emitter, name)

    def inc(
        self,
        name: str,
        value: float = 1.0,
        *,
        labels: Mapping[str, str] | None = None,
        **context: object,
    ) -> None:
        """Add ``value`` to counter ``name``; ``context`` goes to logs, not to labels."""
        self._emit(name, "counter", value, labels, context)

    def observe(
        self, name: str, value: float, *, labels: Mapping[str, str] | None = None, **context: object
    ) -> None:
        """Record one histogram observation (seconds for latencies)."""
        self._emit(name, "histogram", value, labels, context)

    def set(
        self, name: str, value: float, *, labels: Mapping[str, str] | None = None, **context: object
    ) -> None:
        """Set gauge ``name``."""
        self._emit(name, "gauge", value, labels, context)


_default_lock = threading.Lock()
_default: Metrics | None = None
_default_prometheus: PrometheusEmitter | None = None


def default_metrics() -> Metrics:
    """The process-wide :class:`Metrics`: log lines plus one Prometheus registry."""
    global _default, _default_prometheus
    with _default_lock:
        if _default is None:
            _default_prometheus = PrometheusEmitter()
            _default = Metrics([LogEmitter(), _default_prometheus])
        return _default


def default_prometheus() -> PrometheusEmitter:
    """The Prometheus emitter behind :func:`default_metrics` (for ``/metrics``)."""
    default_metrics()
    assert _default_prometheus is not None
    return _default_prometheus
