"""Fedora-like packages (bench-fedora-NNNN) for the Fedora-sized base, generated from the seed.

A Fedora header is heavy because of what it says about the package, not its payload: a changelog going back
years, a long description, one digest, size, mode, owner and flags per file, and dozens of provides and
requires (sonames with symbol versions, `name(arch)`, python3dist). These packages carry that weight: file
counts drawn from a long-tailed distribution, files laid out where Fedora puts them (binaries, versioned
sonames and their symlinks, private data trees, python modules with their bytecode, man pages, %lang
catalogs in every locale, licenses, docs, %config files, units), and a DAG of versioned dependencies.
Payloads stay small (a few hundred bytes a file): what the benchmark weighs is the tree and the rpmdb.
"""

from __future__ import annotations

import datetime
import math
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

WORDS = (  # noqa: SIM905 (a word list reads better as text)
    "access account adapter agent archive audio backend binding bluetooth boot buffer bus cache calendar "
    "capture certificate channel client codec color compat config console context core crypto cursor "
    "daemon data desktop device dialog disk display document driver editor engine event export filter "
    "firmware font format frame gateway graphics handler helper icon image index input kernel key "
    "keyboard layout library locale loader logger manager media memory menu message metadata module "
    "monitor mount network notify object panel parser partition pattern plugin policy portal power "
    "printer process profile protocol proxy query queue reader record render resolver runtime scanner "
    "schema screen script search secret sensor server service session settings shell signal socket sound "
    "source spell storage stream style sync system table terminal text theme thread thumbnail timer token "
    "tool tracker transport tree unit update usb user utility vault video viewer volume wayland widget "
    "window worker writer xml zone"
).split()
LANGS = (  # noqa: SIM905 (a word list reads better as text)
    "af am ar as ast az be bg bn bn_IN br bs ca ca@valencia cs cy da de el en_AU en_CA en_GB eo es es_AR "
    "es_MX et eu fa fi fr fur fy ga gd gl gu he hi hr hu hy ia id is it ja ka kk km kn ko ku ky lt lv mai "
    "mk ml mn mr ms nb ne nl nn oc or pa pl ps pt pt_BR ro ru si sk sl sq sr sr@latin sv ta te tg th tr "
    "ug uk ur uz vi wa zh_CN zh_HK zh_TW"
).split()
PACKAGERS = (
    "Fedora Release Engineering <releng@fedoraproject.org>",
    "Adam Williamson <awilliam@example.org>",
    "Tomas Hrcka <thrcka@example.org>",
    "Zbigniew Jedrzejewski-Szmek <zbyszek@example.org>",
    "Miro Hroncok <mhroncok@example.org>",
    "Peter Robinson <pbrobinson@example.org>",
    "Kalev Lember <klember@example.org>",
    "Neal Gompa <ngompa@example.org>",
)
LICENSES = ("MIT", "GPL-2.0-or-later", "LGPL-2.1-or-later", "Apache-2.0", "BSD-3-Clause", "GPL-3.0-or-later AND MIT")
PYTHON = "usr/lib/python3.12/site-packages"


@dataclass
class FedoraPackage:
    name: str
    version: str
    release: str
    soname: str | None  # "libfoo.so.3" when the package ships a shared library
    python: str | None  # its python module's name, when it ships one
    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    owned: list[str] = field(default_factory=list)  # %files lines
    provides: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)

    @property
    def file_count(self) -> int:
        return len(self.files) + len(self.links)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _lognormal(rng: random.Random, mean: float, sigma: float, low: int, high: int) -> int:
    # exp(mu + sigma^2 / 2) is the mean of a lognormal: the drawn counts average about `mean`.
    mu = math.log(mean) - sigma * sigma / 2
    return max(low, min(high, int(rng.lognormvariate(mu, sigma))))


def _content(rng: random.Random, path: str) -> bytes:
    return f"{path}\n".encode() * rng.randint(1, 12)


