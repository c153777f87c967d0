"""Every ``certstore`` command in docs/runbook.md exists, with exactly the options it uses.

The runbook's shell blocks are parsed (continuation lines joined, comments dropped, pipelines and
``&&`` chains split); each ``certstore`` command line is resolved through the click command tree
and each option is checked: it must exist, take a value when one is given, and a value of a
choice option must be one of the choices.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from certstore.cli import cli

RUNBOOK = Path(__file__).resolve().parents[1] / "docs" / "runbook.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_SHELL = {"", "bash", "sh", "shell", "console"}


def command_lines(text: str) -> list[str]:
    """Each ``certstore ...`` invocation in the shell blocks of ``text``."""
    found: list[str] = []
    for lang, body in _FENCE.findall(text):
        if lang not in _SHELL:
            continue
        joined = re.sub(r"\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
                words = shlex.split(part, comments=True)
                while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                    words.pop(0)
                if words and words[0] == "certstore":
                    found.append(shlex.join(words))
    return found


def problems_with(line: str) -> list[str]:
    """Why ``line`` would not run as written (empty when it would)."""
    words = shlex.split(line)[1:]
    command: click.Command = cli
    path = ["certstore"]
    while isinstance(command, click.Group):
        if not words or words[0].startswith("-"):
            return [f"{line!r}: {' '.join(path)} needs a subcommand"]
        name = words.pop(0)
        sub = command.commands.get(name)
        if sub is None:
            return [f"{line!r}: no command {' '.join([*path, name])!r}"]
        command, path = sub, [*path, name]
    options = {
        opt: p
        for p in command.params
        if isinstance(p, click.Option)
        for opt in (*p.opts, *p.secondary_opts)
    }
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    problems: list[str] = []
    positional = 0
    while words:
        word = words.pop(0)
        if not word.startswith("-") or word == "-":
            positional += 1
            continue
        name, has_value, value = word.partition("=")
        option = options.get(name)
        if option is None:
            problems.append(f"{line!r}: {' '.join(path)} has no option {name}")
            continue
        takes_value = not option.is_flag and not option.count
        if has_value and not takes_value:
            problems.append(f"{line!r}: {name} takes no value")
        if takes_value and not has_value:
            if not words or words[0].startswith("--"):
                problems.append(f"{line!r}: {name} needs a value")
                continue
            value = words.pop(0)
        if (
            takes_value
            and isinstance(option.type, click.Choice)
            and value not in option.type.choices
        ):
            problems.append(f"{line!r}: {name} {value!r} is not one of {option.type.choices}")
    limit = sum(10**6 if a.nargs == -1 else a.nargs for a in arguments)
    if positional > limit:
        problems.append(f"{line!r}: {positional} argument(s), {' '.join(path)} takes {limit}")
    required = sum(a.nargs for a in arguments if a.required and a.nargs > 0)
    if positional < required:
        problems.append(f"{line!r}: {' '.join(path)} needs {required} argument(s)")
    return problems


def test_every_runbook_command_exists_with_its_options() -> None:
    lines = command_lines(RUNBOOK.read_text(encoding="utf-8"))
    assert len(lines) >= 30, lines
    problems = [p for line in lines for p in problems_with(line)]
    assert problems == []


def test_the_runbook_covers_every_phase_command() -> None:
    lines = command_lines(RUNBOOK.read_text(encoding="utf-8"))
    used = {" ".join(shlex.split(line)[:2]) for line in lines}
    for command in (
        "certstore flags",
        "certstore rehearse",
        "certstore lifecycle",
        "certstore catalog",
        "certstore backfill",
        "certstore check-consistency",
        "certstore validate",
    ):
        assert command in used
    assert any("--repair" in line for line in lines)
    assert any("--dry-run" in line for line in lines)
    assert any("--resume" in line for line in lines)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("certstore nonsense --x", "no command 'certstore nonsense'"),
        ("certstore backfill --turbo", "has no option --turbo"),
        ("certstore backfill --limit", "--limit needs a value"),
        ("certstore backfill --dry-run=yes", "--dry-run takes no value"),
        ("certstore backfill --verify-method md5", "is not one of"),
        ("certstore lifecycle", "needs a subcommand"),
        ("certstore catalog stats extra", "takes 0"),
    ],
)
def test_the_checker_catches_wrong_commands(line: str, expected: str) -> None:
    assert any(expected in p for p in problems_with(line))


def test_command_lines_handles_shell_syntax() -> None:
    text = (
        "```bash\n# comment\nCERT_S3_DUAL_WRITE=true certstore flags --json | jq .\n"
        "certstore backfill \\\n    --limit 5 && echo done\n```\n"
        "```toml\ncertstore = 1\n```\n"
    )
    assert command_lines(text) == ["certstore flags --json", "certstore backfill --limit 5"]


def test_every_metric_name_in_the_runbook_is_in_the_catalog() -> None:
    from certstore.metrics import CATALOG

    exposed = set()
    for spec in CATALOG:
        exposed.add(spec.prometheus_name)
        if spec.kind == "histogram":
            exposed.update(f"{spec.prometheus_name}_{s}" for s in ("bucket", "count", "sum"))
    text = RUNBOOK.read_text(encoding="utf-8")
    used = set(re.findall(r"\bcert_[a-z0-9_]+", text))
    assert used, "the runbook names no metric"
    assert sorted(used - exposed) == []
    # dotted names as the code emits them; "cert.s3.write.*" is named only to say it is gone
    dotted = {n for n in re.findall(r"`(cert\.[a-z0-9_.]+)", text) if not n.endswith(".")}
    assert dotted and sorted(dotted - {spec.name for spec in CATALOG}) == []
