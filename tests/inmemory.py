"""In-memory implementations of the planner's ports (reconcile/planner/ports.py): a deployed system and a
package source held in Python objects, driving the real planner and the real libsolv resolver.

Packages are the spec files the real tier builds, parsed by rpm's own spec parser (`rpm.spec`), which gives
the header rpmbuild would (dependencies, scriptlets) without building; the file list comes from the spec's
%files text and the base's accounts from the passwd and group its %install writes. No root, no libostree, no
rpmbuild: a case runs in milliseconds."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import rpm

from reconcile.base import BaseChoice, BaseWanted
from reconcile.commitmeta import LayeredPackage
from reconcile.deployed import DeploymentState
from reconcile.errors import ReconcileError
from reconcile.planner import model as m
from reconcile.planner.local import LocalPackage
from reconcile.planner.ports import Resolver
from reconcile.planner.solver import Candidate, Source
from reconcile.report import Reporter
from reconcile.repos.metadata import RepoMetadata
from reconcile.rpm.header import FILE_CONFIG, FILE_GHOST, FileEntry, Header, RpmHeaders
from reconcile.rpm.header import file_entries as header_file_entries
from reconcile.rpm.nevra import Nevra
from reconcile.rpm.treerules import Owners

_DIRECTIVE = re.compile(r"^%(attr|config|caps|dir|ghost|doc|license)(\([^)]*\))?\s*")


@dataclass(frozen=True)
class MemoryPackage:
    header: Header
    accounts: tuple[str, str] = ("", "")  # the passwd and group text its %install writes

    @property
    def nevra(self) -> str:
        return str(Nevra.from_header(self.header))

    @property
    def source(self) -> Source:
        checksum = "sha256:" + hashlib.sha256(self.header.blob).hexdigest()
        return Source(checksum, "test", f"{self.nevra}.rpm", "memory://test")


_ISA = {"i686": ("x86", "32"), "x86_64": ("x86", "64"), "aarch64": ("aarch64", "64"), "s390x": ("s390x", "64")}


def from_spec(text: str, target: str | None = None) -> list[MemoryPackage]:
    """The packages a spec text defines, as rpm parses them (`rpm.spec`), with their %files lists; `target`
    as `rpmbuild --target` (the arch and its ISA provides)."""
    macros = {"_target_cpu": target, "__isa_name": _ISA[target][0], "__isa_bits": _ISA[target][1]} if target else {}
    with tempfile.NamedTemporaryFile("w", suffix=".spec") as f:
        f.write(text)
        f.flush()
        for name, value in macros.items():
            rpm.addMacro(name, value)
        try:
            with _quiet_stderr():
                spec = rpm.spec(f.name)
        finally:
            for name in macros:
                rpm.delMacro(name)
    accounts = (_heredoc(spec.install, "etc/passwd"), _heredoc(spec.install, "etc/group"))
    created = _created(spec.install or "")
    out = []
    for pkg in spec.packages:
        hdr = pkg.header
        _set_files(hdr, pkg.fileList or "", created)
        out.append(MemoryPackage(Header(hdr.unload()), accounts))
    return out


class _quiet_stderr:
    """rpm's spec parser warns on stderr (e.g. about a missing BuildRoot macro); the tests read none of it."""

    def __enter__(self) -> None:
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        os.dup2(self.saved, 2)
        os.close(self.saved)


def _heredoc(script: str, path: str) -> str:
    found = re.search(rf"cat > \S*/{re.escape(path)} <<'?(\w+)'?\n(.*?)\n\1\n", script or "", re.S)
    return found.group(2) + "\n" if found else ""


def _created(script: str) -> dict[str, bool]:
    """The paths %install names in the build root, True for the directories it makes: a directory that %files
    lists holds the paths under it, as rpmbuild would find them."""
    out: dict[str, bool] = {}
    for line in script.splitlines():
        is_mkdir = line.lstrip().startswith("mkdir ")
        for path in re.findall(r"/BUILDROOT/[^/\s]+(/[^\s'\"<>|;]*)", line):
            out[path.rstrip("/")] = out.get(path.rstrip("/"), False) or is_mkdir
    return out


