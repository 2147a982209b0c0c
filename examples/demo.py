"""The end-to-end demo behind `make demo`: build ExampleOS, compose its base, deploy it into a sysroot in
build/demo/sysroot, then let reconcile plan and apply the packages of examples/origin.toml.

Every reconcile command is shown with its output, so the demo doubles as a tour.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exampleos

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "demo"
RECONCILE = str(Path(sys.executable).parent / "reconcile")


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def show(argv: list[str], expect: tuple[int, ...] = (0,), cwd: Path | None = None) -> str:
    shown = [a.replace(str(ROOT) + "/", "") for a in argv]
    print("$ " + shlex.join(["reconcile", *shown[1:]] if argv[0] == RECONCILE else shown), flush=True)
    proc = subprocess.run(argv, text=True, capture_output=True, env=exampleos.sysroot_env(), check=False, cwd=cwd)
    print(proc.stdout, end="", flush=True)
    if proc.returncode not in expect:
        print(proc.stderr, file=sys.stderr)
        raise SystemExit(f"demo: {shlex.join(shown)} exited {proc.returncode}")
    return proc.stdout


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("demo: run as root (it mounts a tmpfs on the demo sysroot's /boot)")
    sysroot = BUILD / "sysroot"
    exampleos.teardown_sysroot(sysroot)
    shutil.rmtree(BUILD, ignore_errors=True)
    BUILD.mkdir(parents=True)

    banner("Building the ExampleOS RPMs with rpmbuild, signing them, publishing them with createrepo_c")
    rpms = exampleos.build_rpms(sorted(exampleos.SPECS.glob("*.spec")), BUILD / "rpmbuild")
    key = exampleos.make_signing_key(BUILD / "keys", "exampleos", "ExampleOS release key")
    try:
        exampleos.sign_rpms(key, rpms)
    finally:
        exampleos.stop_agent(key)
    repo = exampleos.make_repo(rpms, BUILD / "rpm-repo")
    reposdir = BUILD / "yum.repos.d"
    # As a distribution's repo file: packages must be signed by the release key.
    exampleos.write_repo_file(reposdir, "exampleos", f"file://{repo}", gpgcheck=1, gpgkey=f"file://{key.public}")
    print("\n".join(f"  {r.name}" for r in rpms))
    print(f"  signed with {key.fingerprint} (ExampleOS release key), listed as the repo's gpgkey")

    banner("Composing the base commit from RPMs (reconcile compose)")
    compose_repo = BUILD / "compose-repo"
    show(
        [
            RECONCILE,
            "compose",
            "--repo",
            str(compose_repo),
            "--ref",
            exampleos.BASE_REF,
            "--reposdir",
            str(reposdir),
            "--version",
            "1.0",
            *exampleos.BASE_PACKAGES,
        ]
    )

    banner("Deploying the base into an OSTree sysroot in build/demo/sysroot")
    exampleos.init_sysroot(sysroot, compose_repo, exampleos.BASE_REF)
    show(["ostree", "admin", f"--sysroot={sysroot}", "status"])

    origin = BUILD / "origin.toml"
    shutil.copy(ROOT / "examples" / "origin.toml", origin)
    common = ["--sysroot", str(sysroot), "--origin", str(origin), "--reposdir", str(reposdir)]
    banner("The desired state: build/demo/origin.toml")
    print(origin.read_text(), end="")

    banner("What would change (reconcile plan)")
    show([RECONCILE, "plan", *common, "--detailed-exitcode"], expect=(2,))

    banner("Making it so (reconcile apply)")
    show([RECONCILE, "apply", *common, "--yes"])

    banner("The deployments now (reconcile status)")
    show([RECONCILE, "status", "--sysroot", str(sysroot)])

    banner("Applying again: nothing to do, no new deployment")
    show([RECONCILE, "apply", *common, "--yes", "--detailed-exitcode"])

    deployed = sysroot / "ostree" / "deploy" / exampleos.OSNAME / "deploy"
    newest = max((d for d in deployed.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime)
    banner(f"Inside the new deployment ({newest.relative_to(ROOT)})")
    show(["ls", "-l", "usr/bin/hello", "usr/bin/frob", "usr/etc/hello.conf"], cwd=newest)
    show(["cat", "usr/lib/tmpfiles.d/reconcile-pkg-frob.conf", "usr/share/hello/post-install"], cwd=newest)
    show(["rpm", "--dbpath", f"{newest}/usr/share/rpm", "-qa", "--qf", "%{NEVRA}\\n"], cwd=newest)
    show(["ostree", "admin", f"--sysroot={sysroot}", "status"])
    print("\nThe sysroot stays in build/demo/sysroot (its /boot is a tmpfs; `make clean` unmounts it).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
