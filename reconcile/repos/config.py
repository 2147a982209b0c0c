"""yum/dnf `.repo` files, read as dnf reads them: the options below, `[main]` defaults from the deployment's
`dnf.conf`, dnf's booleans, lists split on spaces or commas, and variables substituted everywhere.

An option reconcile does not know is ignored, as dnf ignores it; an option that would change what is trusted
or installed and that reconcile does not apply is a warning in the plan, never silently dropped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from reconcile.errors import ReconcileError
from reconcile.repos.ini import Section, read_ini
from reconcile.repos.variables import Variables

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}
_RPMMD_TYPES = {"rpm-md", "rpm", "repomd", "rpmmd", "yum"}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmMgG]?)$")
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdSMHD]?)$")
_URL_OPTIONS = ("baseurl", "mirrorlist", "metalink", "gpgkey")
# [main]-only options that change what is installed; reconcile takes these from the origin file instead.
_MAIN_NOT_APPLIED = {
    "install_weak_deps": "use [options] recommends in the origin file",
    "gpgkey_dns_verification": "keys come only from each repo's gpgkey",
    "obsoletes": "libsolv always honours Obsoletes",
}
_REPO_NOT_APPLIED = {
    "module_hotfixes": "reconcile applies no modular filtering",
    "gpgkey_dns_verification": "keys come only from gpgkey",
}
# Options whose default, when the repo does not set them, comes from [main] (dnf.conf).
_INHERITED = (
    "gpgcheck",
    "pkg_gpgcheck",
    "repo_gpgcheck",
    "skip_if_unavailable",
    "sslverify",
    "sslverifystatus",
    "sslcacert",
    "sslclientcert",
    "sslclientkey",
    "proxy",
    "proxy_username",
    "proxy_password",
    "proxy_sslverify",
    "proxy_sslcacert",
    "proxy_sslclientcert",
    "proxy_sslclientkey",
    "timeout",
    "minrate",
    "retries",
    "metadata_expire",
    "max_parallel_downloads",
    "ip_resolve",
    "username",
    "password",
    "includepkgs",
)
DEFAULT_METADATA_EXPIRE = 48 * 3600


@dataclass(frozen=True)
class RepoConfig:
    """One enabled repo with every option reconcile applies (defaults as in dnf 4)."""

    id: str
    name: str
    source: Path
    line: int
    baseurls: tuple[str, ...] = ()
    mirrorlist: str | None = None
    metalink: str | None = None
    gpgcheck: bool = False
    repo_gpgcheck: bool = False
    gpgkeys: tuple[str, ...] = ()
    sslverify: bool = True
    sslverifystatus: bool = False
    sslcacert: str | None = None
    sslclientcert: str | None = None
    sslclientkey: str | None = None
    proxy: str | None = None  # "" disables the environment's proxy, None leaves it
    proxy_username: str | None = None
    proxy_password: str | None = None
    proxy_sslverify: bool = True
    proxy_sslcacert: str | None = None
    proxy_sslclientcert: str | None = None
    proxy_sslclientkey: str | None = None
    username: str | None = None
    password: str | None = None
    ip_resolve: str | None = None
    skip_if_unavailable: bool = False
    priority: int = 99
    cost: int = 1000
    excludepkgs: tuple[str, ...] = ()
    includepkgs: tuple[str, ...] = ()
    metadata_expire: int = DEFAULT_METADATA_EXPIRE  # seconds; -1 never expires
    timeout: int = 30  # seconds without progress (below minrate) before a transfer is abandoned
    minrate: int = 1000
    retries: int = 10
    max_parallel_downloads: int = 3

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def urls_tried_first(self) -> str:
        return self.metalink or self.mirrorlist or (self.baseurls[0] if self.baseurls else self.id)

    @property
    def cache_key(self) -> str:
        """As libdnf names a repo's cache: the id plus a hash of where its metadata comes from."""
        return f"{_safe(self.id)}-{hashlib.sha256(self.urls_tried_first.encode()).hexdigest()[:16]}"

    @property
    def is_local(self) -> bool:
        """Only file:// base URLs: reading them again costs no network, so they never expire."""
        return (
            bool(self.baseurls)
            and not (self.mirrorlist or self.metalink)
            and all(u.startswith("file:") for u in self.baseurls)
        )


@dataclass(frozen=True)
class MainConfig:
    """`[main]` of dnf.conf: defaults for every repo, global excludes, and where the repo files are."""

    values: dict[str, str] = field(default_factory=dict)
    excludepkgs: tuple[str, ...] = ()
    reposdirs: tuple[str, ...] = ()
    localpkg_gpgcheck: bool | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepoConfigs:
    repos: list[RepoConfig]
    main: MainConfig
    warnings: list[str]


# The total bound on one file's transfer (minrate/timeout bound a stall; this, a mirror that is just slow).
DEADLINE = 1800.0


@dataclass(frozen=True)
class FetchMode:
    """How a command may use the network."""

    cache_only: bool = False  # no network at all: metadata, keys and packages from the cache
    refresh: bool = False  # fetch metadata even when it has not expired
    deadline: float = DEADLINE  # seconds one file's transfer may take in all, however fast it still moves