def _set_files(hdr: rpm.hdr, listing: str, created: dict[str, bool]) -> None:
    entries = []
    for line in listing.splitlines():
        line = line.strip()
        mode, user, group, flags = stat.S_IFREG | 0o644, "root", "root", 0
        while True:
            directive = _DIRECTIVE.match(line)
            if directive is None:
                break
            word, args = directive.group(1), (directive.group(2) or "()")[1:-1]
            if word == "attr":
                perm, user, group = (a.strip() for a in args.split(","))
                mode = stat.S_IFMT(mode) | (int(perm, 8) if perm != "-" else 0o644)
            elif word == "dir":
                mode = stat.S_IFDIR | (stat.S_IMODE(mode) if stat.S_IMODE(mode) != 0o644 else 0o755)
            elif word == "config":
                flags |= FILE_CONFIG
            elif word == "ghost":
                flags |= FILE_GHOST
            line = line[directive.end() :]
        path = line.strip().strip('"')
        if not path.startswith("/"):
            continue
        inside = sorted(p for p in created if p.startswith(path + "/"))
        if inside and not stat.S_ISDIR(mode):
            mode = stat.S_IFDIR | 0o755
        entries.append((path, mode, user, group, flags))
        for p in inside:
            entries.append((p, stat.S_IFDIR | 0o755 if created[p] else stat.S_IFREG | 0o644, user, group, 0))
    if not entries:
        return
    dirs = sorted({os.path.dirname(p) + "/" for p, *_ in entries})
    hdr[rpm.RPMTAG_DIRNAMES] = dirs
    hdr[rpm.RPMTAG_BASENAMES] = [os.path.basename(p) for p, *_ in entries]
    hdr[rpm.RPMTAG_DIRINDEXES] = [dirs.index(os.path.dirname(p) + "/") for p, *_ in entries]
    hdr[rpm.RPMTAG_FILEMODES] = [e[1] for e in entries]
    hdr[rpm.RPMTAG_FILEUSERNAME] = [e[2] for e in entries]
    hdr[rpm.RPMTAG_FILEGROUPNAME] = [e[3] for e in entries]
    hdr[rpm.RPMTAG_FILEFLAGS] = [e[4] for e in entries]


class NoCache:
    """A package cache that holds nothing: every package the plan adds is read from the source."""

    def cached_raw(self, nevra: Nevra, checksum: str) -> bytes | None:
        return None

    def holds(self, nevra: Nevra) -> bool:
        return False

    def sysusers(self, nevra: Nevra, rpm_path: Path | None, paths: set[str]) -> dict[str, bytes]:
        return {}


