"""The fault rule language: rules, effects, and the plan that decides each attempt's fate.

One language, two levels: the same :class:`FaultRule` s drive
:class:`~pytest_certstore.botocore_faults.BotocoreFaults` (attached to a boto3 client, in
process) and :class:`~pytest_certstore.fault_proxy.FaultProxy` (an HTTP proxy in front of a
real endpoint, for subprocesses and non-boto3 clients).

A rule says *which* calls (operation names, a key glob, a bucket glob), *what* happens (an
:class:`Effect`: an S3 error code with its HTTP status, a read timeout, a connection reset, a
refused connection, added latency, a corrupted response body, or a presigning failure) and
*when* (``times=N``: the first N matching calls; ``probability=p``: drawn from the plan's seeded
RNG; neither: always).

Effects are described once here and applied by each level in its own way (see
``docs/pytest-plugin.md`` for the table).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from pytest_certstore.errors import FaultRuleError

logger = logging.getLogger(__name__)

#: HTTP status S3 answers each error code with (the codes tests reach for most).
STATUS_BY_CODE: dict[str, int] = {
    "AccessDenied": 403,
    "BadDigest": 400,
    "EntityTooLarge": 400,
    "ExpiredToken": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidDigest": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "RequestTimeout": 400,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "XAmzContentSHA256Mismatch": 400,
}

#: The code used when a rule names only a status.
CODE_BY_STATUS: dict[int, str] = {
    400: "InvalidRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    412: "PreconditionFailed",
    416: "InvalidRange",
    500: "InternalError",
    501: "NotImplemented",
    503: "SlowDown",
}

_MESSAGES = {
    "NoSuchKey": "The specified key does not exist.",
    "InternalError": "We encountered an internal error. Please try again.",
    "SlowDown": "Please reduce your request rate.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "AccessDenied": "Access Denied",
}

#: Every effect kind; ``latency`` is the only one that lets the call go on.
EFFECT_KINDS = ("error", "timeout", "reset", "refused", "latency", "corrupt", "presign_error")

#: Levels an effect can be applied at.
LEVEL_SEND = "send"
LEVEL_PRESIGN = "presign"


@dataclass(frozen=True)
class Effect:
    """What a matching call gets. Build with :func:`error`, :func:`latency` and friends."""

    kind: str
    code: str | None = None
    status: int | None = None
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in EFFECT_KINDS:
            raise FaultRuleError(
                f"unknown fault effect {self.kind!r}; valid kinds: {', '.join(EFFECT_KINDS)}",
                effect=self.kind,
            )
        if self.kind == "error" and (not self.code or not self.status):
            raise FaultRuleError(
                "an error effect needs a code and an HTTP status", effect=self.kind
            )
        if self.kind == "error" and (
            isinstance(self.status, bool)
            or not isinstance(self.status, int)
            or not 400 <= self.status <= 599
        ):
            raise FaultRuleError(
                f"HTTP status {self.status!r} is not an error status (a whole number, 400-599)",
                effect=self.kind,
            )
        if self.kind == "latency" and not 0 < self.latency_ms <= 60_000:
            raise FaultRuleError(
                f"latency must be above 0 and at most 60000 ms, got {self.latency_ms!r}",
                effect=self.kind,
            )

    @property
    def terminal(self) -> bool:
        """True when the effect ends the attempt (everything but added latency)."""
        return self.kind != "latency"

    @property
    def level(self) -> str:
        """Where it applies: ``presign`` for presign errors, ``send`` for the rest."""
        return LEVEL_PRESIGN if self.kind == "presign_error" else LEVEL_SEND

    def describe(self) -> str:
        """Short text used in call records and in the proxy's ``x-certstore-fault`` header."""
        if self.kind == "error":
            return f"{self.code}/{self.status}"
        if self.kind == "latency":
            return f"latency:{self.latency_ms:g}ms"
        return self.kind


def error(code: str, status: int | None = None) -> Effect:
    """An S3 error reply: ``error("SlowDown")`` is a 503, ``error("NoSuchKey")`` a 404."""
    if status is None:
        status = STATUS_BY_CODE.get(code)
        if status is None:
            raise FaultRuleError(
                f"no default HTTP status for S3 error code {code!r}; pass status= "
                f"(known codes: {', '.join(sorted(STATUS_BY_CODE))})",
                effect=code,
            )
    if isinstance(status, str) and status.strip().isdigit():
        status = int(status)
    return Effect("error", code=code, status=status)


