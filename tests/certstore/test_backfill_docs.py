"""docs/backfill.md stays true to the CLI: every command and option it shows exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from certstore.cli import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "backfill.md"


def _doc_commands() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line)
            while words and "=" in words[0]:
                words.pop(0)
            if words and words[0] == "certstore":
                commands.append(words[1:])
    return commands


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = cli
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"unknown command {rest[0]!r} in docs/backfill.md"
        command, rest = sub, rest[1:]
    return command, rest


def test_docs_show_commands() -> None:
    assert len(_doc_commands()) >= 10


@pytest.mark.parametrize("words", _doc_commands(), ids=lambda w: " ".join(w)[:60])
def test_every_documented_option_exists(words: list[str]) -> None:
    command, rest = _resolve(words)
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"{word} is not an option of {words[0]}"


def test_documented_table_options_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    backfill, _ = _resolve(["backfill"])
    known = {opt for param in backfill.params for opt in (*param.opts, *param.secondary_opts)}
    table = text.split("| option | meaning |")[1].split("\n\n")[0]
    documented = set(re.findall(r"(--[a-z][a-z-]*)", table))
    assert documented and documented <= known
    assert known - {"--help", "-h"} <= documented | {"-h"}
