"""reconcile(8) and the bash completion: generated from the argument parser, equal to the files the package
installs, listing every subcommand and option; the completion answers in a real bash."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reconcile.cli_docs import BASH_COMPLETION, MAN_PAGE, bash_completion, man_page, subcommands
from reconcile.cli_parser import build_parser

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_files_are_what_the_parser_gives() -> None:
    regenerate = "regenerate with: python -m reconcile.cli_docs man|bash > share/..."
    assert MAN_PAGE.read_text() == man_page(build_parser()), regenerate
    assert BASH_COMPLETION.read_text() == bash_completion(build_parser()), regenerate


def test_every_subcommand_and_option_is_listed() -> None:
    man, completion = MAN_PAGE.read_text(), BASH_COMPLETION.read_text()
    subs = subcommands(build_parser())
    assert {"plan", "apply", "status", "init", "rollback", "cleanup"} <= {name for name, _h, _p in subs}
    for name, _help, sub in subs:
        assert f'.SS "reconcile {name}"' in man and f"        {name}) opts=" in completion, name
        line = next(x for x in completion.splitlines() if x.startswith(f"        {name}) opts="))
        for action in sub._actions:
            for flag in [] if flag_is_help(action) else action.option_strings:
                assert flag.replace("-", "\\-") in man, (name, flag)
                assert f" {flag}" in line or f'"{flag}' in line, (name, flag)


def flag_is_help(action: object) -> bool:
    return type(action).__name__ == "_HelpAction"  # -h/--help: argparse's own, on every command


def _complete(*words: str) -> list[str]:
    script = (
        f"source {BASH_COMPLETION}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
        f"COMP_CWORD={len(words) - 1}; _reconcile; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, cwd="/")
    return out.stdout.split()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("reconcile", "pl"), ["plan"]),
        (("reconcile", "apply", "--unchanged"), ["--unchanged-exit-77"]),
        (("reconcile", "plan", "--format", "j"), ["json"]),
        (("reconcile", "cleanup", "--ro"), ["--rollback"]),
    ],
)
def test_the_completion_answers_in_bash(words: tuple[str, ...], expected: list[str]) -> None:
    assert _complete(*words) == expected


def test_the_package_installs_them(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path, ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("reconcile-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    assert sorted(data) == [
        "lib/systemd/system/reconcile-apply.service",
        "lib/systemd/system/reconcile-apply.timer",
        "share/bash-completion/completions/reconcile",
        "share/man/man8/reconcile.8",
    ], names