def latency(ms: float) -> Effect:
    """Sleep ``ms`` milliseconds, then let the call go on (combines with a later rule)."""
    return Effect("latency", latency_ms=float(ms))


def read_timeout() -> Effect:
    """The response never comes: botocore's ``ReadTimeoutError`` (retryable)."""
    return Effect("timeout")


def connection_reset() -> Effect:
    """The connection drops before a response: ``ConnectionClosedError`` (retryable)."""
    return Effect("reset")


def connection_refused() -> Effect:
    """Nobody listens: ``EndpointConnectionError`` (retryable) -- S3 is down."""
    return Effect("refused")


def corrupt_body() -> Effect:
    """The real response with one byte of its body flipped (headers, length unchanged)."""
    return Effect("corrupt")


def presign_error() -> Effect:
    """Presigning fails (``NoCredentialsError`` at ``before-sign``); no request is involved."""
    return Effect("presign_error")


def parse_effect(spec: Effect | str) -> Effect:
    """An :class:`Effect` from its short text form.

    ``"SlowDown"``, ``"SlowDown/503"``, ``"503"``, ``"timeout"``, ``"reset"``, ``"refused"``,
    ``"corrupt"``, ``"presign_error"``, ``"latency:50ms"`` (or ``"latency:50"``).
    """
    if isinstance(spec, Effect):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise FaultRuleError(
            f"a fault effect must be an Effect or a string, got {spec!r}", effect=spec
        )
    text = spec.strip()
    lowered = text.lower().replace("-", "_")
    if lowered in ("timeout", "read_timeout"):
        return read_timeout()
    if lowered in ("reset", "connection_reset"):
        return connection_reset()
    if lowered in ("refused", "connection_refused", "down"):
        return connection_refused()
    if lowered in ("corrupt", "corrupt_body"):
        return corrupt_body()
    if lowered == "presign_error":
        return presign_error()
    if lowered.startswith("latency:"):
        amount = lowered.split(":", 1)[1].removesuffix("ms")
        try:
            milliseconds = float(amount)
        except ValueError:
            raise FaultRuleError(
                f"bad latency {text!r}; write e.g. 'latency:50ms'", effect=text
            ) from None
        return latency(milliseconds)
    if text.isdigit():
        status = int(text)
        return error(CODE_BY_STATUS.get(status, str(status)), status)
    if "/" in text:
        code, _, status_text = text.partition("/")
        if not status_text.isdigit():
            raise FaultRuleError(
                f"bad error effect {text!r}; write e.g. 'SlowDown/503'", effect=text
            )
        return error(code, int(status_text))
    if text[0].isupper():
        return error(text)
    raise FaultRuleError(
        f"unknown fault effect {text!r}; use an S3 error code (SlowDown, NoSuchKey/404), a "
        "status (503), timeout, reset, refused, corrupt, presign_error or latency:<ms>",
        effect=text,
    )


