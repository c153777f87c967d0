"""Settings and feature flags, read from the environment when an operation runs.

The background incident this module exists to prevent: flags read once at import time, so a
rollback needed a restart of every process. Here nothing is frozen at import. :class:`FlagSource`
resolves the four flags on every call, from (highest first) an optional flags file
(``CERTSTORE_FLAGS_FILE``, TOML or JSON, re-read when its modification time changes), the
environment, and the defaults. Rolling back every process is one edit of one file.

Every value is parsed strictly; a bad one raises :class:`~certstore.errors.ConfigError` naming
the variable and the value.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from certstore.errors import ConfigError

logger = logging.getLogger(__name__)

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})

#: Bounds of a presigned URL's lifetime: SigV4 refuses more than seven days.
MIN_URL_EXPIRY = 1
MAX_URL_EXPIRY = 7 * 24 * 3600

CHECKSUM_MODES = ("when_supported", "when_required")

SOURCE_DEFAULT = "default"
SOURCE_ENV = "env"
SOURCE_FLAGS_FILE = "flags file"


def parse_bool(variable: str, value: Any) -> bool:
    """Strict boolean: ``true/false/1/0/yes/no/on/off`` (any case) or a real bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ConfigError(
        f"{variable}={value!r} is not a boolean; use one of true/false, 1/0, yes/no, on/off",
        variable=variable,
        value=value,
    )


