"""The product never imports the harness: data flows from the plugin to the product only."""

from __future__ import annotations

import ast
from pathlib import Path

PRODUCT = Path(__file__).resolve().parents[2] / "certstore"
HARNESS = ("pytest_certstore", "slo", "loadtests", "locust", "pytest")


def test_certstore_imports_nothing_from_the_harness() -> None:
    offenders = []
    for path in PRODUCT.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in HARNESS:
                    offenders.append(f"{path.relative_to(PRODUCT.parent)}: {name}")
    assert offenders == []
