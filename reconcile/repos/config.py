"""yum/dnf `.repo` files: which rpm-md repos to use and where they live."""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from reconcile.errors import ReconcileError

_TRUE = {"1", "yes", "true", "on", "True"}


@dataclass(frozen=True)
class RepoConfig:
    id: str
    name: str
    baseurls: tuple[str, ...]
    source: Path


def load_repo_configs(reposdir: Path, variables: dict[str, str]) -> list[RepoConfig]:
    """Every enabled repo of every `*.repo` file in `reposdir`, in file then section order."""
    if not reposdir.is_dir():
        raise ReconcileError(
            f"The repos directory {reposdir} does not exist or is not a directory.",
            hint="Pass --reposdir with a directory holding yum .repo files.",
        )
    repos: dict[str, RepoConfig] = {}
    for path in sorted(reposdir.glob("*.repo")):
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        try:
            parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
        except (configparser.Error, UnicodeDecodeError) as e:
            raise ReconcileError(f"Cannot read the repo file {path}: {e}".replace("\n", " ")) from None
        for section in parser.sections():
            cfg = parser[section]
            if cfg.get("enabled", "1").strip() not in _TRUE:
                continue
            urls = tuple(_expand(u, variables) for u in cfg.get("baseurl", "").split() if u)
            if not urls:
                hint = "metalink and mirrorlist are not supported" if ("metalink" in cfg or "mirrorlist" in cfg) else ""
                raise ReconcileError(
                    f"The repo [{section}] in {path} has no baseurl" + (f" ({hint})." if hint else "."),
                )
            if section in repos:
                raise ReconcileError(
                    f"The repo id [{section}] is defined twice: in {repos[section].source} and {path}."
                )
            repos[section] = RepoConfig(section, cfg.get("name", section), urls, path)
    return list(repos.values())


def _expand(url: str, variables: dict[str, str]) -> str:
    for key, value in variables.items():
        url = url.replace(f"${{{key}}}", value).replace(f"${key}", value)
    return url