def _int_between(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(variable: str, value: Any) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            number = None
        if number is None or isinstance(value, bool) or not low <= number <= high:
            raise ConfigError(
                f"{variable}={value!r} must be a whole number from {low} to {high}",
                variable=variable,
                value=value,
            )
        return number

    return parse


def _seconds(low: float, high: float) -> Callable[[str, Any], float]:
    def parse(variable: str, value: Any) -> float:
        try:
            number = float(str(value).strip())
        except ValueError:
            number = float("nan")
        if isinstance(value, bool) or not low < number <= high:
            raise ConfigError(
                f"{variable}={value!r} must be a number of seconds above {low:g} and at most "
                f"{high:g}",
                variable=variable,
                value=value,
            )
        return number

    return parse


def _seconds_or_off(high: float) -> Callable[[str, Any], float]:
    """Like :func:`_seconds` but 0 is allowed (it turns the feature off)."""

    def parse(variable: str, value: Any) -> float:
        try:
            number = float(str(value).strip())
        except ValueError:
            number = float("nan")
        if isinstance(value, bool) or not 0 <= number <= high:
            raise ConfigError(
                f"{variable}={value!r} must be a number of seconds from 0 (off) to {high:g}",
                variable=variable,
                value=value,
            )
        return number

    return parse


def _text(variable: str, value: Any) -> str | None:
    text = str(value).strip()
    return text or None


def _url(variable: str, value: Any) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"{variable}={value!r} is not an http(s) URL", variable=variable, value=value
        )
    return text.rstrip("/")


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(variable: str, value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ConfigError(
                f"{variable}={value!r} must be one of {', '.join(choices)}",
                variable=variable,
                value=value,
            )
        return text

    return parse


def _permissions(owner: int, examples: str) -> Callable[[str, Any], int | None]:
    """Permission bits in octal (``644``, ``0644``, ``0o644``; an int from Django's settings).

    The owner must keep the ``owner`` bits: certstore reads and replaces its own files (and
    creates files in its own folders).
    """

    def parse(variable: str, value: Any) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            mode: int | None = value
        else:
            text = str(value).strip().lower().removeprefix("0o")
            if not text:
                return None
            try:
                mode = int(text, 8)
            except ValueError:
                mode = None
        if mode is None or not 0 <= mode <= 0o777 or mode & owner != owner:
            kept = "read and write" if owner == 0o600 else "read, write and search"
            raise ConfigError(
                f"{variable}={value!r} must be octal permission bits from {owner:o} to 777 "
                f"with the owner's {kept} (for example {examples})",
                variable=variable,
                value=value,
            )
        return mode

    return parse


def _prefix(variable: str, value: Any) -> str:
    from certstore.errors import InvalidKeyError
    from certstore.keys import normalize_prefix

    try:
        return normalize_prefix(str(value))
    except InvalidKeyError as err:
        raise ConfigError(f"{variable}={value!r}: {err}", variable=variable, value=value) from err


@dataclass(frozen=True)
class Option:
    """One setting: where it is read from, how it is parsed, its default."""

    variable: str
    attribute: str
    parse: Callable[[str, Any], Any]
    default: Any
    help: str
    flag: bool = False
    secret: bool = False


OPTIONS: tuple[Option, ...] = (
    Option(
        "CERT_S3_DUAL_WRITE",
        "dual_write",
        parse_bool,
        False,
        "save writes local (authoritative) then S3 (shadow)",
        flag=True,
    ),
    Option(
        "CERT_S3_READ_PRIMARY",
        "read_primary",
        parse_bool,
        False,
        "reads try S3 first and fall back to local",
        flag=True,
    ),
    Option(
        "CERT_S3_BACKFILL_ENABLED",
        "backfill_enabled",
        parse_bool,
        False,
        "a real backfill refuses to run without it",
        flag=True,
    ),
    Option(
        "CERT_S3_ONLY",
        "s3_only",
        parse_bool,
        False,
        "S3 is authoritative; no local storage, no fallback",
        flag=True,
    ),
    Option("AWS_STORAGE_BUCKET_NAME", "bucket", _text, None, "the S3 bucket"),
    Option("AWS_S3_REGION_NAME", "region", _text, "us-east-1", "the bucket's region"),
    Option(
        "AWS_S3_ENDPOINT_URL",
        "endpoint_url",
        _url,
        None,
        "an S3-compatible endpoint (moto, MinIO, ...); empty for AWS",
    ),
    Option(
        "AWS_S3_KEY_PREFIX",
        "key_prefix",
        _prefix,
        "certificates/",
        "prefix of every object key in the bucket",
    ),
    Option(
        "AWS_S3_MAX_ATTEMPTS",
        "max_attempts",
        _int_between(1, 10),
        3,
        "botocore standard-mode attempts per S3 call (first try included)",
    ),
    Option(
        "AWS_S3_CONNECT_TIMEOUT",
        "connect_timeout",
        _seconds(0, 300),
        5.0,
        "seconds to wait for a connection",
    ),
    Option(
        "AWS_S3_READ_TIMEOUT",
        "read_timeout",
        _seconds(0, 3600),
        30.0,
        "seconds to wait for a response",
    ),
    Option(
        "AWS_QUERYSTRING_EXPIRE",
        "url_expiry",
        _int_between(MIN_URL_EXPIRY, MAX_URL_EXPIRY),
        3600,
        "lifetime of presigned URLs in seconds (1 s to 7 days)",
    ),
    Option(
        "AWS_S3_CHECKSUM_MODE",
        "checksum_mode",
        _choice(*CHECKSUM_MODES),
        "when_supported",
        "boto3 request/response checksums: when_required for providers that reject them",
    ),
    Option(
        "AWS_S3_MAX_POOL_CONNECTIONS",
        "max_pool_connections",
        _int_between(1, 1024),
        32,
        "HTTP connections the shared S3 client keeps",
    ),
    Option("CERTSTORE_MEDIA_ROOT", "media_root", _text, "media", "the local media directory"),
    Option(
        "CERTSTORE_FILE_MODE",
        "file_mode",
        _permissions(0o600, "644 or 640"),
        None,
        "permission bits of certificate files written locally, in octal (default: 666 less "
        "the umask, like any new file)",
    ),
    Option(
        "CERTSTORE_DIRECTORY_MODE",
        "directory_mode",
        _permissions(0o700, "755 or 750"),
        None,
        "permission bits of the folders certstore creates under the media root, in octal "
        "(default: 777 less the umask, like mkdir)",
    ),
    Option(
        "CERTSTORE_MEDIA_URL",
        "media_url",
        _text,
        "/media/",
        "URL prefix under which local files are served",
    ),
    Option(
        "CERTSTORE_FLAGS_FILE",
        "flags_file",
        _text,
        None,
        "TOML or JSON file whose flags override the environment, re-read on change",
    ),
    Option(
        "CERTSTORE_CATALOG_URL",
        "catalog_url",
        _text,
        "sqlite:///certstore-catalog.sqlite3",
        "SQLAlchemy URL of the certificate catalog",
    ),
    Option(
        "CERTSTORE_WEB_EXISTS_TTL",
        "web_exists_ttl",
        _seconds_or_off(300),
        60.0,
        "seconds the web service trusts that an object it saw in S3 is still there; 0: off",
    ),
    Option(
        "AWS_ACCESS_KEY_ID",
        "access_key_id",
        _text,
        None,
        "S3 access key (boto3 also finds profiles and roles)",
        secret=True,
    ),
    Option("AWS_SECRET_ACCESS_KEY", "secret_access_key", _text, None, "S3 secret key", secret=True),
    Option(
        "CERTSTORE_API_TOKEN",
        "api_token",
        _text,
        None,
        "bearer token the web service requires for uploads",
        secret=True,
    ),
)

FLAG_OPTIONS: tuple[Option, ...] = tuple(option for option in OPTIONS if option.flag)
_BY_VARIABLE = {option.variable: option for option in OPTIONS}
_FLAG_BY_NAME: dict[str, Option] = {}
for _option in FLAG_OPTIONS:
    _FLAG_BY_NAME[_option.variable] = _option
    _FLAG_BY_NAME[_option.attribute] = _option


@dataclass(frozen=True)
class Flags:
    """The four migration flags at one moment."""

    dual_write: bool = False
    read_primary: bool = False
    backfill_enabled: bool = False
    s3_only: bool = False

    @property
    def s3_in_play(self) -> bool:
        """True when any operation of the router may touch S3."""
        return self.dual_write or self.read_primary or self.s3_only

    @property
    def phase(self) -> str:
        """The operator phase this combination corresponds to (see the architecture)."""
        if self.s3_only:
            return "3 s3-only"
        if self.dual_write and self.read_primary:
            return "2 read-primary"
        if self.dual_write:
            return "1 shadow"
        if self.read_primary:
            return "read-primary without dual-write (suspicious)"
        return "0 local"

    def summary(self) -> str:
        """One line for logs and ``certstore flags --watch``: each flag and the phase."""
        return (
            f"dual_write={str(self.dual_write).lower()}"
            f" read_primary={str(self.read_primary).lower()}"
            f" backfill_enabled={str(self.backfill_enabled).lower()}"
            f" s3_only={str(self.s3_only).lower()} phase={self.phase!r}"
        )

    def warnings(self) -> list[str]:
        """Combinations that are legal but probably a mistake."""
        notes = []
        if self.read_primary and not self.dual_write and not self.s3_only:
            notes.append(
                "CERT_S3_READ_PRIMARY is on without CERT_S3_DUAL_WRITE: new certificates are "
                "saved locally only and will always be read through the fallback"
            )
        if self.s3_only and (self.dual_write or self.read_primary):
            notes.append(
                "CERT_S3_ONLY is on: CERT_S3_DUAL_WRITE and CERT_S3_READ_PRIMARY are ignored"
            )
        return notes


@dataclass(frozen=True)
class Resolved:
    """A setting's effective value and where it came from."""

    variable: str
    value: Any
    source: str
    secret: bool = False

    @property
    def display(self) -> str:
        """The value as ``certstore flags`` shows it, secrets masked."""
        if self.value is None:
            return "-"
        if self.secret:
            text = str(self.value)
            return "****" + text[-4:] if len(text) > 8 else "****"
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)


