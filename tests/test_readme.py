"""The README and the configuration doc are checked against the code they describe."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from certstore.config import FLAG_OPTIONS, OPTIONS
from certstore.metrics import CATALOG

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def block_after(marker: str, text: str = README) -> str:
    """The fenced code block that follows an HTML comment marker."""
    match = re.search(re.escape(marker) + r"\s*```[a-z]*\n(.*?)```", text, re.S)
    assert match, f"no code block after {marker!r}"
    return match.group(1)


def test_router_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block_after("<!-- example: router -->"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "X-Amz-Signature=" in result.stdout


def test_metric_table_is_the_catalog() -> None:
    rows = re.findall(r"^\| `(cert\.[a-z0-9_.]+)` \| (\w+) \| `(\w+)` \|", README, re.M)
    assert rows, "metric table not found"
    assert {(n, k, p) for n, k, p in rows} == {(m.name, m.kind, m.prometheus_name) for m in CATALOG}


def test_flag_table_lists_every_flag() -> None:
    for option in FLAG_OPTIONS:
        assert f"| `{option.variable}` | false |" in README


def test_configuration_doc_lists_every_setting() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", doc, re.M))
    assert documented == {option.variable for option in OPTIONS}


def test_ci_runs_the_readme_test_command() -> None:
    command = block_after("<!-- test-suite -->").strip()
    assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install")
    test_command = command.split("&&")[-1].strip()
    assert test_command == "bash ci/release-gate.sh"
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci_script
    gate = (ROOT / "ci" / "release-gate.sh").read_text(encoding="utf-8")
    assert "-m pytest -n" in gate and "-m slo" in gate