def plan_packages(count: int, mean_files: int, arch: str, rng: random.Random, bench_libs: int) -> list[FedoraPackage]:
    """The packages' files and dependencies; each depends only on earlier ones (and on bench-base sonames)."""
    isa = f"({arch.replace('_', '-')})"
    packages: list[FedoraPackage] = []
    for i in range(count):
        name = f"bench-fedora-{i:04d}"
        stem = f"{rng.choice(WORDS)}{i:04d}"
        version = f"{rng.randint(0, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}"
        release = f"{rng.randint(1, 9)}.fc40"
        has_lib, has_py = rng.random() < 0.4, rng.random() < 0.2
        pkg = FedoraPackage(name, version, release, f"lib{stem}.so.{rng.randint(0, 6)}" if has_lib else None, None)
        pkg.python = f"py{stem}" if has_py else None
        _lay_out(pkg, stem, _lognormal(rng, mean_files, 1.3, 4, 6000), rng)
        pkg.provides += [f"{name}{isa} = {version}-{release}"]
        if pkg.soname:
            pkg.provides.append(f"{pkg.soname}()(64bit)")
            symbol = stem.upper()
            pkg.provides += [f"{pkg.soname}({symbol}_{v // 10}.{v % 10})(64bit)" for v in range(rng.randint(0, 24))]
        if pkg.python:
            pkg.provides += [f"python3dist({pkg.python}) = {version}", f"python3.12dist({pkg.python}) = {version}"]
            pkg.provides.append(f"python3-{pkg.python} = {version}-{release}")
        pkg.provides += [f"bundled({rng.choice(WORDS)}{k}) = 1.{k}" for k in range(rng.choice((0, 0, 0, 1, 3)))]
        if i:
            for _ in range(rng.randint(2, 14)):
                dep = packages[rng.randrange(i)]
                if dep.soname and rng.random() < 0.6:
                    pkg.requires.append(f"{dep.soname}()(64bit)")
                elif dep.python and pkg.python:
                    pkg.requires.append(f"python3.12dist({dep.python}) >= {dep.version}")
                else:
                    pkg.requires.append(f"{dep.name}{isa} >= {dep.version}-{dep.release}")
        pkg.requires.append(f"libbench{rng.randrange(bench_libs):03d}.so.1()(64bit)")
        pkg.requires = sorted(set(pkg.requires))
        packages.append(pkg)
    return packages


