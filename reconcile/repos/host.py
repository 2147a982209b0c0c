"""The repos of a host, as dnf on that host would see them: its `/etc/yum.repos.d` (or `reposdir=` of
`dnf.conf`, or `--reposdir`), `[main]` of `/etc/dnf/dnf.conf`, and the variables of `/etc/dnf/vars`."""

from __future__ import annotations

from pathlib import Path

from reconcile.report import Reporter
from reconcile.repos.config import FetchMode, load_repo_configs, read_main
from reconcile.repos.source import RepoSet
from reconcile.repos.variables import Variables


def open_repos(
    etc: Path,
    reposdir: Path | None,
    cache_root: Path,
    reporter: Reporter,
    *,
    arch: str,
    releasever: str | None,
    releasever_override: str | None = None,
    mode: FetchMode,
    localpkg_gpgcheck: bool | None = None,
    root: Path | None = None,
) -> RepoSet:
    """`etc` is the deployment's /etc; `root` the tree its `file://` key paths are relative to."""
    variables = Variables.for_host(arch, releasever, etc, releasever_override)
    main = read_main(etc / "dnf" / "dnf.conf", variables)
    if reposdir is not None:
        dirs = [reposdir]
    elif main.reposdirs:
        dirs = [root / d.lstrip("/") if root is not None else Path(d) for d in main.reposdirs]
    else:
        dirs = [etc / "yum.repos.d"]
    configs = load_repo_configs(dirs, variables, main)
    gpgcheck_local = localpkg_gpgcheck if localpkg_gpgcheck is not None else bool(main.localpkg_gpgcheck)
    repos = RepoSet(configs, cache_root, reporter, mode, root, localpkg_gpgcheck=gpgcheck_local)
    repos.releasever = variables.values.get("releasever")
    return repos
