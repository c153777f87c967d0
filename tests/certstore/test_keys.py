from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certstore.errors import InvalidKeyError
from certstore.keys import (
    MAX_KEY_BYTES,
    MediaRoot,
    is_valid_key,
    join_prefix,
    normalize_key,
    normalize_prefix,
    resolve_under,
)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("../etc/passwd", "parent"),
        ("a/../../b.pdf", "parent"),
        ("a/b/..", "parent"),
        ("/etc/passwd", "absolute"),
        ("C:/Windows/win.ini", "absolute"),
        ("a\\..\\b.pdf", "backslash"),
        ("a\x00b.pdf", "nul"),
        ("a\nb.pdf", "control"),
        ("a\x7fb.pdf", "control"),
        ("c1/a\x85b.pdf", "control"),
        ("c1/a\x9b31m.pdf", "control"),
        ("x" * 256 + ".pdf", "segment_too_long"),
        ("ok/" + "é" * 128 + "/a.pdf", "segment_too_long"),
        ("folder/", "folder"),
        ("./.", "empty"),
        ("x" * (MAX_KEY_BYTES + 1), "too_long"),
        ("é" * (MAX_KEY_BYTES // 2 + 1), "too_long"),
        ("bad\ud800.pdf", "encoding"),
        (b"bytes.pdf", "type"),
    ],
)
def test_bad_keys_are_rejected_with_their_reason(key: object, reason: str) -> None:
    with pytest.raises(InvalidKeyError) as info:
        normalize_key(key)  # type: ignore[arg-type]
    assert info.value.reason == reason
    assert "invalid key" in str(info.value)
    assert not is_valid_key(key)


@pytest.mark.parametrize(
    ("key", "canonical"),
    [
        ("a.pdf", "a.pdf"),
        ("a//b/./c.pdf", "a/b/c.pdf"),
        ("./2024/cert.pdf", "2024/cert.pdf"),
        ("Curaçao/東京/Δ.pdf", "Curaçao/東京/Δ.pdf"),
        ("..hidden.pdf", "..hidden.pdf"),
        ("/".join(["x" * 200] * 5) + "/" + "y" * 19, "/".join(["x" * 200] * 5) + "/" + "y" * 19),
        ("x" * 251 + ".pdf", "x" * 251 + ".pdf"),
        ("a/\xa0nbsp.pdf", "a/\xa0nbsp.pdf"),
    ],
)
def test_good_keys_normalise(key: str, canonical: str) -> None:
    assert normalize_key(key) == canonical


def test_prefix_counts_towards_the_s3_limit() -> None:
    key = "/".join(["x" * 200] * 5) + "/" + "y" * 14  # 1,019 bytes
    assert normalize_key(key) == key
    with pytest.raises(InvalidKeyError) as info:
        join_prefix("certificates/", key)
    assert info.value.reason == "too_long"
    assert join_prefix("certificates/", "a.pdf") == "certificates/a.pdf"
    assert join_prefix("", "a.pdf") == "a.pdf"


@pytest.mark.parametrize(
    ("raw", "prefix"), [("", ""), ("/", ""), ("certs", "certs/"), ("/a/b/", "a/b/")]
)
def test_prefix_normalisation(raw: str, prefix: str) -> None:
    assert normalize_prefix(raw) == prefix


def test_a_symlink_inside_the_root_cannot_lead_outside(tmp_path: Path) -> None:
    root = tmp_path / "media"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(InvalidKeyError) as info:
        resolve_under(root, "link/secret.pdf")
    assert info.value.reason == "escape"


def _symlinked_tree(tmp_path: Path) -> Path:
    """media/ with a link out (dir and file), a link that stays inside, and a dangling one."""
    root = tmp_path / "media"
    outside = tmp_path / "outside"
    (root / "real" / "deep").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.pdf").write_bytes(b"secret")
    (root / "real" / "deep" / "a.pdf").write_bytes(b"a")
    os.symlink(outside, root / "out")
    os.symlink(outside / "secret.pdf", root / "real" / "secret.pdf")
    os.symlink(root / "real" / "deep", root / "alias")
    os.symlink(tmp_path / "nowhere", root / "dangling")
    return root


@pytest.mark.parametrize(
    ("key", "escapes"),
    [
        ("out/secret.pdf", True),
        ("real/secret.pdf", True),
        ("out/missing/x.pdf", True),
        ("alias/a.pdf", False),
        ("real/deep/a.pdf", False),
        ("real/missing/x.pdf", False),
        ("dangling/x.pdf", True),
    ],
)
def test_media_root_refuses_exactly_the_symlinks_that_leave_it(
    tmp_path: Path, key: str, escapes: bool
) -> None:
    root = _symlinked_tree(tmp_path)
    for resolve in (MediaRoot(root).resolve, lambda k: resolve_under(root, k)):
        if escapes:
            with pytest.raises(InvalidKeyError) as info:
                resolve(key)
            assert info.value.reason == "escape"
        else:
            path = resolve(key)
            assert path == Path(os.path.realpath(root)) / key
            assert Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def test_media_root_resolves_its_root_once_and_answers_under_it(tmp_path: Path) -> None:
    real = tmp_path / "real-media"
    real.mkdir()
    os.symlink(real, tmp_path / "media")
    media = MediaRoot(tmp_path / "media")
    assert media.base == str(real)
    assert media.resolve("a/b.pdf") == real / "a" / "b.pdf"
    with pytest.raises(InvalidKeyError):
        media.resolve("../b.pdf")


segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=1),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(
        st.one_of(segment, st.sampled_from(["..", ".", "", "/", "\\", "C:"])),
        min_size=1,
        max_size=6,
    )
)
def test_no_accepted_key_resolves_outside_the_root(tmp_path: Path, parts: list[str]) -> None:
    key = "/".join(parts)
    root = tmp_path.resolve()
    try:
        path = resolve_under(root, key)
    except InvalidKeyError:
        return
    resolved = path.resolve()
    assert resolved == root or root in resolved.parents
    assert ".." not in normalize_key(key).split("/")


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=40,
).filter(lambda s: s not in (".", ".."))


@settings(max_examples=200)
@given(
    folder=names.filter(lambda s: not (len(s) >= 2 and s[1] == ":" and s[0].isalpha())), name=names
)
def test_utf8_names_round_trip_unchanged(folder: str, name: str) -> None:
    """Any name that is not a drive letter (refused on purpose) comes back byte for byte."""
    key = f"{folder}/{name}"
    assert normalize_key(key) == key
    assert normalize_key(normalize_key(key)) == key
