"""The scripts' sandbox, measured from inside (docs/sandbox.md): one real %post tries to reach a server on the
host, to write to a path on the host and to read the host's /etc, and records what it sees of the rest (/var,
/run, /tmp, /boot, /sys, /dev, the rpmdb, its namespaces and environment) into the tree; the test then reads
that record from the deployed commit. One apply for everything: each costs seconds."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from conftest import Host, needs_sandbox
from servers import serve
from support import Dir, Package, ostree, rpm_query

from reconcile.apply.sandbox import SANDBOX_BIN, SCRIPT_PATH

pytestmark = needs_sandbox
NAME = "sandbox-walls"
RECORD = "/usr/share/walls"
NAMESPACES = ("net", "pid", "ipc", "uts", "mnt", "cgroup", "user", "time")
DIRS = ("var", "tmp", "boot", "sys", "dev")
THROWAWAY = ("var", "run", "tmp", "boot")  # tmpfs in the sandbox: what a script writes there is not kept
# What bwrap's --dev makes: no disk, no console, nothing of the host's /dev beyond these.
BWRAP_DEV = {"core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty"}
BWRAP_DEV |= {"urandom", "zero"}


def walls_package(port: int, outside: Path, sysroot: Path) -> Package:
    """The probe. The tree's shell is busybox (example-shell); rpmbuild expands %, so the script has none.
    wget has no -T: busybox 1.35's wget crashes with it (exit 139), which would pass for a refused connection."""
    listings = "\n".join(f"ls -A /{d} > $W/ls-{d}" for d in DIRS)
    throwaway = "\n".join(f"echo from-post > /{d}/walls-from-post" for d in THROWAWAY)
    namespaces = " ".join(NAMESPACES)
    script = f"""W={RECORD}
{listings}
busybox find /run > $W/find-run
ls -A /etc > $W/ls-etc
busybox wget -q -O $W/net-body http://127.0.0.1:{port}/probe 2> $W/net-error
echo $? > $W/net-exit
cat /proc/net/dev > $W/net-dev
mkdir -p '{outside}' && echo from-post > '{outside}/from-post'
echo $? > $W/outside-exit
mkdir -p '{sysroot}' && echo from-post > '{sysroot}/from-post'
echo $? > $W/sysroot-exit
cat /etc/hostname > $W/etc-hostname
echo from-post > /etc/walls-from-post
{throwaway}
ls -A /usr/share/rpm > $W/ls-rpmdb
(cd /usr/share/rpm && busybox sha256sum rpmdb.sqlite*) > $W/rpmdb-sha256
cat /usr/share/rpm/rpmdb.sqlite* | grep -c {NAME} > $W/rpmdb-mentions
busybox id -u > $W/uid
busybox id -g > $W/gid
grep -E '^(NoNewPrivs|CapEff):' /proc/self/status > $W/status
busybox hostname > $W/hostname
for ns in {namespaces}; do echo "$ns $(busybox readlink /proc/self/ns/$ns)"; done > $W/namespaces
busybox env > $W/env
busybox mknod /tmp/walls-disk b 8 0 2> /dev/null; echo $? > $W/mknod-exit
busybox mount -t tmpfs walls /tmp 2> /dev/null; echo $? > $W/mount-exit
cat /proc/sys/kernel/printk_ratelimit_burst > /proc/sys/kernel/printk_ratelimit_burst 2> /dev/null
echo $? > $W/sysctl-exit
echo from-post > /walls-toplevel
echo from-post > /sys/walls-from-post
exit 0"""
    return Package(NAME, files=(Dir(RECORD),), scripts={"post": script})


def commit_paths(host: Host, commit: str) -> set[str]:
    """Every path in a commit, from libostree's own listing (`ostree ls -R`)."""
    listing = ostree(f"--repo={host.sysroot / 'ostree/repo'}", "ls", "-R", commit, "/")
    return {line.split(None, 4)[4].split(" -> ")[0] for line in listing.splitlines() if line.strip()}


