"""The background documents' fault buckets A-H as named presets of fault rules.

Each :class:`Preset` is data: the flags, the rules, how the test's objects are arranged before
the faults apply, the router call made under the faults, and the outcome the router must
produce (its return value, the metrics it emits, how many S3 attempts it makes, whether it
touched the local backend, where the object is afterwards). The ``fault_bucket`` fixture turns
each preset into one parametrised run, so the whole matrix is one test.

Names describe the behaviour; the letters are aliases: ``preset("A")`` is
``preset("transient-5xx-on-save")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from certstore.config import Flags
from pytest_certstore.errors import FaultRuleError
from pytest_certstore.faults import FaultRule, connection_refused, error, presign_error

KEY = "preset/certificate.pdf"
PAYLOAD = b"%PDF-1.4\n% certificate used by the fault presets\n" + bytes(range(256)) * 8

#: Arrangements: where the object exists before the faults are switched on.
SEED_NONE = "none"
SEED_LOCAL = "local"
SEED_BOTH = "both"


def _save(storage: Any) -> Any:
    return storage.save(KEY, PAYLOAD)


def _read(storage: Any) -> Any:
    return storage.read(KEY)


def _delete(storage: Any) -> Any:
    return storage.delete(KEY)


def _url(storage: Any) -> Any:
    return storage.url(KEY)


def _size(storage: Any) -> Any:
    return storage.size(KEY)


def _everything(storage: Any) -> Any:
    saved = storage.save(KEY, PAYLOAD)
    return (
        saved,
        storage.read(KEY) == PAYLOAD,
        storage.exists(KEY),
        storage.size(KEY),
        storage.url(KEY),
        storage.delete(KEY),
    )


@dataclass(frozen=True)
class Expected:
    """What the router must do under a preset (None: not checked)."""

    result: Any
    metrics: Mapping[str, float] = field(default_factory=dict)
    s3_attempts: int | None = None
    presign_attempts: int | None = None
    local_touched: bool | None = None
    in_s3_after: bool | None = None
    local_after: bool | None = None


@dataclass(frozen=True)
class Preset:
    """One fault bucket: flags, rules, arrangement, action and expected outcome."""

    name: str
    letter: str
    summary: str
    flags: Flags
    rules: tuple[FaultRule, ...]
    seed: str
    action: Callable[[Any], Any]
    expected: Expected

    @property
    def id(self) -> str:
        """The test id used by ``fault_bucket`` (``A-transient-5xx-on-save``)."""
        return f"{self.letter}-{self.name}"


def _metric(name: str, **labels: str) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


DUAL = Flags(dual_write=True)
PRIMARY = Flags(dual_write=True, read_primary=True)

PRESETS: tuple[Preset, ...] = (
    Preset(
        "transient-5xx-on-save",
        "A",
        "two 503 SlowDown replies to PutObject, then success: botocore retries, the save "
        "reaches S3 on the third attempt and nothing is counted as failed",
        DUAL,
        (FaultRule(error("SlowDown"), "PutObject", times=2, name="A"),),
        SEED_NONE,
        _save,
        Expected(
            KEY,
            {
                _metric("cert.s3.save"): 1,
                _metric("cert.s3.save.fail"): 0,
                _metric("cert.s3.retry", op="PutObject"): 2,
            },
            s3_attempts=3,
            in_s3_after=True,
            local_after=True,
        ),
    ),
    Preset(
        "missing-on-read",
        "B",
        "GetObject answers 404 NoSuchKey: read-primary falls back to the local copy and counts "
        "the fallback with reason=missing",
        PRIMARY,
        (FaultRule(error("NoSuchKey"), "GetObject", name="B"),),
        SEED_BOTH,
        _read,
        Expected(
            PAYLOAD,
            {_metric("cert.s3.read"): 1, _metric("cert.s3.read.fallback", reason="missing"): 1},
            s3_attempts=1,
            local_touched=True,
        ),
    ),
    Preset(
        "5xx-on-delete",
        "C",
        "DeleteObject answers 500 InternalError on every attempt: the local delete still "
        "happens, the S3 failure is counted, not raised",
        DUAL,
        (FaultRule(error("InternalError"), "DeleteObject", name="C"),),
        SEED_BOTH,
        _delete,
        Expected(
            None,
            {
                _metric("cert.s3.delete"): 1,
                _metric("cert.s3.delete.fail", error="InternalError"): 1,
            },
            s3_attempts=3,
            in_s3_after=True,
            local_after=False,
        ),
    ),
    Preset(
        "url-generation-failure",
        "D",
        "presigning fails (NoCredentialsError at botocore's before-sign): the router hands out "
        "the local media URL and counts the fallback",
        PRIMARY,
        (FaultRule(presign_error(), "GetObject", name="D"),),
        SEED_BOTH,
        _url,
        Expected(
            "/media/" + KEY,
            {_metric("cert.s3.url"): 1, _metric("cert.s3.url.fallback", reason="error"): 1},
            s3_attempts=0,
            presign_attempts=1,
        ),
    ),
    Preset(
        "s3-down-on-dual-write",
        "E",
        "S3 refuses every connection during a dual-write save: the local write succeeds, the "
        "S3 failure is counted after botocore's retries",
        DUAL,
        (FaultRule(connection_refused(), "*", name="E"),),
        SEED_NONE,
        _save,
        Expected(
            KEY,
            {
                _metric("cert.s3.save"): 1,
                _metric("cert.s3.save.fail", error="EndpointConnectionError"): 1,
            },
            s3_attempts=3,
            in_s3_after=False,
            local_after=True,
        ),
    ),
    Preset(
        "healthy-read-primary",
        "F",
        "no faults, read-primary: the read is served by S3 and the local backend is not touched",
        PRIMARY,
        (),
        SEED_BOTH,
        _read,
        Expected(
            PAYLOAD,
            {_metric("cert.s3.read"): 1, _metric("cert.s3.read.fallback"): 0},
            s3_attempts=1,
            local_touched=False,
        ),
    ),
    Preset(
        "head-error-on-size",
        "G",
        "HeadObject answers 500 on every attempt: size() falls back to the local size with "
        "reason=error",
        PRIMARY,
        (FaultRule(error("InternalError"), "HeadObject", name="G"),),
        SEED_BOTH,
        _size,
        Expected(
            len(PAYLOAD),
            {
                _metric("cert.s3.read"): 1,
                _metric("cert.s3.read.fallback", reason="error"): 1,
                _metric("cert.s3.retry", op="HeadObject"): 2,
            },
            s3_attempts=3,
            local_touched=True,
        ),
    ),
    Preset(
        "flags-off",
        "H",
        "every flag off and every S3 call would fail: save, read, exists, size, url and "
        "delete all work locally and S3 sees zero calls",
        Flags(),
        (
            FaultRule(connection_refused(), "*", name="H"),
            FaultRule(presign_error(), "*", name="H-presign"),
        ),
        SEED_NONE,
        _everything,
        Expected(
            (KEY, True, True, len(PAYLOAD), "/media/" + KEY, None),
            {
                _metric("cert.s3.save"): 0,
                _metric("cert.s3.read"): 0,
                _metric("cert.s3.url"): 0,
                _metric("cert.s3.delete"): 0,
            },
            s3_attempts=0,
            presign_attempts=0,
            local_touched=True,
            in_s3_after=False,
            local_after=False,
        ),
    ),
)

_BY_NAME: dict[str, Preset] = {}
for _preset in PRESETS:
    _BY_NAME[_preset.name] = _preset
    _BY_NAME[_preset.letter] = _preset
    _BY_NAME[_preset.letter.lower()] = _preset


def preset(name: str) -> Preset:
    """A preset by behaviour name or letter (``"A"``, ``"transient-5xx-on-save"``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        valid = ", ".join(f"{p.letter}={p.name}" for p in PRESETS)
        raise FaultRuleError(
            f"unknown fault preset {name!r}; presets: {valid}", preset=name
        ) from None


def parse_metric_key(text: str) -> tuple[str, dict[str, str]]:
    """``"cert.s3.retry{op=PutObject}"`` -> ``("cert.s3.retry", {"op": "PutObject"})``."""
    name, _, rest = text.partition("{")
    labels = dict(pair.split("=", 1) for pair in rest.rstrip("}").split(",") if pair)
    return name, labels


class LocalSpy:
    """Wraps a backend and counts calls to it, to prove a path never touched local storage."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return counted


@dataclass(frozen=True)
class Outcome:
    """What actually happened when a preset's action ran."""

    result: Any
    s3_attempts: int
    presign_attempts: int
    local_touched: bool
    in_s3_after: bool
    local_after: bool


class BucketCase:
    """One preset wired to a storage, a fault plan and a local spy (``fault_bucket``)."""

    def __init__(self, preset: Preset, storage: Any, plan: Any, spy: LocalSpy) -> None:
        self.preset = preset
        self.storage = storage
        self.plan = plan
        self.spy = spy

    @property
    def expected(self) -> Expected:
        """The preset's expected outcome."""
        return self.preset.expected

    def arrange(self) -> None:
        """Place the object where the preset says, with no faults active, then arm them."""
        self.plan.clear()
        if self.preset.seed in (SEED_LOCAL, SEED_BOTH):
            self.spy.inner.save(KEY, PAYLOAD)
        if self.preset.seed == SEED_BOTH:
            self.storage.s3.save(KEY, PAYLOAD)
        self.plan.clear()
        self.plan.extend(self.preset.rules)
        self.spy.calls.clear()

    def run(self) -> Outcome:
        """Run the action under the faults and observe the result."""
        from pytest_certstore.faults import LEVEL_PRESIGN

        result = self.preset.action(self.storage)
        s3_attempts = self.plan.attempts()
        presign_attempts = self.plan.attempts(level=LEVEL_PRESIGN)
        touched = bool(self.spy.calls)
        self.plan.clear()
        return Outcome(
            result,
            s3_attempts,
            presign_attempts,
            touched,
            self.storage.s3.exists(KEY),
            self.spy.inner.exists(KEY),
        )

    def mismatches(self, outcome: Outcome, metrics: Any) -> list[str]:
        """Every way ``outcome`` (and the captured metrics) differs from the expectation."""
        want = self.expected
        problems = []
        if outcome.result != want.result:
            problems.append(f"result {outcome.result!r} != expected {want.result!r}")
        for text, count in want.metrics.items():
            name, labels = parse_metric_key(text)
            got = metrics.count(name, **labels)
            if got != count:
                problems.append(f"metric {text} = {got:g}, expected {count:g}")
        for attribute in (
            "s3_attempts",
            "presign_attempts",
            "local_touched",
            "in_s3_after",
            "local_after",
        ):
            expected = getattr(want, attribute)
            got = getattr(outcome, attribute)
            if expected is not None and got != expected:
                problems.append(f"{attribute} = {got!r}, expected {expected!r}")
        return problems
