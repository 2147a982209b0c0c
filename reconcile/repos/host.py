"""The repos of a host, as dnf on that host would see them: its `/etc/yum.repos.d` (or `reposdir=` of
`dnf.conf`, or `--reposdir`), `[main]` of `/etc/dnf/dnf.conf`, and the variables of `/etc/dnf/vars`."""

from __future__ import annotations

from pathlib import Path

from reconcile.context import Context
from reconcile.ostree import Deployment
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


def deployment_etc(ctx: Context, dep: Deployment) -> tuple[Path, Path | None]:
    """The deployment's /etc and the root of its tree (None for the running host, whose paths are real)."""
    if str(ctx.sysroot.path) == "/":
        return Path("/etc"), None
    root = ctx.sysroot.deployment_dir(dep)
    return root / "etc", root


def open_deployment_repos(
    ctx: Context,
    dep: Deployment,
    reposdir: Path | None,
    cache_root: Path,
    version: str | None,
    local_check: bool | None,
    *,
    override: str | None = None,
) -> RepoSet:
    """The repos a deployment's /etc configures. `version`: the detected $releasever; `override`: one that wins
    over the vars files too."""
    etc, root = deployment_etc(ctx, dep)
    return open_repos(
        etc,
        reposdir,
        cache_root,
        ctx.reporter,
        arch=ctx.arch,
        releasever=version,
        releasever_override=override,
        mode=ctx.fetch,
        localpkg_gpgcheck=local_check,
        root=root,
    )