class _FlagsFileCache:
    """Parses a flags file once per version, an invalid one too; thread-safe.

    A version is (path, inode, size, mtime, ctime): ``cp -p``, ``rsync -a`` or ``install -p``
    restore the old modification time, and an edit of the same size would then go unseen;
    the inode changes with every atomic replace and the ctime with every write, and neither can
    be set back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, int, int, int, int] | None = None
        self._values: dict[str, bool] = {}
        self._error: ConfigError | None = None

    def read(self, path: str) -> dict[str, bool]:
        try:
            stat = os.stat(path)
        except OSError as err:
            raise ConfigError(
                f"CERTSTORE_FLAGS_FILE={path!r} cannot be read: {err.strerror}",
                variable="CERTSTORE_FLAGS_FILE",
                value=path,
            ) from err
        key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        with self._lock:
            if key == self._key:
                if self._error is not None:
                    raise self._error
                return self._values
        try:
            values = parse_flags_file(path)
        except ConfigError as err:
            with self._lock:
                self._key, self._values, self._error = key, {}, err
            raise
        with self._lock:
            self._key, self._values, self._error = key, values, None
        return values


def parse_flags_file(path: str | os.PathLike[str]) -> dict[str, bool]:
    """Read a flags file: ``{flag: bool}`` keyed by variable name.

    Keys may be the variable names (``CERT_S3_DUAL_WRITE``) or the short names
    (``dual_write``), at the top level or under a ``[flags]`` table. Anything else is an error:
    a typo in a rollback file must not be silently ignored.
    """
    variable = "CERTSTORE_FLAGS_FILE"
    text_path = os.fspath(path)
    try:
        raw = Path(text_path).read_bytes()
    except OSError as err:
        raise ConfigError(
            f"{variable}={text_path!r} cannot be read: {err.strerror}",
            variable=variable,
            value=text_path,
        ) from err
    try:
        if text_path.endswith(".json") or raw.lstrip().startswith(b"{"):
            data = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
        else:
            import tomllib  # only when a flag file is TOML: every process imports this module

            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{variable}={text_path!r} is neither valid TOML nor valid JSON: {err}",
            variable=variable,
            value=text_path,
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(
            f"{variable}={text_path!r} must hold a table of flags",
            variable=variable,
            value=text_path,
        )
    if set(data) == {"flags"} and isinstance(data["flags"], dict):
        data = data["flags"]
    values: dict[str, bool] = {}
    given_as: dict[str, str] = {}
    for name, value in data.items():
        option = _FLAG_BY_NAME.get(name)
        if option is None:
            known = ", ".join(o.variable for o in FLAG_OPTIONS)
            raise ConfigError(
                f"{variable}={text_path!r}: unknown flag {name!r} (known: {known})",
                variable=variable,
                value=text_path,
            )
        if option.variable in given_as:
            raise ConfigError(
                f"{variable}={text_path!r}: {option.variable} is set twice (as "
                f"{given_as[option.variable]!r} and {name!r}); keep one",
                variable=variable,
                value=text_path,
            )
        given_as[option.variable] = name
        values[option.variable] = parse_bool(f"{option.variable} in {text_path}", value)
    if not values:
        # An empty file is also what a reader sees while an editor or ``>`` rewrites the file
        # in place; taken as "no flags here", every flag would fall back to the environment
        # for that moment (in phase 3: writes that go to local disk only).
        raise ConfigError(
            f"{variable}={text_path!r} sets no flag (a file being rewritten in place reads as "
            "empty: write it atomically; to take every flag from the environment, unset "
            f"{variable})",
            variable=variable,
            value=text_path,
        )
    return values


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique (``json`` would keep the last of two silently)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"key {key!r} appears twice")
        data[key] = value
    return data


_FLAGS_FILES = _FlagsFileCache()


def resolve(env: Mapping[str, str] | None = None) -> dict[str, Resolved]:
    """Every setting's effective value and source, read now."""
    environ = os.environ if env is None else env
    resolved: dict[str, Resolved] = {}
    for option in OPTIONS:
        raw = environ.get(option.variable)
        if raw is None or (raw.strip() == "" and not option.flag):
            resolved[option.variable] = Resolved(
                option.variable, option.default, SOURCE_DEFAULT, option.secret
            )
        else:
            resolved[option.variable] = Resolved(
                option.variable, option.parse(option.variable, raw), SOURCE_ENV, option.secret
            )
    flags_file = resolved["CERTSTORE_FLAGS_FILE"].value
    if flags_file:
        for name, value in _FLAGS_FILES.read(flags_file).items():
            resolved[name] = Resolved(name, value, SOURCE_FLAGS_FILE)
    return resolved