@functools.cache
def s3_operation_names() -> frozenset[str]:
    """Every S3 operation botocore knows (loaded once; used to catch typos in rules)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("s3")
    return frozenset(model.operation_names)


def _operation_name(name: object) -> str:
    """The botocore name of an operation (snake_case accepted); a typo is an error, and so is
    a glob that matches no S3 operation (it would silently never fire)."""
    if not isinstance(name, str) or not name:
        raise FaultRuleError(
            f"an operation is a botocore name such as 'PutObject', or a glob; got {name!r}",
            operation=str(name),
        )
    if name == "*":
        return name
    camel = (
        "".join(part[:1].upper() + part[1:] for part in name.split("_")) if "_" in name else name
    )
    known = s3_operation_names()
    if any(ch in camel for ch in "*?["):
        if not any(fnmatch.fnmatchcase(op, camel) for op in known):
            raise FaultRuleError(
                f"operation glob {name!r} matches no S3 operation (globs match botocore "
                "names such as 'Put*' or '*Object', case-sensitive)",
                operation=name,
            )
        return camel
    if camel not in known:
        close = difflib.get_close_matches(camel, sorted(known), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise FaultRuleError(f"unknown S3 operation {name!r}{hint}", operation=name)
    return camel


@dataclass(frozen=True)
class FaultRule:
    """Which calls fail, how, and when.

    ``operations``: botocore operation names (``"PutObject"``, snake_case accepted) or globs,
    ``"*"`` for all. ``key``/``bucket``: globs on the object key and bucket (a key glob other
    than ``"*"`` never matches bucket-level calls). ``times``: only the first N matching calls;
    ``probability``: each matching call with this chance (the plan's seeded RNG); neither:
    every matching call.
    """

    effect: Effect | str
    operations: str | tuple[str, ...] = "*"
    key: str = "*"
    bucket: str = "*"
    times: int | None = None
    probability: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "effect", parse_effect(self.effect))
        if isinstance(self.operations, str):
            ops: tuple[object, ...] = (self.operations,)
        elif isinstance(self.operations, (tuple, list, set, frozenset)):
            ops = tuple(self.operations)
        else:
            raise FaultRuleError(
                f"operations must be a name, a glob or a list of them, got {self.operations!r}",
                operation=str(self.operations),
            )
        if not ops:
            raise FaultRuleError("a fault rule needs at least one operation (or '*')", operation="")
        object.__setattr__(self, "operations", tuple(_operation_name(op) for op in ops))
        if self.times is not None and self.probability is not None:
            raise FaultRuleError("give times= or probability=, not both", rule=self.name)
        if self.times is not None and (
            isinstance(self.times, bool) or not isinstance(self.times, int) or self.times < 1
        ):
            raise FaultRuleError(
                f"times must be a whole number >= 1, got {self.times!r}", rule=self.name
            )
        if self.probability is not None and (
            isinstance(self.probability, bool)
            or not isinstance(self.probability, (int, float))
            or not 0.0 < self.probability <= 1.0
        ):
            raise FaultRuleError(
                f"probability must be a number in (0, 1], got {self.probability!r}",
                rule=self.name,
            )

    @property
    def the_effect(self) -> Effect:
        """The parsed effect (``effect`` may have been given as text)."""
        assert isinstance(self.effect, Effect)
        return self.effect

    def matches(self, operation: str, bucket: str | None, key: str | None) -> bool:
        """Whether a call is selected by operation, bucket and key (not by times/probability)."""
        ops = self.operations
        assert isinstance(ops, tuple)
        if not any(op == "*" or fnmatch.fnmatchcase(operation, op) for op in ops):
            return False
        if self.bucket != "*" and not fnmatch.fnmatchcase(bucket or "", self.bucket):
            return False
        if self.key == "*":
            return True
        return key is not None and fnmatch.fnmatchcase(key, self.key)

    def describe(self) -> str:
        """One line for reports: ``PutObject key=*.pdf -> SlowDown/503 times=2``."""
        ops = self.operations
        assert isinstance(ops, tuple)
        when = (
            f" times={self.times}"
            if self.times is not None
            else f" probability={self.probability:g}"
            if self.probability is not None
            else " always"
        )
        where = "" if self.key == "*" else f" key={self.key}"
        where += "" if self.bucket == "*" else f" bucket={self.bucket}"
        label = f"[{self.name}] " if self.name else ""
        return f"{label}{','.join(ops)}{where} -> {self.the_effect.describe()}{when}"


@dataclass(frozen=True)
class FaultCall:
    """One attempt the plan saw (faulted or not)."""

    operation: str
    bucket: str | None
    key: str | None
    level: str
    source: str
    attempt: int | None = None
    effects: tuple[str, ...] = ()
    at: float = field(default_factory=time.monotonic)

    @property
    def faulted(self) -> bool:
        """True when at least one effect was applied to this attempt."""
        return bool(self.effects)


class FaultPlan:
    """A list of rules with their budgets, a seeded RNG and the record of every attempt.

    Thread-safe: botocore may call from several threads and the proxy serves each connection
    on its own thread.
    """

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._fired: list[int] = []
        self._calls: list[FaultCall] = []
        self.seed = seed
        self._rng = random.Random(seed)
        for rule in rules:
            self.add(rule)

    def add(self, rule: FaultRule) -> FaultRule:
        """Append a rule (rules are tried in order; the first terminal one wins)."""
        if not isinstance(rule, FaultRule):
            raise FaultRuleError(f"expected a FaultRule, got {rule!r}", rule=repr(rule))
        with self._lock:
            self._rules.append(rule)
            self._fired.append(0)
        return rule

    def inject(
        self,
        effect: Effect | str,
        operations: str | tuple[str, ...] = "*",
        *,
        key: str = "*",
        bucket: str = "*",
        times: int | None = None,
        probability: float | None = None,
        name: str = "",
    ) -> FaultRule:
        """Shorthand for ``add(FaultRule(...))``."""
        return self.add(
            FaultRule(
                effect,
                operations,
                key=key,
                bucket=bucket,
                times=times,
                probability=probability,
                name=name,
            )
        )

    def extend(self, rules: Iterable[FaultRule]) -> None:
        """Add several rules (a preset's)."""
        for rule in rules:
            self.add(rule)

    def clear(self, *, reseed: bool = True) -> None:
        """Forget rules and recorded calls (and restart the RNG from the seed)."""
        with self._lock:
            self._rules.clear()
            self._fired.clear()
            self._calls.clear()
            if reseed:
                self._rng = random.Random(self.seed)

    @property
    def rules(self) -> list[FaultRule]:
        """The rules, in order."""
        with self._lock:
            return list(self._rules)

    @property
    def calls(self) -> list[FaultCall]:
        """Every attempt seen so far, in order."""
        with self._lock:
            return list(self._calls)

    def fired(self, rule: FaultRule) -> int:
        """How many times ``rule`` applied its effect."""
        with self._lock:
            for index, known in enumerate(self._rules):
                if known is rule:
                    return self._fired[index]
        raise FaultRuleError(f"rule {rule.describe()} is not in this plan", rule=rule.name)

    def attempts(
        self, operation: str | None = None, *, key: str | None = None, level: str = LEVEL_SEND
    ) -> int:
        """Number of recorded attempts, optionally for one operation (botocore name or
        snake_case, checked like a rule's: a typo is an error, not a silent 0) and key."""
        if operation is not None:
            operation = _operation_name(operation)
            if any(ch in operation for ch in "*?["):
                raise FaultRuleError(
                    f"attempts() counts one operation, not a glob: {operation!r}",
                    operation=operation,
                )
        return sum(
            1
            for call in self.calls
            if call.level == level
            and (operation is None or call.operation == operation)
            and (key is None or call.key == key)
        )

    def decide(
        self,
        operation: str,
        bucket: str | None,
        key: str | None,
        *,
        level: str = LEVEL_SEND,
        source: str = "botocore",
        attempt: int | None = None,
    ) -> list[Effect]:
        """The effects for one attempt (latencies first, at most one terminal), recorded."""
        chosen: list[Effect] = []
        with self._lock:
            for index, rule in enumerate(self._rules):
                effect = rule.the_effect
                if effect.level != level or not rule.matches(operation, bucket, key):
                    continue
                if rule.times is not None and self._fired[index] >= rule.times:
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                self._fired[index] += 1
                chosen.append(effect)
                if effect.terminal:
                    break
            self._calls.append(
                FaultCall(
                    operation,
                    bucket,
                    key,
                    level,
                    source,
                    attempt,
                    tuple(e.describe() for e in chosen),
                )
            )
        if chosen:
            logger.debug(
                "fault %s on %s %s/%s", [e.describe() for e in chosen], operation, bucket, key
            )
        return chosen


def error_body(code: str, message: str | None = None, *, key: str | None = None) -> bytes:
    """The XML error document S3 sends (``RequestId`` random, message marked as injected)."""
    text = message or _MESSAGES.get(code, code)
    parts = [
        f"<Code>{escape(code)}</Code>",
        f"<Message>{escape(text)} (injected by pytest_certstore)</Message>",
    ]
    if key:
        parts.append(f"<Key>{escape(key)}</Key>")
    parts.append(f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>"
    ).encode()


def corrupt(data: bytes) -> bytes:
    """``data`` with the middle byte inverted (same length, so only checksums can tell)."""
    if not data:
        return data
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