class RepoConfigError(ReconcileError):
    """Bad `.repo` or `dnf.conf` content; `problems` names every finding with its file and line."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message, hint="Fix the repo files; nothing was changed.")
        self.problems = problems


def read_main(path: Path | None, variables: Variables) -> MainConfig:
    if path is None or not path.is_file():
        return MainConfig()
    sections = [s for s in read_ini(path) if s.name == "main"]
    if not sections:
        return MainConfig()
    section = sections[0]
    problems: list[str] = []
    opts = _Options(section, {}, variables, problems)
    values = {k: v for k in section.options if (v := opts.raw(k)) is not None}
    warnings = [
        f"{section.where(key)}: {key}={opts.raw(key)} is not applied ({why})."
        for key, why in _MAIN_NOT_APPLIED.items()
        if key in section.options and not _is_default_main(key, opts.raw(key))
    ]
    main = MainConfig(
        values={k: v for k, v in values.items() if k in _INHERITED},
        excludepkgs=opts.items("excludepkgs") + opts.items("exclude"),
        reposdirs=opts.items("reposdir"),
        localpkg_gpgcheck=opts.flag("localpkg_gpgcheck", None),
        warnings=tuple(warnings),
    )
    if problems:
        raise RepoConfigError(f"{path} has {len(problems)} invalid option(s).", problems)
    return main


def load_repo_configs(reposdirs: list[Path], variables: Variables, main: MainConfig | None = None) -> RepoConfigs:
    """Every enabled repo of every `*.repo` file, in directory, file and section order."""
    main = main or MainConfig()
    existing = [d for d in reposdirs if d.is_dir()]
    if not existing:
        raise ReconcileError(
            f"The repos directory {', '.join(map(str, reposdirs))} does not exist or is not a directory.",
            hint="Pass --reposdir with a directory holding yum .repo files.",
        )
    repos: dict[str, RepoConfig] = {}
    problems: list[str] = []
    warnings = list(main.warnings)
    for directory in existing:
        for path in sorted(directory.glob("*.repo")):
            for section in read_ini(path):
                if section.name == "main":
                    continue
                cfg = _repo(section, main, variables, problems, warnings)
                if cfg is None:
                    continue
                if cfg.id in repos:
                    problems.append(
                        f"{section.where()}: the repo id [{cfg.id}] is also defined at {repos[cfg.id].where}."
                    )
                    continue
                repos[cfg.id] = cfg
    if problems:
        raise RepoConfigError(f"The repo files have {len(problems)} problem(s).", problems)
    return RepoConfigs(list(repos.values()), main, warnings)


def _repo(
    section: Section, main: MainConfig, variables: Variables, problems: list[str], warnings: list[str]
) -> RepoConfig | None:
    opts = _Options(section, main.values, variables, problems)
    if not opts.flag("enabled", True):
        return None
    kind = opts.text("type")
    if kind and kind.lower() not in _RPMMD_TYPES:
        problems.append(f"{section.where('type')}: [{section.name}] has type={kind}; only rpm-md repos can be used.")
    for key, why in _REPO_NOT_APPLIED.items():
        if opts.flag(key, False):
            warnings.append(f"{section.where(key)}: [{section.name}] {key} is not applied ({why}).")
    cfg = RepoConfig(
        id=section.name,
        name=opts.text("name") or section.name,
        source=section.path,
        line=section.line,
        baseurls=opts.items("baseurl"),
        mirrorlist=opts.text("mirrorlist"),
        metalink=opts.text("metalink"),
        gpgcheck=bool(opts.flag(opts.alias("gpgcheck", "pkg_gpgcheck"), False)),
        repo_gpgcheck=bool(opts.flag("repo_gpgcheck", False)),
        gpgkeys=opts.items("gpgkey"),
        sslverify=bool(opts.flag("sslverify", True)),
        sslverifystatus=bool(opts.flag("sslverifystatus", False)),
        sslcacert=opts.text("sslcacert"),
        sslclientcert=opts.text("sslclientcert"),
        sslclientkey=opts.text("sslclientkey"),
        proxy=_proxy(opts.text("proxy", keep_empty=True)),
        proxy_username=opts.text("proxy_username"),
        proxy_password=opts.text("proxy_password", keep_empty=True),
        proxy_sslverify=bool(opts.flag("proxy_sslverify", True)),
        proxy_sslcacert=opts.text("proxy_sslcacert"),
        proxy_sslclientcert=opts.text("proxy_sslclientcert"),
        proxy_sslclientkey=opts.text("proxy_sslclientkey"),
        username=opts.text("username"),
        password=opts.text("password", keep_empty=True),
        ip_resolve=opts.text("ip_resolve"),
        skip_if_unavailable=bool(opts.flag("skip_if_unavailable", False)),
        priority=opts.integer("priority", 99, 1, 99),
        cost=opts.integer("cost", 1000, 0, None),
        excludepkgs=opts.items("excludepkgs") + opts.items("exclude") + main.excludepkgs,
        includepkgs=opts.items("includepkgs") + opts.items("include"),
        metadata_expire=opts.duration("metadata_expire", DEFAULT_METADATA_EXPIRE),
        timeout=opts.duration("timeout", 30, fractional=True),
        minrate=opts.size("minrate", 1000),
        retries=opts.integer("retries", 10, 0, None),
        max_parallel_downloads=opts.integer("max_parallel_downloads", 3, 1, 20),
    )
    if not (cfg.baseurls or cfg.mirrorlist or cfg.metalink):
        problems.append(f"{section.where()}: [{cfg.id}] has no baseurl, mirrorlist or metalink.")
    if cfg.gpgcheck and not cfg.gpgkeys:
        problems.append(
            f"{section.where('gpgcheck')}: [{cfg.id}] has gpgcheck=1 but no gpgkey, so no package could be trusted."
        )
    plain = [k for k in cfg.gpgkeys if k.startswith("http://")]
    if plain and (cfg.gpgcheck or cfg.repo_gpgcheck):
        warnings.append(
            f"{section.where('gpgkey')}: [{cfg.id}] fetches its gpgkey over plain http ({plain[0]}): whoever "
            "controls the network path could swap the key. Use https:// or a file:// key."
        )
    if cfg.repo_gpgcheck and not cfg.gpgkeys:
        problems.append(f"{section.where('repo_gpgcheck')}: [{cfg.id}] has repo_gpgcheck=1 but no gpgkey.")
    return cfg


class _Options:
    """Typed, variable-substituted option values of one section, with [main] as the fallback."""

    def __init__(self, section: Section, defaults: dict[str, str], variables: Variables, problems: list[str]):
        self.section, self.defaults, self.variables, self.problems = section, defaults, variables, problems

    def alias(self, *names: str) -> str:
        """Which spelling of one option applies: the section's own before [main]'s, in the order given."""
        for source in (self.section.options, self.defaults):
            for name in names:
                if name in source:
                    return name
        return names[0]

    def raw(self, key: str) -> str | None:
        value = self.section.options.get(key)
        if value is None:
            text = self.defaults.get(key)
            return None if text is None else text
        text, unknown = self.variables.substitute(value.text)
        if unknown and key in _URL_OPTIONS:
            known = ", ".join(f"${k}" for k in sorted(self.variables.values)) or "none"
            self.problems.append(
                f"{self.section.where(key)}: [{self.section.name}] {key} uses "
                + ", ".join(f"${u}" for u in dict.fromkeys(unknown))
                + f", which is not defined (defined: {known})."
            )
        return text

    def _bad(self, key: str, text: str, expected: str) -> None:
        self.problems.append(f"{self.section.where(key)}: [{self.section.name}] {key}={text!r} is not {expected}.")

    def text(self, key: str, *, keep_empty: bool = False) -> str | None:
        text = self.raw(key)
        if text is None:
            return None
        text = text.strip()
        return text if text or keep_empty else None

    def flag(self, key: str, default: bool | None) -> bool | None:
        text = self.raw(key)
        if text is None:
            return default
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self._bad(key, text, "a boolean (1/0, yes/no, true/false, on/off)")
        return default

    def integer(self, key: str, default: int, low: int, high: int | None) -> int:
        text = self.raw(key)
        if text is None:
            return default
        try:
            value = int(text.strip())
        except ValueError:
            self._bad(key, text, "an integer")
            return default
        if value < low or (high is not None and value > high):
            self._bad(key, text, f"between {low} and {high}" if high is not None else f"at least {low}")
            return default
        return value

    def duration(self, key: str, default: float, *, fractional: bool = False) -> int:
        text = self.raw(key)
        if text is None:
            return int(default)
        lowered = text.strip().lower()
        if lowered in ("never", "-1"):
            return -1
        m = _SECONDS.match(lowered)
        if m is None:
            self._bad(key, text, "a duration (seconds, or a number with s, m, h or d, or never)")
            return int(default)
        factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        value = float(m.group(1)) * factor
        return max(1, round(value)) if fractional and value > 0 else int(value)

    def size(self, key: str, default: int) -> int:
        text = self.raw(key)
        if text is None:
            return default
        m = _SIZE.match(text.strip())
        if m is None:
            self._bad(key, text, "a size (bytes, or a number with k, M or G)")
            return default
        return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()])

    def items(self, key: str) -> tuple[str, ...]:
        text = self.raw(key)
        if not text:
            return ()
        return tuple(item for item in re.split(r"[\s,]+", text) if item)


def _proxy(value: str | None) -> str | None:
    if value is None:
        return None
    return "" if value.lower() in ("", "_none_") else value


def _is_default_main(key: str, value: str | None) -> bool:
    lowered = (value or "").strip().lower()
    return (
        (key == "obsoletes" and lowered in _TRUE)
        or (key == "install_weak_deps" and lowered in _TRUE)
        or (key == "gpgkey_dns_verification" and lowered in _FALSE)
    )


def _safe(repo_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in repo_id)
