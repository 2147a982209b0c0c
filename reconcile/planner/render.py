"""Plans for people and machines: text (request changes as +/-/~ lines, then the RPM diff in four sections,
then one summary line; colour only on a TTY), markdown for pull requests, and JSON."""

from __future__ import annotations

from typing import TextIO

from reconcile.planner import model as m

_STYLE = {"+": "green", "-": "red", "~": "yellow", "↑": "cyan", "↓": "magenta", "!": "yellow", "✗": "bold red"}


def text_lines(plan: m.Plan) -> list[tuple[str, str]]:
    """(symbol, line) pairs; the symbol picks the colour."""
    if not plan.has_changes and plan.applyable:  # what the base notes say holds even when nothing changes
        return [("", plan.summary.text)] + [("", c.message) for c in plan.checks if c.kind == m.CheckKind.BASE]
    p = plan.prior
    checksum, _, serial = p.deployment.rpartition(".")
    out = [("", f"Plan for stateroot {p.stateroot}, against deployment {checksum[:12]}.{serial} (base {p.refspec}):")]
    width = max((len(c.address) for c in plan.changes), default=0)
    for c in plan.changes:
        detail = c.reason + _from(plan, c.source, " (from {})") + _before_after(c.before, c.after)
        out.append((c.symbol, f"{c.symbol} {c.address.ljust(width)}  {detail}"))
    out += _base_package_lines(plan.base)
    r = plan.resolution
    if r.base_replacements:
        out += [("", ""), ("", "Base packages replaced:")]
        out += [("~", f"  ~ {_replacement(c)}") for c in r.base_replacements]
    for title, mark, entries in (
        ("Packages to add", "+", r.added),
        ("Packages to remove", "-", r.removed),
        ("Packages to upgrade", "↑", r.upgraded),
        ("Packages to downgrade", "↓", r.downgraded),
        ("Packages to replace (same version, another build)", "~", r.replaced),
    ):
        if entries:
            out += [("", ""), ("", f"{title}:")]
            out += [(mark, f"  {mark} {_describe(e, _from(plan, e.source, ', from {}'))}") for e in entries]
    if plan.keys:
        out += [("", ""), ("", "Signing keys:")]
        for k in plan.keys:
            mark = "!" if k.new else ""
            state = "NEW, used for the first time" if k.new else "known"
            who = ", ".join(k.user_ids) or "no user id"
            repos = ", ".join(f"[{r}]" for r in k.repos)
            out.append(
                (mark, f"  {_spaced(k.fingerprint)} {who} ({repos}; {state}; signs {len(k.packages)} package(s))")
            )
    unchecked = [r.id for r in plan.repos if not r.gpgcheck and any(e.repo == r.id for e in _changed(plan))]
    if unchecked:
        out += [("", ""), ("", "Not signature-checked (gpgcheck off): " + ", ".join(f"[{r}]" for r in unchecked))]
    notes = [c for c in plan.checks if c.severity == "info"]
    if notes:
        out += [
            ("", ""),
            ("", "Scriptlets and accounts:" if all(c.kind in ("scriptlet", "account") for c in notes) else "Notes:"),
        ]
        out += [("", f"  {c.message}") for c in notes]
    findings = [c for c in plan.checks if c.severity != "info"]
    if findings:
        out += [("", ""), ("", "Checks:")]
        out += [("✗" if c.severity == "error" else "!", f"  {c.severity}: {c.message}") for c in findings]
    last = plan.summary.text if plan.applyable else "The plan cannot be applied: see the errors above."
    out += [("", ""), ("", last)]
    return out


def _base_sections(base: m.BaseMove | None) -> list[tuple[str, str, list[m.BasePackageChange]]]:
    if base is None:
        return []
    p = base.packages
    return [
        ("upgrade", "↑", p.upgraded),
        ("downgrade", "↓", p.downgraded),
        ("add", "+", p.added),
        ("remove", "-", p.removed),
    ]


def _base_package_lines(base: m.BaseMove | None) -> list[tuple[str, str]]:
    """The base's own package diff, before the layered packages: they follow from it."""
    out: list[tuple[str, str]] = []
    for kind, mark, entries in _base_sections(base):
        if entries:
            out += [("", ""), ("", f"Base packages to {kind}:")]
            out += [(mark, f"  {mark} {_base_change(c)}") for c in entries]
    return out


def _replacement(c: m.BaseReplacementChange) -> str:
    if c.action == "restore":
        return f"{c.before} → {c.after} (the base's own package again: no longer replaced)"
    where = f"[{c.repo}]" if c.repo != "@local" else "(local file)"
    return f"{c.before} → {c.after} {where}" + (f" (base has {c.base})" if c.action == "update" else "")


def _base_change(c: m.BasePackageChange) -> str:
    """As layered upgrades read: `name 1.0-1.arch → 2.0-1.arch`."""
    if c.before and c.after:
        return f"{c.name} {c.before.removeprefix(c.name + '-')} → {c.after.removeprefix(c.name + '-')}"
    return str(c.before or c.after)


def _before_after(before: str | None, after: str | None) -> str:
    if before and after:
        return f": {before} → {after}"
    if before or after:
        return f": {'was ' if before else ''}{before or after}"
    return ""


def _changed(plan: m.Plan) -> list[m.PackageEntry]:
    r = plan.resolution
    return [*r.added, *r.upgraded, *r.downgraded, *r.replaced]