class FlagSource:
    """Resolves :class:`Flags` at call time (environment, then the flags file on top).

    ``env`` defaults to the live ``os.environ``; pass a mapping to pin it (tests, embedding).
    This runs on every router operation, so it parses only when the raw values changed; the
    flags file is re-stat'ed on every call and re-read when its mtime or size changes.

    **Last good flags.** Once this source has read the flags file, a later version that cannot
    be read or parsed does not fail the operations: the source keeps the file's last good
    values (the environment's flags still apply under them), logs the error once per version
    at ERROR, and says so in :attr:`problem` (the web
    service's ``/healthz`` reports ``degraded``; ``certstore flags`` exits 2). A typo in an
    edit must not take every process down, nor silently apply half a file. A source that has
    never read the file successfully (a process starting on a bad file) raises
    :class:`~certstore.errors.ConfigError` as before.
    """

    _VARIABLES = (*(o.variable for o in FLAG_OPTIONS), "CERTSTORE_FLAGS_FILE")

    def __init__(self, env: Mapping[str, str] | None = None, *, log_problems: bool = True) -> None:
        self._env = env
        #: False for a caller that reports :attr:`problem` itself (``certstore flags --watch``).
        self.log_problems = log_problems
        #: ``(raw values, file values, flags)`` of the last resolution, replaced as one
        #: object: threads of a web server read it while another thread resolves.
        self._state: tuple[tuple[str | None, ...], dict[str, bool] | None, Flags] | None = None
        #: Why the flags in force are the last good ones (None: the file was read fine).
        self.problem: str | None = None

    def current(self) -> Flags:
        """The flags in force right now."""
        environ = os.environ if self._env is None else self._env
        raw = tuple([environ.get(name) for name in self._VARIABLES])
        state = self._state
        file_values: dict[str, bool] | None = None
        flags_file = raw[-1].strip() if raw[-1] else ""
        if flags_file:
            try:
                file_values = _FLAGS_FILES.read(flags_file)
            except ConfigError as err:
                if state is None or state[0][-1] != raw[-1] or state[1] is None:
                    raise  # never read from this file: nothing good to keep
                self._keep_last_good(err, state[2])
                if raw == state[0]:
                    return state[2]
                # the environment's flags changed meanwhile: they still apply, under the
                # file's last good values
                return self._resolve(raw, state[1])
        if self.problem is not None:
            self.problem = None
            flags = self._resolve(raw, file_values)
            if self.log_problems and state is not None and state[0][-1] == raw[-1]:
                logger.warning(
                    "CERTSTORE_FLAGS_FILE=%r is valid again: %s", flags_file, flags.summary()
                )
            return flags
        if state is not None and raw == state[0] and file_values is state[1]:
            return state[2]
        return self._resolve(raw, file_values)

    __call__ = current

    def _resolve(self, raw: tuple[str | None, ...], file_values: dict[str, bool] | None) -> Flags:
        values: dict[str, bool] = {}
        for flag, text in zip(FLAG_OPTIONS, raw, strict=False):
            values[flag.variable] = (
                flag.default if text is None else flag.parse(flag.variable, text)
            )
        if file_values:
            values.update(file_values)
        flags = Flags(*(values[o.variable] for o in FLAG_OPTIONS))
        self._state = (raw, file_values, flags)
        return flags

    def _keep_last_good(self, err: ConfigError, flags: Flags) -> None:
        problem = f"{err}; keeping the last good flags: {flags.summary()}"
        if problem != self.problem:
            self.problem = problem
            if self.log_problems:
                logger.error("%s", problem)


