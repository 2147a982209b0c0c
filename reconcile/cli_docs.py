"""reconcile(8) and its bash completion, generated from the argument parser (the one definition of the CLI):
`python -m reconcile.cli_docs man|bash`. The outputs are kept under share/ and installed by the package; a test
keeps them equal to what the parser gives."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconcile import __version__, errors

SHARE = Path(__file__).resolve().parent.parent / "share"
MAN_PAGE = SHARE / "man" / "reconcile.8"
BASH_COMPLETION = SHARE / "bash-completion" / "reconcile"

_EXIT_STATUS = (  # (code, meaning): the error classes' codes, and the two success codes options ask for
    (0, "success (also: nothing to do)"),
    (errors.ReconcileError.exit_code, "an error the message explains (resolution, packages, signatures, the sysroot)"),
    (2, "plan or apply with --detailed-exitcode: there are (were) changes"),
    (errors.StalePlanError.exit_code, "a saved plan is stale: the deployment or the origin file moved"),
    (errors.LockTimeoutError.exit_code, "the sysroot (or origin file) lock was not free within --lock-timeout"),
    (errors.UsageError.exit_code, "wrong usage of the command line"),
    (errors.InvalidInputError.exit_code, "an origin or plan file that cannot be used; every problem is listed"),
    (77, "apply with --unchanged-exit-77: nothing was changed"),
)


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each subcommand, in the order `--help` lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def _takes_value(action: argparse.Action) -> bool:
    return bool(action.option_strings) and action.nargs != 0


def _metavar(action: argparse.Action) -> str:
    if action.choices:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return str(action.metavar or action.dest.upper())


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def man_page(parser: argparse.ArgumentParser) -> str:
    lines = [
        f'.TH RECONCILE 8 "" "reconcile {__version__}" "System Administration"',
        ".SH NAME",
        "reconcile \\- " + _roff(parser.description or ""),
        ".SH SYNOPSIS",
        ".B reconcile",
        ".I COMMAND",
        "[\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        "reconcile makes the next boot of an OSTree host match one declarative origin file: a base and the RPM "
        "packages layered on it. \\fBplan\\fR shows every change with its reason; \\fBapply\\fR builds the new "
        "deployment, or does nothing when there is nothing to do.",
        ".SH COMMANDS",
    ]
    for name, help_text, sub in subcommands(parser):
        usage = " ".join(_synopsis(a) for a in _arguments(sub))
        lines += [f'.SS "reconcile {name}"', f"\\fBreconcile {name}\\fR {_roff(usage)}", ".br", _roff(help_text)]
        for action in _arguments(sub):
            lines += [".TP", _term(action), _roff(action.help or "")]
    lines.append(".SH EXIT STATUS")
    for code, meaning in _EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    lines += [".SH SEE ALSO", "\\fBrpm\\-ostree\\fR(1), \\fBostree\\fR(1)", ""]
    return "\n".join(lines)


def _synopsis(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    flag = action.option_strings[-1]
    return f"[{flag} {_metavar(action)}]" if _takes_value(action) else f"[{flag}]"


def _term(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{_roff(_synopsis(action))}\\fR"
    flags = ", ".join(f"\\fB{_roff(f)}\\fR" for f in action.option_strings)
    return flags + (f" \\fI{_roff(_metavar(action))}\\fR" if _takes_value(action) else "")


def bash_completion(parser: argparse.ArgumentParser) -> str:
    subs = subcommands(parser)
    top = [f for a in _arguments(parser) if a.option_strings for f in a.option_strings]
    cases: list[str] = []
    values: dict[str, str] = {}  # option -> what its value is: choices:..., path or value
    for name, _help, sub in subs:
        flags = sorted({f for a in _arguments(sub) for f in a.option_strings} | {"--help"})
        cases.append(f'        {name}) opts="{" ".join(flags)}" ;;')
        for a in _arguments(sub):
            if _takes_value(a):
                for f in a.option_strings:
                    values.setdefault(f, "choices:" + " ".join(map(str, a.choices)) if a.choices else _kind(a))
    value_cases = []
    for kind in sorted(set(values.values())):
        pattern = "|".join(sorted(f for f, k in values.items() if k == kind))
        if kind.startswith("choices:"):
            reply = f'COMPREPLY=($(compgen -W "{kind.removeprefix("choices:")}" -- "$cur"))'
        elif kind == "path":
            reply = 'COMPREPLY=($(compgen -f -- "$cur"))'
        else:
            reply = "COMPREPLY=()"
        value_cases.append(f"        {pattern}) {reply}; return ;;")
    return "\n".join(
        [
            "# bash completion for reconcile(8); generated from its argument parser: python -m reconcile.cli_docs bash",
            "_reconcile() {",
            '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="" opts i',
            "    for ((i = 1; i < COMP_CWORD; i++)); do",
            '        case "${COMP_WORDS[i]}" in -*) ;; *) cmd="${COMP_WORDS[i]}"; break ;; esac',
            "    done",
            '    if [[ -z "$cmd" ]]; then',
            f'        COMPREPLY=($(compgen -W "{" ".join(n for n, _h, _p in subs)} {" ".join(top)} --help" -- "$cur"))',
            "        return",
            "    fi",
            '    case "$prev" in',
            *value_cases,
            "    esac",
            '    case "$cmd" in',
            *cases,
            '        *) opts="" ;;',
            "    esac",
            '    COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
            '    [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))  # positional arguments are files',
            "}",
            "complete -F _reconcile reconcile",
            "",
        ]
    )


def _kind(action: argparse.Action) -> str:
    return "path" if action.type is Path else "value"


def main(argv: list[str]) -> int:
    from reconcile.cli_parser import build_parser

    kinds = {"man": man_page, "bash": bash_completion}
    if len(argv) != 1 or argv[0] not in kinds:
        print("usage: python -m reconcile.cli_docs man|bash", file=sys.stderr)
        return 64
    sys.stdout.write(kinds[argv[0]](build_parser()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
