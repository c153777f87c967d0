"""docs/pytest-plugin.md names every fixture, option, marker, effect and preset of the plugin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _pytest.fixtures import FixtureFunctionDefinition

import pytest_certstore
import pytest_certstore.plugin as plugin
from pytest_certstore.faults import EFFECT_KINDS
from pytest_certstore.presets import PRESETS

DOC = Path(__file__).resolve().parents[2] / "docs" / "pytest-plugin.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_every_public_fixture_is_documented(doc: str) -> None:
    fixtures = [
        name
        for name, value in vars(plugin).items()
        if isinstance(value, FixtureFunctionDefinition) and not name.startswith("_")
    ]
    assert len(fixtures) >= 10
    assert [name for name in fixtures if f"`{name}`" not in doc] == []


def test_options_markers_effects_presets_and_exports_are_documented(doc: str) -> None:
    for text in (
        "--s3-endpoint URL",
        "--slo-report PATH",
        "--slo-mode enforce",
        "@pytest.mark.slo(",
        "@pytest.mark.s3_live",
    ):
        assert text in doc
    for kind in EFFECT_KINDS:
        assert kind.split("_")[0] in doc
    for preset in PRESETS:
        assert f"| {preset.letter} | `{preset.name}` |" in doc
    for name in pytest_certstore.__all__:
        assert f"`{name}`" in doc, name


def test_linked_files_exist(doc: str) -> None:
    links = re.findall(r"\]\((\.\./[^)#]+)\)", doc)
    assert links
    missing = [link for link in links if not (DOC.parent / link).exists()]
    assert missing == []
