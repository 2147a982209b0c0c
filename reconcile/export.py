"""`reconcile export --format containerfile`: a plan rendered as a Containerfile that builds the same declaration
onto a bootable container image (bootc). Pure: the plan and the origin in, text out (docs/export.md says why each
step is written the way it is). The output is a function of its inputs alone: sorted, no time, no host paths."""

from __future__ import annotations

import hashlib
import json
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from reconcile.container import parse_image_reference
from reconcile.errors import ReconcileError, UsageError
from reconcile.origin import LoadedOrigin
from reconcile.planner import model as m
from reconcile.rpm.nevra import Nevra, evr_compare

KARGS_FILE = "/usr/lib/bootc/kargs.d/50-reconcile.toml"
CONTEXT_REPOS = "yum.repos.d"  # in the build context: the .repo files the packages come from
CONTEXT_LOCAL = "local"  # in the build context: the local RPM files
LOCAL_MOUNT = "/run/reconcile-local"  # bound there for one RUN only, so no layer keeps the files
LOCAL = "@local"
# rpm-ostree's `override remove`: exactly that package, nothing that needs it, no %preun/%postun (the plan has
# proved the rest of the tree does without it).
RPM_ERASE = ("rpm", "-e", "--nodeps", "--noscripts", "--notriggers")


@dataclass(frozen=True)
class ContextFile:
    """A file the image build needs beside the Containerfile: `source` on this host, `name` in the context."""

    source: Path
    name: str


