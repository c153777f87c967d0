"""The spec: what a valid spec yields, and a precise error for every way it can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from slo import SpecError, load_spec
from slo.spec import DEFAULT_REGRESSION_TOLERANCE
from tests.slo.slo_helpers import REPO, write_spec

VALID = """
    [gate]
    regression_tolerance = 0.3

    [scenarios.upload]
    source = "locust"
    request_type = "PUT"
    name = "/certificates/[key]"
    p95_ms = 75
    p99_ms = 120
    error_rate = 0.01
    min_samples = 50

    [scenarios.unit]
    source = "pytest"
    test = "tests/*::test_upload*"
    p50_ms = 10.5
    regression_tolerance = 0.5

    [scenarios.bench]
    source = "benchmark"
    benchmark = "test_sleepy"
    max_ms = 100

    [coverage]
    total = 80
    files = { "certstore/storage.py" = 90 }
"""


def test_valid_spec_yields_one_objective_per_limit(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, VALID))
    ids = [objective.id for objective in spec.objectives()]
    assert ids == [
        "upload.p95_ms",
        "upload.p99_ms",
        "upload.error_rate",
        "unit.p50_ms",
        "bench.max_ms",
        "coverage.total",
        "coverage.file:certstore/storage.py",
    ]
    upload = spec.scenario("upload")
    assert (upload.request_type, upload.request_name, upload.min_samples) == (
        "PUT",
        "/certificates/[key]",
        50,
    )
    by_id = {objective.id: objective for objective in spec.objectives()}
    assert by_id["upload.p95_ms"].regression_tolerance == 0.3
    assert by_id["unit.p50_ms"].regression_tolerance == 0.5
    assert by_id["coverage.total"].comparison == ">="
    assert by_id["upload.error_rate"].target == 0.01
    assert spec.sources() == {"locust", "pytest", "benchmark", "coverage"}


def test_defaults(tmp_path: Path) -> None:
    spec = load_spec(
        write_spec(tmp_path, '[scenarios.a]\nsource = "locust"\nname = "x"\np95_ms = 5\n')
    )
    assert spec.regression_tolerance == DEFAULT_REGRESSION_TOLERANCE
    assert spec.scenario("a").min_samples == 1
    assert spec.scenario("a").request_type is None


def test_shipped_spec_is_valid_and_carries_the_background_figures() -> None:
    spec = load_spec(REPO / "slo.toml")
    targets = {objective.id: objective.target for objective in spec.objectives()}
    assert targets["upload.p95_ms"] == 75
    assert targets["upload.p99_ms"] == 120
    assert targets["url.p95_ms"] == 50
    assert targets["download.p95_ms"] == 500
    assert all(targets[key] <= 0.01 for key in targets if key.endswith(".error_rate")) and any(
        key.endswith(".error_rate") for key in targets
    )
    assert "coverage.total" in targets
    assert "coverage.file:certstore/storage.py" in targets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\np95_ms = 5\np96_ms = 6\n',
            "slo.toml: scenarios.a: field 'p96_ms': unknown field",
        ),
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\np95_ms = "fast"\n',
            "slo.toml: scenarios.a: field 'p95_ms': must be a number, got str 'fast'",
        ),
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\np95_ms = true\n',
            "field 'p95_ms': must be a number, got bool True",
        ),
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\np95_ms = 130\np99_ms = 120\n',
            "scenarios.a: field 'p95_ms': p95_ms = 130 is above p99_ms = 120",
        ),
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\np50_ms = 10\nmax_ms = 5\n',
            "field 'p50_ms': p50_ms = 10 is above max_ms = 5",
        ),
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\nerror_rate = 1.5\n',
            "field 'error_rate': must be <= 1, got 1.5 (a fraction: 0.01 is 1 %)",
        ),
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\np95_ms = 0\n',
            "field 'p95_ms': must be > 0",
        ),
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\np95_ms = 5\nmin_samples = 0\n',
            "field 'min_samples': must be an integer >= 1, got 0",
        ),
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\np95_ms = 5\nmin_samples = 2.5\n',
            "field 'min_samples': must be an integer >= 1, got 2.5",
        ),
        ('[scenarios.a]\nname = "x"\np95_ms = 5\n', "scenarios.a: field 'source': missing"),
        (
            '[scenarios.a]\nsource = "k6"\nname = "x"\np95_ms = 5\n',
            "field 'source': 'k6' is not a source",
        ),
        (
            '[scenarios.a]\nsource = "locust"\np95_ms = 5\n',
            "scenarios.a: field 'name': missing: source 'locust' needs it",
        ),
        (
            '[scenarios.a]\nsource = "locust"\nname = "x"\ntest = "t*"\np95_ms = 5\n',
            "field 'test': is not a selector of source 'locust'",
        ),
        (
            '[scenarios.a]\nsource = "pytest"\ntest = ""\np95_ms = 5\n',
            "field 'test': must be a non-empty string",
        ),
        (
            '[scenarios.a]\nsource = "benchmark"\nbenchmark = "b"\nerror_rate = 0.1\n',
            "field 'error_rate': pytest-benchmark records no failures",
        ),
        ('[scenarios.a]\nsource = "locust"\nname = "x"\n', "scenarios.a: no limit"),
        ('[scenarios."a b"]\nsource = "locust"\nname = "x"\np95_ms = 1\n', "scenario names"),
        ("[coverage]\ntotal = 101\n", "coverage: field 'total': must be <= 100"),
        ("[coverage]\nfloor = 80\n", "coverage: field 'floor': unknown field"),
        (
            '[coverage]\nfiles = { "a.py" = "high" }\n',
            "coverage.files: field 'a.py': must be a number",
        ),
        ("[gate]\nregression_tolerance = -1\n", "gate: field 'regression_tolerance': must be >= 0"),
        ("format_version = 2\n[coverage]\ntotal = 1\n", "unsupported format_version 2"),
        ("threshold = 3\n", "field 'threshold': unknown field"),
        ("", "defines no objectives"),
        ("[scenarios\n", "not valid TOML"),
        ("scenarios = 3\n", "field 'scenarios': must be a table"),
    ],
)
def test_invalid_spec_names_file_objective_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected.replace("slo.toml: ", "") in message, message


def test_missing_spec_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.toml")


def test_spec_error_carries_context_and_pickles(tmp_path: Path) -> None:
    import pickle

    path = write_spec(tmp_path, '[scenarios.a]\nsource = "locust"\nname = "x"\np9_ms = 1\n')
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    error = caught.value
    assert (error.objective, error.field) == ("scenarios.a", "p9_ms")
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) and clone.field == "p9_ms"


def test_documented_example_uses_every_field_and_is_valid() -> None:
    spec = load_spec(REPO / "docs" / "examples" / "slo-every-field.toml")
    kinds = {objective.kind for objective in spec.objectives()}
    assert kinds == {
        "p50_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "error_rate",
        "coverage_total",
        "coverage_file",
    }
    assert spec.sources() == {"locust", "pytest", "benchmark", "coverage"}
    assert spec.scenario("upload").regression_tolerance == 0.30
    assert spec.regression_min_ms == 2.0
