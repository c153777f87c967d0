#!/usr/bin/env bash
# The release gate: everything a release goes through, artifacts in one folder.
#
#   1. the test suite under pytest-xdist (-n 2) with coverage (coverage.py in every process,
#      [tool.coverage] in pyproject.toml), except the tests marked `latency`;
#   2. the `latency` tests alone: one process, no xdist, no coverage, so what they time is the
#      code and not a neighbour worker or the tracer; they write the certstore plugin's SLO
#      report (--slo-report);
#   3. a bounded Locust run against the embedded service (ci/loadtest.sh: `certstore serve
#      --embedded-s3` on loopback, every scenario in loadtests/, CSV + JSON);
#   4. `slo gate` over all of it against slo.toml: terminal table, Markdown, JUnit XML, JSON
#      verdict and PNG chart.
#
# Every step runs even when an earlier one failed, so the artifacts are complete; the script
# exits non-zero when any step failed: the gate's own code (1 an objective failed or had no
# data, 2 bad input such as a missing results file) or 1 when the tests failed.
#
# Environment:
#   RESULTS_DIR        artifacts folder (default: results)
#   PYTHON             interpreter (default: the active virtualenv's, else .venv, else python3)
#   SLO_SPEC           spec (default: slo.toml)
#   SLO_BASELINE       previous run's slo-verdict.json: also fail latency regressions
#   SLO_BENCHMARK_JSON a pytest-benchmark --benchmark-json file to judge too
#   LOADTEST_DURATION  Locust run time (default: 40s); LOADTEST_USERS (default: 10)
#   CERTSTORE_LOAD_USER_RPS  pacing per user (default: 2 task runs/s): the SLOs are judged at a
#                      declared, paced load, not at whatever saturates this machine
#   PYTEST_WORKERS     pytest-xdist workers (default: 2)
#   PYTEST_ARGS        extra pytest arguments for steps 1 and 2, e.g. a test path (default:
#                      none, the whole suite); not -m, which the steps use to split the suite
#   LOADTEST_CMD       the load step, called with the Locust results folder and options
#                      (default: bash ci/loadtest.sh)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

results="${RESULTS_DIR:-results}"
spec="${SLO_SPEC:-slo.toml}"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -n "${VIRTUAL_ENV:-}" ]]; then python="$VIRTUAL_ENV/bin/python"
    elif [[ -x .venv/bin/python ]]; then python=.venv/bin/python
    else python=python3
    fi
fi
mkdir -p "$results"
# Only this script's own artifacts are removed, never the folder: RESULTS_DIR may be shared.
rm -rf "$results/locust" "$results/.coverage" "$results"/.coverage.* "$results/coverage.json" \
    "$results/slo-report.json" "$results/pytest-junit.xml" "$results/pytest-latency-junit.xml" \
    "$results"/slo-verdict.json \
    "$results"/slo-summary.md "$results"/slo-junit.xml "$results"/slo-chart.png

step() { printf '\n=== release gate: %s ===\n' "$*"; }

step "1/4 test suite (pytest -n ${PYTEST_WORKERS:-2}, coverage; all but the latency tests)"
# Coverage starts at interpreter start-up in every Python process (coverage's .pth hook reads
# COVERAGE_PROCESS_START): the pytest controller, each xdist worker and the processes tests
# spawn (the certstore CLI, the service). Starting it from a pytest plugin instead (pytest-cov)
# would miss the module-level lines of every module the certstore plugin imports before
# coverage starts (certstore.storage among them) and under-report them.
root="$PWD"
case "$results" in /*) data_dir="$results" ;; *) data_dir="$root/$results" ;; esac
COVERAGE_PROCESS_START="$root/pyproject.toml" COVERAGE_FILE="$data_dir/.coverage" \
    "$python" -m pytest -n "${PYTEST_WORKERS:-2}" -p no:cacheprovider -m "not latency" \
    --junitxml="$results/pytest-junit.xml" ${PYTEST_ARGS:-}
tests_status=$?
COVERAGE_FILE="$data_dir/.coverage" "$python" -m coverage combine --quiet \
    && COVERAGE_FILE="$data_dir/.coverage" "$python" -m coverage report --skip-covered \
        --sort=cover \
    && COVERAGE_FILE="$data_dir/.coverage" "$python" -m coverage json --quiet \
        -o "$results/coverage.json" \
    || echo "release gate: no coverage report (the gate will say so)" >&2
if [[ $tests_status -eq 5 ]]; then
    echo "release gate: pytest collected no tests; that is a failure" >&2
    tests_status=1
fi

step "2/4 latency tests (one process, no xdist, no coverage; SLO report)"
# A latency objective judged beside a second xdist worker and under coverage's tracer measures
# the machine's load as much as the code (a p99 of 120 samples is their second slowest).
# Exit code 5 (no test selected) is fine here: PYTEST_ARGS may name files without any.
"$python" -m pytest -p no:xdist -p no:cacheprovider -m latency \
    --slo-report="$results/slo-report.json" \
    --junitxml="$results/pytest-latency-junit.xml" ${PYTEST_ARGS:-}
latency_status=$?
if [[ $latency_status -ne 0 && $latency_status -ne 5 ]]; then tests_status=1; fi

export CERTSTORE_LOAD_USER_RPS="${CERTSTORE_LOAD_USER_RPS:-2}"
step "3/4 load test (ci/loadtest.sh, ${LOADTEST_DURATION:-40s}, ${LOADTEST_USERS:-10} users at" \
    "$CERTSTORE_LOAD_USER_RPS/s each)"
PYTHON="$python" ${LOADTEST_CMD:-bash ci/loadtest.sh} "$results/locust" \
    --duration "${LOADTEST_DURATION:-40s}" --users "${LOADTEST_USERS:-10}"
load_status=$?
echo "release gate: load test exit code $load_status (the gate judges its results below)"

step "4/4 slo gate ($spec)"
gate_args=(gate --spec "$spec" --locust "$results/locust/locust" --pytest "$results/slo-report.json"
    --coverage "$results/coverage.json" --out-dir "$results")
if [[ -n "${SLO_BASELINE:-}" ]]; then gate_args+=(--baseline "$SLO_BASELINE"); fi
if [[ -n "${SLO_BENCHMARK_JSON:-}" ]]; then gate_args+=(--benchmark "$SLO_BENCHMARK_JSON"); fi
"$python" -m slo "${gate_args[@]}"
gate_status=$?

printf '\nrelease gate: tests %s, load test %s, slo gate %s; artifacts in %s\n' \
    "$tests_status" "$load_status" "$gate_status" "$results"
if [[ $gate_status -ne 0 ]]; then exit "$gate_status"; fi
if [[ $tests_status -ne 0 ]]; then exit 1; fi
exit 0