@dataclass
class MemorySystem:
    """Bases by ref, and one stateroot's default deployment, which `deploy` replaces as apply would."""

    arch: str
    bases: dict[str, list[MemoryPackage]]
    refspec: str
    reporter: Reporter = field(default_factory=lambda: Reporter(quiet=True))
    packages: NoCache = field(default_factory=NoCache)
    known: dict[str, MemoryPackage] = field(default_factory=dict)  # every header seen, by NEVRA
    state: DeploymentState | None = None

    def __post_init__(self) -> None:
        base = self._commit_of(self.refspec, Path("origin"))
        self.state = _fresh_deployment(self.refspec, base)

    def current(self, stateroot: str | None) -> DeploymentState:
        assert self.state is not None
        return self.state

    def base_commit(self, wanted: BaseWanted, origin: Path) -> BaseChoice:
        return BaseChoice(self._commit_of(wanted.refspec, origin), "the ref's commit")

    def _commit_of(self, refspec: str, origin: Path) -> str:
        if refspec not in self.bases:
            raise ReconcileError(f"The baserefspec {refspec!r} in {origin} is not a ref of the in-memory system.")
        return hashlib.sha256("\n".join(p.nevra for p in self.bases[refspec]).encode()).hexdigest()

    def _base(self, commit: str) -> list[MemoryPackage]:
        return next(pkgs for ref, pkgs in self.bases.items() if self._commit_of(ref, Path()) == commit)

    def cached_local(self, pin: str, origin: Path) -> LocalPackage:
        raise ReconcileError(f"{origin}: the in-memory system has no package cache for {pin}.")

    def base_headers(self, base: str) -> list[Header]:
        return [p.header for p in self._base(base)]

    def describe_commit(self, commit: str) -> tuple[str | None, int]:
        return None, 0

    def solv_cache(self, base: str, stateroot: str) -> Path | None:
        return None

    def layered_headers(self, current: DeploymentState) -> dict[str, Header]:
        return {str(p.nevra): self.known[str(p.nevra)].header for p in current.layered}

    def os_release_version(self, base: str) -> str | None:
        return None

    def owners(self, base: str) -> Owners:
        passwd = "".join(p.accounts[0] for p in self._base(base))
        group = "".join(p.accounts[1] for p in self._base(base))
        return Owners(*Owners.parse(passwd, group))

    def policy_id(self, base: str) -> str:
        return "none"

    def base_entries(self, base: str, paths: list[str], removed: set[str]) -> dict[str, list[tuple[str, FileEntry]]]:
        wanted = set(paths)
        out: dict[str, list[tuple[str, FileEntry]]] = {}
        for p in self._base(base):
            if p.nevra in removed:
                continue
            for fe in header_file_entries(p.header):
                if fe.path in wanted:
                    out.setdefault(fe.path, []).append((p.nevra, fe))
        return out

    def deploy(self, plan: m.Plan) -> None:
        """What apply records of a plan: the new deployment's origin and layered packages."""
        assert self.state is not None and plan.applyable
        t, desired = plan.target, plan.origin.desired
        self.state = replace(
            self.state,
            checksum=hashlib.sha256(plan.model_dump_json().encode()).hexdigest(),
            refspec=t.base_refspec,
            requested=list(desired["requested"]),
            override_remove=list(desired["override_remove"]),
            recommends=bool(desired["recommends"]),
            base_checksum=t.base_checksum,
            layered=[LayeredPackage(Nevra.parse(p.nevra), p.checksum, p.repo) for p in t.packages],
            active_requests=list(t.active_requests),
            requested_names=sorted(p.name for p in t.packages if p.requested),
            removed_base=list(t.remove_base),
            state_digest=t.state_digest,
            kernel_args=t.kernel_args if t.kernel_args is not None else self.state.kernel_args,
        )


def _fresh_deployment(refspec: str, base: str) -> DeploymentState:
    return DeploymentState(
        stateroot="example",
        index=0,
        checksum=base,
        serial=0,
        booted=False,
        refspec=refspec,
        requested=[],
        local=[],
        override_remove=[],
        recommends=True,
        ignore_scripts=[],
        releasever=None,
        localpkg_gpgcheck=None,
        base_checksum=base,
        layered=[],
        active_requests=[],
        requested_names=[],
        removed_base=[],
        state_digest=None,
        format_version=m.ASSEMBLY_FORMAT_VERSION,
        version=None,
        timestamp=0,
    )


@dataclass
class MemorySource:
    """One repo, [test], whose packages are headers in memory."""

    packages: list[MemoryPackage]
    releasever: str | None = None
    warnings: list[str] = field(default_factory=list)

    def feed(self, resolver: Resolver, *, force: bool) -> list[m.RepoUsed]:
        resolver.add_packages("test", [(p.header, p.source) for p in self.packages])
        used = m.RepoUsed(
            id="test",
            file="memory",
            url="memory://test",
            revision="",
            repomd_sha256="",
            gpgcheck=False,
            repo_gpgcheck=False,
        )
        return [used]

    def filelists(self, meta: RepoMetadata) -> Path | None:
        return None  # the headers carry whole file lists

    def read_headers(self, candidates: list[Candidate], whole: bool) -> dict[str, RpmHeaders]:
        by_nevra = {p.nevra: p for p in self.packages}
        out = {}
        for c in candidates:
            hdr = by_nevra[str(c.nevra)].header
            out[str(c.nevra)] = RpmHeaders(hdr, hdr, b"", 0)
        return out

    def download(self, candidates: list[Candidate]) -> dict[str, Path]:
        raise ReconcileError("The in-memory source holds headers, not package files.")

    def discard(self, candidates: list[Candidate]) -> None:
        pass

    def signature_checks(
        self, raws: dict[str, tuple[str, bytes]], new: set[str]
    ) -> tuple[list[m.Check], list[m.SigningKey]]:
        return [], []  # gpgcheck is off for [test], as in the real tier's repo file

    def require_unavailable(self, new: list[Candidate], update: bool) -> list[str]:
        return []

    def unavailable_error(self, cause: ReconcileError) -> ReconcileError | None:
        return None
