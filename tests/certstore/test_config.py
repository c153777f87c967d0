from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from certstore import config
from certstore.config import Flags, FlagSource, Settings, parse_bool
from certstore.errors import ConfigError


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "On", " on "])
def test_true_words(word: str) -> None:
    assert parse_bool("X", word) is True


@pytest.mark.parametrize("word", ["false", "0", "no", "OFF"])
def test_false_words(word: str) -> None:
    assert parse_bool("X", word) is False


@pytest.mark.parametrize("word", ["maybe", "", "2", "tru", "enabled"])
def test_anything_else_is_an_error_naming_variable_and_value(word: str) -> None:
    with pytest.raises(ConfigError) as info:
        FlagSource({"CERT_S3_DUAL_WRITE": word}).current()
    assert info.value.variable == "CERT_S3_DUAL_WRITE"
    assert info.value.value == word
    assert "CERT_S3_DUAL_WRITE" in str(info.value) and repr(word) in str(info.value)


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.region == "us-east-1"
    assert settings.max_attempts == 3
    assert settings.key_prefix == "certificates/"
    assert settings.url_expiry == 3600
    assert settings.checksum_mode == "when_supported"
    assert FlagSource({}).current() == Flags()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AWS_QUERYSTRING_EXPIRE", "-5"),
        ("AWS_QUERYSTRING_EXPIRE", "0"),
        ("AWS_QUERYSTRING_EXPIRE", str(7 * 24 * 3600 + 1)),
        ("AWS_QUERYSTRING_EXPIRE", "soon"),
        ("AWS_S3_MAX_ATTEMPTS", "0"),
        ("AWS_S3_MAX_ATTEMPTS", "3.5"),
        ("AWS_S3_CONNECT_TIMEOUT", "-1"),
        ("AWS_S3_READ_TIMEOUT", "abc"),
        ("AWS_S3_ENDPOINT_URL", "ftp://example"),
        ("AWS_S3_ENDPOINT_URL", "127.0.0.1:9000"),
        ("AWS_S3_CHECKSUM_MODE", "always"),
        ("AWS_S3_KEY_PREFIX", "../up"),
        ("AWS_S3_MAX_POOL_CONNECTIONS", "100000"),
        ("CERTSTORE_FILE_MODE", "rw-r--r--"),
        ("CERTSTORE_FILE_MODE", "0999"),
        ("CERTSTORE_FILE_MODE", "1644"),
        ("CERTSTORE_FILE_MODE", "0444"),
        ("CERTSTORE_FILE_MODE", "200"),
        ("CERTSTORE_DIRECTORY_MODE", "0644"),
        ("CERTSTORE_DIRECTORY_MODE", "7755"),
    ],
)
def test_bad_settings_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value})
    assert info.value.variable == variable
    assert variable in str(info.value)


@pytest.mark.parametrize(
    ("value", "mode"),
    [("644", 0o644), ("0640", 0o640), ("0o600", 0o600), (" 777 ", 0o777), ("", None)],
)
def test_file_mode_is_octal_permission_bits(value: str, mode: int | None) -> None:
    assert Settings.from_env({"CERTSTORE_FILE_MODE": value}).file_mode == mode
    assert Settings.from_env({}).file_mode is None
    # an int is what Django's FILE_UPLOAD_PERMISSIONS holds
    assert config.option("CERTSTORE_FILE_MODE").parse("FILE_UPLOAD_PERMISSIONS", 0o640) == 0o640
    with pytest.raises(ConfigError, match="FILE_UPLOAD_PERMISSIONS"):
        config.option("CERTSTORE_FILE_MODE").parse("FILE_UPLOAD_PERMISSIONS", 0o1777)
    assert Settings.from_env({"CERTSTORE_DIRECTORY_MODE": "0750"}).directory_mode == 0o750
    assert Settings.from_env({}).directory_mode is None


def test_url_expiry_bounds_are_inclusive() -> None:
    assert Settings.from_env({"AWS_QUERYSTRING_EXPIRE": "1"}).url_expiry == 1
    assert Settings.from_env({"AWS_QUERYSTRING_EXPIRE": "604800"}).url_expiry == 604800


def test_flags_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    source = FlagSource()
    assert source.current().dual_write is False
    monkeypatch.setenv("CERT_S3_DUAL_WRITE", "on")
    assert source.current().dual_write is True
    monkeypatch.setenv("CERT_S3_DUAL_WRITE", "off")
    assert source.current().dual_write is False