@dataclass(frozen=True)
class Settings:
    """Every non-flag setting at one moment. Build with :meth:`from_env`."""

    bucket: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None
    key_prefix: str = "certificates/"
    max_attempts: int = 3
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    url_expiry: int = 3600
    checksum_mode: str = "when_supported"
    max_pool_connections: int = 32
    media_root: str = "media"
    file_mode: int | None = None
    directory_mode: int | None = None
    media_url: str = "/media/"
    flags_file: str | None = None
    catalog_url: str = "sqlite:///certstore-catalog.sqlite3"
    web_exists_ttl: float = 60.0
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    api_token: str | None = field(default=None, repr=False)
    env: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting now; ``overrides`` replace single values (by attribute name)."""
        values = resolve(env)
        kwargs = {o.attribute: values[o.variable].value for o in OPTIONS if not o.flag}
        unknown = set(overrides) - set(kwargs)
        if unknown:
            raise ConfigError(
                f"unknown setting(s): {', '.join(sorted(unknown))}",
                variable=sorted(unknown)[0],
            )
        kwargs.update(overrides)
        return cls(env=env, **kwargs)

    def flag_source(self) -> FlagSource:
        """A :class:`FlagSource` reading the same environment as these settings."""
        return FlagSource(self.env)

    def require_bucket(self) -> str:
        """The bucket name, or a clear error when it is not configured."""
        if not self.bucket:
            raise ConfigError(
                "AWS_STORAGE_BUCKET_NAME is not set; S3 needs a bucket",
                variable="AWS_STORAGE_BUCKET_NAME",
            )
        return self.bucket


def describe(env: Mapping[str, str] | None = None) -> list[Resolved]:
    """Every setting in table order, for ``certstore flags``."""
    values = resolve(env)
    return [values[o.variable] for o in OPTIONS]


def option(variable: str) -> Option:
    """The :class:`Option` for an environment variable name."""
    try:
        return _BY_VARIABLE[variable]
    except KeyError as err:
        raise ConfigError(f"unknown setting {variable!r}", variable=variable) from err


def variables() -> Iterable[str]:
    """All variable names certstore reads."""
    return (o.variable for o in OPTIONS)