def _spaced(fingerprint: str) -> str:
    """As gpg prints a fingerprint: groups of four."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def render_text(plan: m.Plan) -> str:
    return "\n".join(line for _sym, line in text_lines(plan))


def print_text(plan: m.Plan, out: TextIO) -> None:
    """Coloured on a terminal (rich honours NO_COLOR), plain otherwise (without importing rich)."""
    if not out.isatty():
        out.write(render_text(plan) + "\n")
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False, soft_wrap=True)
    for sym, line in text_lines(plan):
        console.print(Text(line, style=_STYLE.get(sym, "")))


def _from(plan: m.Plan, source: str | None, form: str) -> str:
    """`form` naming a fragment that asked for something; nothing for the origin file itself (the usual case)."""
    if not source or source.rpartition(":")[0] == plan.origin.path or source == plan.origin.path:
        return ""
    home = plan.origin.path.rpartition("/")[0] + "/"
    return form.format(source.removeprefix(home))


def _describe(e: m.PackageEntry, source: str = "") -> str:
    name = f"{e.name} {e.before.removeprefix(e.name + '-')} → {e.evr}.{e.arch}" if e.before else e.nevra
    where = f" [{e.repo}]" if e.repo else ""
    if e.before_checksum:
        where += f" (build {_short(e.before_checksum)} → {_short(e.checksum)})"
    if e.reason == "requested":
        return f"{name}{where} (requested{source})"
    kind = "weak dependency" if e.weak else "dependency"
    if len(e.why) > 1:
        return f"{name}{where} ({kind}: {_chain(e)})"
    return f"{name}{where}" + (f" ({kind})" if e.weak else "")


def _chain(e: m.PackageEntry) -> str:
    """`a → b → c`; a last link that points backwards reads the way it is written: `c supplements b`."""
    if e.via in ("supplements", "enhances"):
        lead = " → ".join(e.why[:-1]) + "; " if len(e.why) > 2 else ""
        return f"{lead}{e.why[-1]} {e.via} {e.why[-2]}"
    return " → ".join(e.why)


def render_json(plan: m.Plan) -> str:
    return plan.model_dump_json(indent=2)


def render_markdown(plan: m.Plan) -> str:
    """For a pull-request comment: request changes up front, the dependency list collapsible."""
    p = plan.prior
    lines = [f"### reconcile plan: {plan.summary.text}", ""]
    lines.append(f"Stateroot `{p.stateroot}`, deployment `{p.deployment[:12]}…`, base `{p.refspec}`.")
    if plan.changes:
        lines += ["", "| | request | reason |", "|---|---|---|"]
        lines += [
            f"| {c.symbol.strip() or '·'} | `{c.address}` | {_md(c.reason + _from(plan, c.source, ' (from `{}`)'))} |"
            for c in plan.changes
        ]
    base_rows = [(kind, c) for kind, _mark, entries in _base_sections(plan.base) for c in entries]
    if base_rows:
        lines += ["", f"<details><summary>Base packages that change ({len(base_rows)})</summary>", ""]
        lines += ["| change | base package |", "|---|---|"]
        lines += [f"| {kind} | `{_base_change(c)}` |" for kind, c in base_rows]
        lines += ["", "</details>"]
    r = plan.resolution
    if r.base_replacements:
        lines += ["", "| base package | before | after | from |", "|---|---|---|---|"]
        lines += [
            f"| {x.action} `{x.name}.{x.arch}` | `{x.before}` | `{x.after}` | {x.repo} |" for x in r.base_replacements
        ]
    rows = [("add", e) for e in r.added] + [("upgrade", e) for e in r.upgraded]
    rows += [("downgrade", e) for e in r.downgraded] + [("replace", e) for e in r.replaced]
    rows += [("remove", e) for e in r.removed]
    direct = [(k, e) for k, e in rows if e.reason == "requested" or k == "remove"]
    deps = [(k, e) for k, e in rows if (k, e) not in direct]
    if direct:
        lines += ["", "| change | package | repo |", "|---|---|---|"]
        lines += [f"| {k} | `{_nevra(e)}` | {e.repo} |" for k, e in direct]
    if deps:
        lines += ["", f"<details><summary>Dependencies ({len(deps)})</summary>", ""]
        lines += ["| change | package | repo | why |", "|---|---|---|---|"]
        for k, e in deps:
            why = (_chain(e) if len(e.why) > 1 else e.name) + (" (weak)" if e.weak else "")
            lines.append(f"| {k} | `{_nevra(e)}` | {e.repo} | {_md(why)} |")
        lines += ["", "</details>"]
    if r.inactive:
        lines += ["", "Inactive (the base provides them): " + ", ".join(f"`{i.spec}`" for i in r.inactive)]
    for key in plan.keys:
        state = "**new key**" if key.new else "known key"
        who = _md(", ".join(key.user_ids))
        lines.append(
            f"- {state} `{key.fingerprint}` {who} signs {len(key.packages)} package(s) from {', '.join(key.repos)}"
        )
    for c in plan.checks:
        lines.append(f"- **{c.severity}**: {_md(c.message)}")
    return "\n".join(lines) + "\n"


def _nevra(e: m.PackageEntry) -> str:
    if e.before_checksum:
        return f"{e.nevra} (build {_short(e.before_checksum)} → {_short(e.checksum)})"
    return f"{e.before} → {e.after}" if e.before else e.nevra


def _short(checksum: str) -> str:
    algorithm, _, digest = checksum.partition(":")
    return f"{algorithm}:{digest[:12]}"


def _md(text: str) -> str:
    return text.replace("|", "\\|")