@dataclass(frozen=True)
class Export:
    text: str
    context: list[ContextFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def pins_digest(plan: m.Plan) -> str:
    """sha256 over what the plan pins and the Containerfile installs: the base commit, each package's NEVRA,
    repo and checksum, the removals and the replacements. Not what the host has now, nor the plan's time: the
    same declaration on the same base gives the same digest, before and after apply."""
    t = plan.target
    pinned = {
        "base": t.base_checksum,
        "packages": sorted([p.nevra, p.repo, p.checksum] for p in t.packages),
        "remove": sorted(t.remove_base),
        "replace": sorted([r.before, r.after, r.package.repo, r.package.checksum] for r in t.replace_base),
    }
    return hashlib.sha256(json.dumps(pinned, sort_keys=True).encode()).hexdigest()


def from_image(loaded: LoadedOrigin, override: str | None) -> str:
    """The FROM image: `--from`, else the origin's `container-image` without its ostree signature policy."""
    if override is not None:
        if not override.strip() or not override.isprintable():  # a line break would start another instruction
            raise UsageError(f"--from {override!r} is not an image name (empty, or with a line break in it).")
        return override
    reference = loaded.desired.origin.container_image
    if reference is None:
        raise UsageError(
            f"No image to build FROM: {loaded.path} has no [origin] container-image and --from was not given.",
            hint="Pass --from IMAGE (e.g. --from quay.io/fedora/fedora-bootc:41), the bootable image to build on.",
        )
    parsed = parse_image_reference(reference)
    return parsed.name if parsed.transport == "docker://" else parsed.image


def render_containerfile(plan: m.Plan, loaded: LoadedOrigin, image: str, origin_name: str) -> Export:
    """The Containerfile for `plan` (made from `loaded`, named `origin_name` in the header), FROM `image`."""
    if not plan.applyable:
        raise ReconcileError("The plan has errors, so there is nothing to export: " + "; ".join(plan.errors))
    t = plan.target
    _check_one_line(plan, origin_name)
    warnings = _warnings(loaded)
    repo_files = _repo_files(plan)
    locals_ = sorted((p for p in t.to_install if p.repo == LOCAL), key=lambda p: (p.location or p.nevra, p.nevra))
    context = [ContextFile(Path(path), f"{CONTEXT_REPOS}/{Path(path).name}") for path in repo_files]
    context += [ContextFile(_local_file(p), f"{CONTEXT_LOCAL}/{p.location}") for p in locals_]
    clash = sorted({c.name for c in context if [d.name for d in context].count(c.name) > 1})
    if clash:  # the build context is one flat directory per kind
        raise ReconcileError(f"Two files would both be {', '.join(clash)} in the build context; rename one.")
    lines = _header(plan, loaded, origin_name, context, warnings)
    lines += [f"FROM {image}", ""]
    for c in context:
        if c.name.startswith(CONTEXT_REPOS + "/"):
            lines.append(f"COPY {c.name} /etc/yum.repos.d/{Path(c.name).name}")
    if repo_files:
        lines.append("")
    lines += _package_steps(plan, loaded)
    lines += _kargs_step(loaded)
    lines += ["RUN bootc container lint", ""]
    return Export("\n".join(lines), context, warnings)


def _check_one_line(plan: m.Plan, origin_name: str) -> None:
    """A line break in a value would end its instruction and start another, a space in a COPY source split it:
    refuse rather than quote."""
    t = plan.target
    values = {"the origin file's name": origin_name}
    for p in t.to_install:
        values.update({f"package {p.nevra!r}": p.nevra + p.repo + p.location})
    values.update({f"base package {n!r}": n for n in [*t.erased_base, t.base_refspec]})
    values.update({f"request {i.spec!r}": i.spec + i.provided_by for i in plan.resolution.inactive})
    bad = [what for what, value in values.items() if not value.isprintable()]
    bad += [
        f"repo file {r.file!r}" for r in plan.repos if not Path(r.file).name.isprintable() or " " in Path(r.file).name
    ]
    if bad:
        raise ReconcileError(
            f"Cannot write a Containerfile: {', '.join(sorted(bad))} holds a line break or a control character "
            "(or, a repo file's name, a space)."
        )


def _header(
    plan: m.Plan, loaded: LoadedOrigin, origin_name: str, context: list[ContextFile], warnings: list[str]
) -> list[str]:
    t = plan.target
    out = [
        "# Written by `reconcile export --format containerfile`: the declaration of one origin file, built onto a",
        "# bootable container image with the exact packages its plan pinned.",
        f"# Origin: {origin_name} (sha256:{loaded.sha256})",
        f"# Pins:   sha256:{pins_digest(plan)}",
        f"# Base:   {t.base_refspec} at {t.base_checksum}",
    ]
    if context:
        out.append("# Build context (`reconcile export --context DIR` copies these into DIR):")
        out += [f"#   {c.name}" for c in context]
    for w in warnings:
        out += textwrap.wrap(
            f"Not expressible in a Containerfile: {w}", 108, initial_indent="# ", subsequent_indent="#   "
        )
    return [*out, ""]


def _warnings(loaded: LoadedOrigin) -> list[str]:
    d = loaded.desired
    out = []
    if d.kargs.delete:
        out.append(
            f"kargs.delete {json.dumps(d.kargs.delete)}: bootc's kargs.d only adds arguments (delete these on "
            "the host, or from the base image's own kargs.d file)."
        )
    if d.options.ignore_scripts:
        out.append(
            f"options.ignore-scripts {json.dumps(d.options.ignore_scripts)}: dnf runs every scriptlet of a "
            "package it installs."
        )
    return out


def _repo_files(plan: m.Plan) -> list[str]:
    """The .repo files defining the repos the packages to install come from, sorted."""
    used = {p.repo for p in plan.target.to_install if p.repo != LOCAL}
    files = sorted({r.file for r in plan.repos if r.id in used})
    missing = sorted(used - {r.id for r in plan.repos})
    if missing:  # a plan always records the repos it resolved against
        raise ReconcileError(f"The plan records no .repo file for the repo(s) {', '.join(missing)}.")
    return files


def _local_file(p: m.PinnedPackage) -> Path:
    if not p.baseurl.startswith("file://") or not p.location:
        raise ReconcileError(
            f"The local package {p.nevra} is pinned by checksum only (it lives in the package cache, no file "
            "names it), so it cannot be put in the build context.",
            hint="List the RPM file itself in packages.local / overrides.replace-local.",
        )
    return Path(p.baseurl.removeprefix("file://")) / p.location


def _spec(p: m.PinnedPackage) -> str:
    """How dnf is told about the package: its exact NEVRA, or the file bound from the build context."""
    return f"{LOCAL_MOUNT}/{p.location}" if p.repo == LOCAL else p.nevra


def _package_steps(plan: m.Plan, loaded: LoadedOrigin) -> list[str]:
    t = plan.target
    install = sorted(t.packages, key=lambda p: p.nevra)
    swaps = sorted(t.replace_base, key=lambda r: r.before)
    direction = {r.before: evr_compare(Nevra.parse(r.after), Nevra.parse(r.before)) for r in swaps}
    up = [r.package for r in swaps if direction[r.before] > 0]
    down = [r.package for r in swaps if direction[r.before] < 0]
    same = [r.package for r in swaps if direction[r.before] == 0]  # same NEVRA, another build: a local file
    if not (install or swaps or t.remove_base):
        return []
    out = []
    if install:
        out.append("# Packages layered (requested, or pulled in by a request), from [repo] or a local file:")
        out += [f"#   {p.nevra}  {_why(p)}" for p in install]
    inactive = plan.resolution.inactive
    if inactive:
        out.append("# Requested, but the base already provides them (not installed here):")
        out += [f"#   {i.spec}  (provided by {i.provided_by})" for i in sorted(inactive, key=lambda i: i.spec)]
    if t.remove_base:
        out.append("# Base packages removed (overrides.remove): exactly these, as `rpm-ostree override remove`.")
        out += [f"#   {n}" for n in sorted(t.remove_base)]
    if swaps:
        out.append("# Base packages replaced (overrides.replace, replace-local), each by its exact build:")
        out += [f"#   {r.before} -> {r.after}  [{r.package.repo}]" for r in swaps]
    commands: list[str] = []
    locals_ = sorted((p for p in t.to_install if p.repo == LOCAL), key=lambda p: p.location)
    if locals_:  # the files the context holds must be the ones the plan pinned
        checks = [f"{p.checksum.removeprefix('sha256:')}  {_spec(p)}" for p in locals_]
        commands.append(_shell(["printf", "%s\\n"], checks) + " | sha256sum --quiet --check -")
    if t.remove_base:
        commands.append(_shell(list(RPM_ERASE), sorted(t.remove_base)))
    dnf = ["dnf", "-y", *_dnf_options(loaded)]
    if install or up:  # the plan lists every weak dependency it chose, so dnf adds none
        specs = [_spec(p) for p in sorted([*install, *up], key=lambda p: p.nevra)]
        commands.append(_shell([*dnf, "install", "--setopt=install_weak_deps=False"], specs))
    if down:
        commands.append(_shell([*dnf, "downgrade"], [_spec(p) for p in down]))
    if same:
        commands.append(_shell([*dnf, "reinstall"], [_spec(p) for p in same]))
    commands.append("dnf clean all")
    mount = f"--mount=type=bind,source={CONTEXT_LOCAL},target={LOCAL_MOUNT} " if locals_ else ""
    out.append(f"RUN {mount}" + " \\\n && ".join(commands))
    return [*out, ""]


def _why(p: m.PinnedPackage) -> str:
    source = "local file" if p.repo == LOCAL else f"[{p.repo}]"
    return f"{'requested' if p.requested else 'dependency'}, {source}"


def _dnf_options(loaded: LoadedOrigin) -> list[str]:
    o = loaded.desired.options
    out = [f"--releasever={o.releasever}"] if o.releasever else []
    if o.localpkg_gpgcheck is not None:
        out.append(f"--setopt=localpkg_gpgcheck={int(o.localpkg_gpgcheck)}")
    return out


def _shell(command: list[str], operands: list[str]) -> str:
    """One command quoted for /bin/sh; its operands (packages, lines) one a line once it grows long."""
    head, words = shlex.join(command), [shlex.quote(w) for w in operands]
    line = " ".join([head, *words])
    return line if len(line) <= 100 else head + "".join(f" \\\n      {w}" for w in words)


def _kargs_step(loaded: LoadedOrigin) -> list[str]:
    """`[kargs] append` as a bootc kargs.d file, which bootc applies at install and on each upgrade."""
    append = loaded.desired.kargs.append
    if not append:
        return []
    toml = "kargs = [" + ", ".join(json.dumps(a) for a in append) + "]"  # a JSON string is a TOML basic string
    directory = str(PurePosixPath(KARGS_FILE).parent)
    command = f"mkdir -p {directory} && printf '%s\\n' {shlex.quote(toml)} > {KARGS_FILE}"
    return [
        "# Kernel arguments ([kargs] append), for bootc to apply at install and at each upgrade.",
        f"RUN {command}",
        "",
    ]
