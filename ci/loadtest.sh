#!/usr/bin/env bash
# Thin wrapper: the work (service start, health wait, Locust, cleanup) is in ci/loadtest.py.
# Usage: ci/loadtest.sh RESULTS_DIR [--duration 20s] [--users 10] [--workers N] [-- LOCUST ARGS]
# Python: $PYTHON, else the repository's .venv, else python3 on PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$here/../.venv/bin/python" ]]; then python="$here/../.venv/bin/python"; else python=python3; fi
fi
exec "$python" "$here/loadtest.py" "$@"