def test_a_post_cannot_reach_the_network_write_outside_the_tree_or_see_the_host_etc(host: Host, tmp_path: Path) -> None:
    outside, served = tmp_path / "outside", tmp_path / "served"
    outside.mkdir()
    served.mkdir()
    (served / "probe").write_text("reached\n")
    with serve(served) as server:
        host.publish([walls_package(server.port, outside, host.sysroot)])
        host.write_origin([NAME])
        applied = host.apply_ok()
        requests = list(server.faults.log)
    dep = host.default()
    tree = host.deployment_path(dep)
    record = tree / RECORD.lstrip("/")

    def seen(name: str) -> str:
        return (record / name).read_text()

    # The network: a server listening on the host's loopback got nothing; the script has a loopback of its own.
    refused = "wget: can't connect to remote host (127.0.0.1): Connection refused\n"
    assert (seen("net-exit"), seen("net-error")) == ("1\n", refused), "refused, not crashed or timed out"
    assert "reached" not in ((record / "net-body").read_text() if (record / "net-body").exists() else "")
    assert requests == [], "the server on the host's 127.0.0.1 saw a request from the %post"
    assert [line.split(":")[0].strip() for line in seen("net-dev").splitlines()[2:]] == ["lo"]

    # Writing outside the new tree: the writes succeeded in the sandbox, and none reached the host.
    assert (seen("outside-exit").strip(), seen("sysroot-exit").strip()) == ("0", "0")
    assert list(outside.iterdir()) == [], "the %post wrote into a host directory"
    assert not (host.sysroot / "from-post").exists(), "the %post wrote into the host's sysroot"
    paths = commit_paths(host, dep["checksum"])
    assert "/usr/etc/walls-from-post" in paths, "a write to /etc lands in the tree's /usr/etc"
    assert not {f"/{d}/walls-from-post" for d in THROWAWAY} & paths, "/var, /run, /tmp and /boot are thrown away"
    assert not {"/walls-toplevel", "/sys/walls-from-post"} & paths, "only /usr and /etc are kept, as rpm-ostree"
    assert "wrote /walls-toplevel outside /usr and /etc" in applied.stderr, applied.stderr

    # Privileges: rpm-ostree's capabilities only, so no device nodes, no mounts, no kernel settings.
    assert "CapEff:\t00000000800401fb" in seen("status"), "chown dac_override fowner fsetid kill setgid setuid"
    assert (seen("mknod-exit"), seen("mount-exit"), seen("sysctl-exit")) == ("1\n", "1\n", "1\n")

    # The host's /etc: the script's /etc is the new tree's /usr/etc, nothing of the host's.
    tree_etc = {p.name for p in (tree / "usr/etc").iterdir()} - {"walls-from-post"}
    script_etc = set(seen("ls-etc").split())
    host_only = set(os.listdir("/etc")) - tree_etc
    assert script_etc == tree_etc
    assert host_only and not host_only & script_etc, "the %post saw files of the host's /etc"
    assert seen("etc-hostname") == "example\n", "the tree's /etc/hostname, not the host's"
    written = tree / "usr/etc/walls-from-post"
    assert written.is_file() and written.read_text() == "from-post\n", "a write to /etc lands in /usr/etc"

    # What else a script sees (the rows of docs/sandbox.md).
    assert all(seen(f"ls-{d}") == "" for d in ("var", "tmp", "boot", "sys")), "each starts empty"
    assert set(seen("ls-dev").split()) <= BWRAP_DEV
    run = seen("find-run").split()
    assert "/run/ostree-booted" not in run and {p.split("/")[2] for p in run if p != "/run"} == {"reconcile"}
    assert {f"{SANDBOX_BIN}/useradd", f"{SANDBOX_BIN}/groupadd", SCRIPT_PATH} <= set(run)
    rpmdb = tree / "usr/share/rpm"
    assert seen("ls-rpmdb").split() == sorted(p.name for p in rpmdb.iterdir())
    carried = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in rpmdb.glob("rpmdb.sqlite*")}
    assert {name: digest for digest, name in map(str.split, seen("rpmdb-sha256").splitlines())} == carried, (
        "the script sees the rpmdb the commit carries (the base's database and the log of the layered packages)"
    )
    assert int(seen("rpmdb-mentions")) > 0 and rpm_query(tree, "-q", NAME).startswith(f"{NAME}-1.0-1")
    assert (seen("uid"), seen("gid")) == ("0\n", "0\n")
    assert "NoNewPrivs:\t1" in seen("status")
    inside = dict(line.split(" ", 1) for line in seen("namespaces").splitlines())
    host_ns = {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in NAMESPACES}
    assert [ns for ns in NAMESPACES if inside[ns] != host_ns[ns]] == ["net", "pid", "ipc", "uts", "mnt", "cgroup"]
    env = dict(line.split("=", 1) for line in seen("env").splitlines())
    for shells_own in ("PWD", "SHLVL"):
        env.pop(shells_own, None)
    assert env == {
        "PATH": f"{SANDBOX_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "SYSTEMD_OFFLINE": "1",
        "RPM_PACKAGE_NAME": NAME,
    }