def _write(path: Path, text: str) -> None:
    """Write and move the mtime forward, as an editor saving a second later would."""
    path.write_text(text)
    stamp = time.time() + getattr(_write, "bump", 0)
    _write.bump = getattr(_write, "bump", 0) + 2  # type: ignore[attr-defined]
    os.utime(path, (stamp, stamp))


def test_flags_file_overrides_env_and_is_reread_on_change(tmp_path: Path) -> None:
    flags_file = tmp_path / "flags.toml"
    _write(flags_file, "CERT_S3_DUAL_WRITE = true\nread_primary = true\n")
    env = {"CERT_S3_DUAL_WRITE": "false", "CERTSTORE_FLAGS_FILE": str(flags_file)}
    source = FlagSource(env)
    assert source.current() == Flags(dual_write=True, read_primary=True)
    _write(flags_file, "[flags]\nCERT_S3_DUAL_WRITE = false\nCERT_S3_READ_PRIMARY = 'off'\n")
    assert source.current() == Flags()
    resolved = config.resolve(env)
    assert resolved["CERT_S3_DUAL_WRITE"].source == config.SOURCE_FLAGS_FILE
    assert resolved["CERT_S3_ONLY"].source == config.SOURCE_DEFAULT


def test_json_flags_file(tmp_path: Path) -> None:
    flags_file = tmp_path / "flags.json"
    flags_file.write_text(json.dumps({"CERT_S3_ONLY": True}))
    assert FlagSource({"CERTSTORE_FLAGS_FILE": str(flags_file)}).current().s3_only is True


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("CERT_S3_DUAL_WRIT = true", "unknown flag 'CERT_S3_DUAL_WRIT'"),
        ("CERT_S3_DUAL_WRITE = 'maybe'", "not a boolean"),
        ("this is = = not toml", "neither valid TOML nor valid JSON"),
        ("[1, 2]", "neither valid TOML nor valid JSON"),
        ('{"flags": [1]}', "unknown flag 'flags'"),
        ('{"CERT_S3_ONLY": true, "CERT_S3_ONLY": false}', "key 'CERT_S3_ONLY' appears twice"),
        ("CERT_S3_ONLY = true\ns3_only = false", "CERT_S3_ONLY is set twice"),
        ('{"dual_write": true, "CERT_S3_DUAL_WRITE": false}', "CERT_S3_DUAL_WRITE is set twice"),
    ],
)
def test_bad_flags_files(tmp_path: Path, content: str, message: str) -> None:
    flags_file = tmp_path / "flags.toml"
    flags_file.write_text(content)
    with pytest.raises(ConfigError) as info:
        FlagSource({"CERTSTORE_FLAGS_FILE": str(flags_file)}).current()
    assert message in str(info.value)


def test_unreadable_flags_file_names_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        FlagSource({"CERTSTORE_FLAGS_FILE": str(missing)}).current()
    assert info.value.variable == "CERTSTORE_FLAGS_FILE"
    assert str(missing) in str(info.value)


def test_describe_reports_sources_and_masks_secrets() -> None:
    rows = {
        r.variable: r
        for r in config.describe(
            {
                "AWS_SECRET_ACCESS_KEY": "abcdefghijklmnop",
                "AWS_STORAGE_BUCKET_NAME": "certs",
            }
        )
    }
    assert rows["AWS_SECRET_ACCESS_KEY"].display == "****mnop"
    assert "abcdefgh" not in rows["AWS_SECRET_ACCESS_KEY"].display
    assert rows["AWS_STORAGE_BUCKET_NAME"].source == config.SOURCE_ENV
    assert rows["AWS_S3_REGION_NAME"].source == config.SOURCE_DEFAULT


def test_phases_and_warnings() -> None:
    assert Flags().phase == "0 local"
    assert Flags(dual_write=True).phase == "1 shadow"
    assert Flags(dual_write=True, read_primary=True).phase == "2 read-primary"
    assert Flags(s3_only=True, dual_write=True).phase == "3 s3-only"
    assert Flags(read_primary=True).warnings()
    assert not Flags(dual_write=True, read_primary=True).warnings()


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({}, bukket="x")


