"""The README's first command -- the main job -- installs the project and prints GO.

The README holds it as the one-line fenced shell block right after a ``<!-- main-job -->``
marker: ``python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[s3-server]' &&
certstore rehearse --count 500`` (on one line).

The slow test runs exactly that line with bash in a scratch copy of the repository (so the new
``.venv`` and the editable install belong to the copy, never to the project's own environment),
from a fresh virtual environment as a newcomer would. It needs the package index (pip).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from certstore.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_BLOCK = re.compile(r"<!-- main-job -->\s*```(?:bash|sh|shell|console)?\n(.*?)```", re.DOTALL)
_IGNORE = shutil.ignore_patterns(
    ".venv*",
    ".git",
    "__pycache__",
    "*.egg-info",
    "build",
    ".pytest_cache",
    ".ruff_cache",
    "*.sqlite3",
    "results",
    ".coverage*",
    "htmlcov",
)


def main_job() -> str:
    """The one command line of the README's main-job block."""
    assert README.is_file(), f"{README} is missing"
    match = _BLOCK.search(README.read_text(encoding="utf-8"))
    assert match, (
        "README.md has no main-job block: put the one-line command in a ```bash "
        "fence right after '<!-- main-job -->'"
    )
    lines = [line for line in match.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"the main job must be one line, found {lines}"
    return lines[0].strip()


def test_the_main_job_installs_and_rehearses() -> None:
    line = main_job()
    steps = [shlex.split(step) for step in line.split("&&")]
    assert steps[0][:3] == ["python3", "-m", "venv"]
    assert any(
        s[:2] in (["pip", "install"], ["python", "-m"])
        and "-e" in s
        and any("s3-server" in word for word in s)
        for s in steps
    )
    rehearse = steps[-1]
    assert rehearse[:2] == ["certstore", "rehearse"]
    assert rehearse[2:] == ["--count", "500"]
    # the options parse on the real command
    context = cli.commands["rehearse"].make_context("rehearse", rehearse[2:])
    assert context.params["count"] == 500


@pytest.mark.slow
@pytest.mark.integration
def test_the_main_job_prints_go_from_a_fresh_environment(tmp_path: Path) -> None:
    line = main_job()
    copy = tmp_path / "certstore"
    shutil.copytree(ROOT, copy, ignore=_IGNORE, symlinks=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = (
        os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
        or os.defpath
    )
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    completed = subprocess.run(
        ["bash", "-c", line],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    tail = completed.stdout[-3000:] + completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else ""
    if completed.returncode == 1 and last.startswith("NO-GO: "):
        # The shipped latency limits judge the machine as well as the rehearsal; this test
        # runs beside another xdist worker, so a stall there may cost a p99. Everything else
        # must pass; the latency limits are judged by the SLO tests on the HTTP endpoint.
        failed = set(last.split(": ", 2)[2].split(", "))
        assert failed <= {"upload_p95", "upload_p99", "url_p95", "download_p95"}, tail
        return
    assert completed.returncode == 0, tail
    assert last.startswith("GO: all") and "NO-GO" not in completed.stdout, tail
    assert (copy / ".venv" / "bin" / "certstore").exists()