def _lay_out(pkg: FedoraPackage, stem: str, total: int, rng: random.Random) -> None:
    name = pkg.name
    add, owned = pkg.files.__setitem__, pkg.owned
    add(f"usr/share/licenses/{name}/COPYING", _content(rng, "license"))
    owned.append(f"%license /usr/share/licenses/{name}/COPYING")
    for doc in ("README.md", "NEWS", "AUTHORS", "CHANGES")[: rng.randint(1, 4)]:
        add(f"usr/share/doc/{name}/{doc}", _content(rng, doc))
    owned.append(f"%doc /usr/share/doc/{name}")
    for k in range(rng.randint(0, 4)):
        tool = stem if k == 0 else f"{stem}-{rng.choice(WORDS)}{k}"
        add(f"usr/bin/{tool}", _content(rng, tool))
        add(f"usr/share/man/man1/{tool}.1.gz", _content(rng, "man"))
        owned += [f"/usr/bin/{tool}", f"/usr/share/man/man1/{tool}.1.gz"]
    if pkg.soname:
        real = f"usr/lib64/{pkg.soname}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        add(real, _content(rng, real))
        pkg.links[f"usr/lib64/{pkg.soname}"] = real.rsplit("/", 1)[1]
        owned += [f"/{real}", f"/usr/lib64/{pkg.soname}"]
    if rng.random() < 0.3:
        add(f"etc/{name}/{stem}.conf", _content(rng, "conf"))
        owned += [f"%dir /etc/{name}", f"%config(noreplace) /etc/{name}/{stem}.conf"]
    if rng.random() < 0.15:
        add(f"usr/lib/systemd/system/{stem}.service", _content(rng, "[Unit]"))
        owned.append(f"/usr/lib/systemd/system/{stem}.service")
    if rng.random() < 0.3:
        for lang in rng.sample(LANGS, rng.randint(20, len(LANGS))):
            add(f"usr/share/locale/{lang}/LC_MESSAGES/{stem}.mo", _content(rng, lang))
            owned.append(f"%lang({lang}) /usr/share/locale/{lang}/LC_MESSAGES/{stem}.mo")
    rest = max(0, total - pkg.file_count)
    if pkg.python:
        top = f"{PYTHON}/{pkg.python}"
        owned.append(f"/{top}")
        share, rest = rest // 2, rest - rest // 2
        for k in range(max(1, share // 2)):
            sub = f"{top}/{rng.choice(WORDS)}" if k > 3 else top
            module = f"{rng.choice(WORDS)}_{k}"
            add(f"{sub}/{module}.py", _content(rng, module))
            add(f"{sub}/__pycache__/{module}.cpython-312.pyc", _content(rng, "pyc"))
    if rest:
        kind = rng.choice(("share", "share", "lib", "icons"))
        top = {"share": f"usr/share/{stem}", "lib": f"usr/lib64/{stem}", "icons": "usr/share/icons/hicolor"}[kind]
        if kind != "icons":
            owned.append(f"/{top}")
        for k in range(rest):
            if kind == "icons":
                size = rng.choice((16, 22, 24, 32, 48, 64, 128, 256, 512))
                path = f"{top}/{size}x{size}/apps/{stem}-{k}.png"
                owned.append(f"/{path}")
            else:
                depth = [rng.choice(WORDS) for _ in range(rng.randint(0, 3))]
                ext = rng.choice((".so", ".xml", ".json", ".ui", ".svg", ".js", ".dat")) if kind == "share" else ".so"
                path = "/".join([top, *depth, f"{rng.choice(WORDS)}-{k}{ext}"])
            add(path, _content(rng, path))


def changelog(pkg: FedoraPackage, entries: int, rng: random.Random) -> list[str]:
    """Newest first, weekdays right (rpmbuild refuses an out-of-order %changelog)."""
    day = datetime.date(2024, 4, 20)
    gap = max(2, min(75, 2 * 9000 // entries))  # within 25 years: rpm refuses dates before 1990
    lines = []
    for k in range(entries):
        who = rng.choice(PACKAGERS)
        major = 40 - k // 6
        lines.append(f"* {day:%a %b %d %Y} {who} - {pkg.version}-{max(1, entries - k)}")
        if who == PACKAGERS[0]:
            lines.append(f"- Rebuilt for https://fedoraproject.org/wiki/Fedora_{major}_Mass_Rebuild")
        else:
            lines.append(f"- Update to {rng.randint(0, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}")
            for _ in range(rng.randint(0, 4)):
                lines.append(f"- {_words(rng, rng.randint(4, 16)).capitalize()} (rhbz#{rng.randint(1000000, 2300000)})")
        lines.append("")
        day -= datetime.timedelta(days=rng.randint(1, gap))
    return lines


def spec(pkg: FedoraPackage, source: Path, changelog_mean: int, rng: random.Random) -> str:
    lines = [
        f"Name: {pkg.name}",
        f"Version: {pkg.version}",
        f"Release: {pkg.release}",
        f"Summary: {_words(rng, rng.randint(3, 9)).capitalize()}",
        f"License: {rng.choice(LICENSES)}",
        f"URL: https://{rng.choice(WORDS)}.example.org/{pkg.name}",
        "AutoReqProv: no",
        "%global debug_package %{nil}",
        "%global __os_install_post %{nil}",
        "%global _build_id_links none",
        "%global _binary_payload w1.gzdio",
    ]
    lines += [f"Provides: {p}" for p in pkg.provides] + [f"Requires: {r}" for r in pkg.requires]
    lines.append("%description")
    for _ in range(rng.randint(1, 5)):
        lines += [f"{_words(rng, rng.randint(30, 110)).capitalize()}.", ""]
    lines += ["%install", "mkdir -p %{buildroot}", f"cp -a {source}/. %{{buildroot}}/", "%files", *pkg.owned]
    lines += ["%changelog", *changelog(pkg, _lognormal(rng, changelog_mean, 0.9, 1, 1500), rng)]
    return "\n".join(lines) + "\n"


def write_tree(pkg: FedoraPackage, root: Path) -> Path:
    for rel, content in pkg.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if rel.startswith("usr/bin/") or ".so" in rel.rsplit("/", 1)[1]:
            path.chmod(0o755)
    for rel, target in pkg.links.items():
        os.symlink(target, root / rel)
    return root


def write_spec(pkg: FedoraPackage, src: Path, specs: Path, changelog_mean: int, rng: random.Random) -> Path:
    """The spec now (it draws from `rng`, in order); the tree is written by whoever builds it (`write_tree`)."""
    path = specs / f"{pkg.name}.spec"
    path.write_text(spec(pkg, src / pkg.name, changelog_mean, rng))
    return path


def remove_tree(pkg: FedoraPackage, src: Path) -> None:
    shutil.rmtree(src / pkg.name, ignore_errors=True)