def test_an_invalid_edit_keeps_the_last_good_flags_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flags_file = tmp_path / "flags.toml"
    _write(flags_file, "CERT_S3_DUAL_WRITE = true\nCERT_S3_READ_PRIMARY = true\n")
    source = FlagSource({"CERTSTORE_FLAGS_FILE": str(flags_file)})
    good = source.current()
    assert good == Flags(dual_write=True, read_primary=True) and source.problem is None

    _write(flags_file, "CERT_S3_READ_PRIMARY = 'nope'\n")
    with caplog.at_level("ERROR", logger="certstore.config"):
        assert source.current() == good
        assert source.current() == good  # the same bad version is reported once
    assert source.problem is not None
    assert "not a boolean" in source.problem and "keeping the last good flags" in source.problem
    assert "phase='2 read-primary'" in source.problem
    assert [r.levelname for r in caplog.records] == ["ERROR"]

    # a process that never read the file good has nothing to keep: it refuses
    with pytest.raises(ConfigError, match="not a boolean"):
        FlagSource({"CERTSTORE_FLAGS_FILE": str(flags_file)}).current()

    flags_file.unlink()  # unreadable is the same: last good, problem named
    assert source.current() == good and "cannot be read" in (source.problem or "")

    _write(flags_file, "CERT_S3_READ_PRIMARY = false\nCERT_S3_DUAL_WRITE = true\n")
    with caplog.at_level("WARNING", logger="certstore.config"):
        assert source.current() == Flags(dual_write=True)
    assert source.problem is None
    assert "valid again" in caplog.records[-1].getMessage()


def test_a_flags_file_that_sets_no_flag_is_refused(tmp_path: Path) -> None:
    """Empty is what a reader sees mid-rewrite; taken as "no flags", every flag would fall
    back to the environment for that moment."""
    flags_file = tmp_path / "flags.toml"
    source = FlagSource({"CERTSTORE_FLAGS_FILE": str(flags_file)})
    for content in ("", "\n# nothing yet\n", "[flags]\n", "{}"):
        flags_file.write_text(content)
        with pytest.raises(ConfigError, match="sets no flag"):
            FlagSource({"CERTSTORE_FLAGS_FILE": str(flags_file)}).current()
    _write(flags_file, "CERT_S3_ONLY = true\n")
    assert source.current() == Flags(s3_only=True)
    _write(flags_file, "")  # truncated by an in-place rewrite: phase 3 stays phase 3
    assert source.current() == Flags(s3_only=True)
    assert "sets no flag" in (source.problem or "")


def test_a_different_flags_file_path_does_not_inherit_last_good_flags(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("CERT_S3_DUAL_WRITE = true\n")
    bad = tmp_path / "bad.toml"
    bad.write_text("CERT_S3_DUAL_WRITE = 'perhaps'\n")
    env = {"CERTSTORE_FLAGS_FILE": str(good)}
    source = FlagSource(env)
    assert source.current().dual_write
    env["CERTSTORE_FLAGS_FILE"] = str(bad)
    with pytest.raises(ConfigError, match="not a boolean"):
        source.current()


def test_while_the_file_is_invalid_the_environment_still_counts(tmp_path: Path) -> None:
    flags_file = tmp_path / "flags.toml"
    _write(flags_file, "CERT_S3_DUAL_WRITE = true\n")
    env = {"CERTSTORE_FLAGS_FILE": str(flags_file)}
    source = FlagSource(env)
    assert source.current() == Flags(dual_write=True)
    _write(flags_file, "CERT_S3_DUAL_WRITE = 'typo'\n")
    env["CERT_S3_BACKFILL_ENABLED"] = "true"
    assert source.current() == Flags(dual_write=True, backfill_enabled=True)
    env["CERT_S3_BACKFILL_ENABLED"] = "maybe"
    with pytest.raises(ConfigError, match="CERT_S3_BACKFILL_ENABLED='maybe'"):
        source.current()


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(tmp_path: Path) -> None:
    """cp -p / rsync -a / install -p put the old modification time back; an edit of the same
    size would go unseen by a (size, mtime) check, and a rollback would never happen."""
    flags_file = tmp_path / "flags.toml"
    flags_file.write_text("CERT_S3_READ_PRIMARY = 1\nCERT_S3_DUAL_WRITE = 1\n")
    stamp = flags_file.stat()
    source = FlagSource({"CERTSTORE_FLAGS_FILE": str(flags_file)})
    assert source.current().read_primary
    staged = tmp_path / "flags.new"
    staged.write_text("CERT_S3_READ_PRIMARY = 0\nCERT_S3_DUAL_WRITE = 1\n")
    os.utime(staged, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    os.replace(staged, flags_file)
    assert flags_file.stat().st_mtime_ns == stamp.st_mtime_ns
    assert flags_file.stat().st_size == stamp.st_size
    assert not source.current().read_primary
