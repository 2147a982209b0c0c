"""SELinux: layered files carry the labels the base's policy gives (Debian's selinux-policy-default inside
a test base), a changed policy relabels package-cache commits without a download, unlabellable is an error."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import ComposedBase, Host, base_checksum, compose_base, needs_sandbox
from support import Dir, File, Hardlink, Package, RpmFactory, Symlink, exampleos, ostree

HOST_POLICY = Path("/etc/selinux/default")


pytestmark = [
    pytest.mark.skipif(
        not (HOST_POLICY / "policy").is_dir() or not Path("/usr/sbin/selabel_lookup").exists(),
        reason="needs Debian's selinux-policy-default and selinux-utils (make test installs them)",
    ),
    needs_sandbox,  # libostree runs semodule in the new deployment through bwrap
]

LABELLED = Package(
    "labelled",
    files=(
        File("/usr/bin/labelled-tool", "#!/bin/sh\n", mode=0o755),
        File("/usr/sbin/labelled-daemon", "#!/bin/sh\n", mode=0o755),
        Dir("/usr/share/labelled"),
        File("/usr/share/labelled/data", "x\n"),
        Symlink("/usr/share/labelled/link", "data"),
        File("/usr/lib64/liblabelled.so.1", "lib\n", mode=0o755),
        File("/etc/labelled.conf", "conf\n", config=True),
        File("/var/lib/labelled/state", "state\n"),
        File("/opt/labelled/bin/run", "#!/bin/sh\n", mode=0o755),
    ),
)
NOLABEL = Package("nolabel", files=(File("/usr/share/nolabel/file", "x"),))


def policy_spec(version: str, extra_rules: str) -> str:
    """ExampleOS's policy package: Debian's compiled policy, plus a semodule stub (ostree calls semodule at
    deploy, and the example distribution has no libsemanage)."""
    rules = ""
    if extra_rules:
        fc = "%{buildroot}/etc/selinux/default/contexts/files/file_contexts"
        rules = f"printf '{extra_rules}' >> {fc}\nrm -f {fc}.bin\n"
    return f"""Name: example-selinux-policy
Version: {version}
Release: 1
Summary: SELinux policy for ExampleOS
License: GPL-2.0-or-later
BuildArch: noarch
AutoReqProv: no
%global debug_package %{{nil}}
%global __os_install_post %{{nil}}
%description
The reference policy, as Debian builds it.
%install
mkdir -p %{{buildroot}}/etc/selinux %{{buildroot}}/usr/sbin
cp -a {HOST_POLICY} %{{buildroot}}/etc/selinux/
printf 'SELINUX=enforcing\\nSELINUXTYPE=default\\n' > %{{buildroot}}/etc/selinux/config
{rules}printf '#!/bin/sh\\nexit 0\\n' > %{{buildroot}}/usr/sbin/semodule
chmod 0755 %{{buildroot}}/usr/sbin/semodule
%files
/etc/selinux
/usr/sbin/semodule
"""


@pytest.fixture(scope="module")
def selinux_bases(session_dir: Path, rpms: RpmFactory, example_rpms: list[Path]) -> dict[str, ComposedBase]:
    """example/selinux, and example/selinux2 whose file contexts label /usr/share/labelled as etc_t and
    give /usr/share/nolabel no label at all."""
    bases = {}
    for name, version, rules in (
        ("selinux", "1.0", ""),
        (
            "selinux2",
            "2.0",
            "/usr/share/labelled(/.*)?\\tsystem_u:object_r:etc_t:s0\\n/usr/share/nolabel(/.*)?\\t<<none>>\\n",
        ),
    ):
        policy = rpms.build_spec("example-selinux-policy", policy_spec(version, rules))
        repo = exampleos.make_repo([*example_rpms, policy], session_dir / f"{name}-repo")
        reposdir = session_dir / f"{name}.repos.d"
        exampleos.write_repo_file(reposdir, "exampleos", f"file://{repo}")
        packages = [*exampleos.BASE_PACKAGES, "example-selinux-policy"]
        bases[name] = compose_base(session_dir / f"compose-{name}", f"example/{name}", reposdir, packages)
    return bases


@pytest.fixture
def selinux_host(host: Host, selinux_bases: dict[str, ComposedBase]) -> Host:
    for base in selinux_bases.values():
        exampleos.pull_base(host.sysroot, base.repo, base.ref)
    return host


def file_contexts(tree: Path) -> Path:
    return tree / "usr/etc/selinux/default/contexts/files/file_contexts"


def libselinux_label(contexts: Path, path: str, mode: int) -> str:
    out = subprocess.run(
        ["selabel_lookup", "-b", "file", "-r", "-k", path, "-t", str(stat.S_IFMT(mode)), "-f", str(contexts)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split("Default context:")[1].strip()


def label_of(path: Path) -> str:
    return os.getxattr(path, "security.selinux", follow_symlinks=False).rstrip(b"\0").decode()


def test_layered_files_get_the_policy_labels(selinux_host: Host) -> None:
    host = selinux_host
    host.publish([LABELLED])
    host.write_origin(["labelled", "frob"], base="example/selinux")
    host.apply_ok()
    tree = host.deployment_path(host.default())
    contexts = file_contexts(tree)
    sample = [
        "usr/bin/labelled-tool",
        "usr/sbin/labelled-daemon",
        "usr/share/labelled",
        "usr/share/labelled/data",
        "usr/share/labelled/link",
        "usr/lib64/liblabelled.so.1",
        "usr/etc/labelled.conf",
        "usr/lib/opt/labelled/bin/run",
        "usr/share/factory/var/lib/labelled/state",
        "usr/lib/tmpfiles.d/reconcile-pkg-labelled.conf",
        "usr/bin/frob",
        "usr/lib64/libfrob.so.2",
        "usr/share/rpm/rpmdb.sqlite",
        "etc/labelled.conf",
    ]
    seen = set()
    for rel in sample:
        mode = os.lstat(tree / rel).st_mode
        # /etc is ostree's merged copy of /usr/etc: libselinux labels both as /etc.
        want = libselinux_label(contexts, "/" + rel, mode)
        assert label_of(tree / rel) == want, rel
        seen.add(want.split(":")[2])
    assert {"bin_t", "lib_t", "etc_t", "usr_t"} <= seen, "the sample covers several types"
    assert label_of(tree / "usr") == libselinux_label(contexts, "/usr", os.lstat(tree / "usr").st_mode)


def test_a_new_policy_relabels_package_commits_not_the_base(selinux_host: Host, selinux_bases: dict) -> None:
    host = selinux_host
    repo = host.publish([LABELLED])
    host.write_origin(["labelled"], base="example/selinux")
    host.apply_ok()
    ref = "reconcile/pkg/labelled/1.0-1.noarch"
    before = ostree(f"--repo={host.sysroot / 'ostree/repo'}", "rev-parse", ref).strip()
    for rpm in repo.glob("labelled-*.rpm"):
        rpm.unlink()  # relabelling must not need the RPM again
    host.write_origin(["labelled"], base="example/selinux2")
    host.apply_ok()
    dep = host.default()
    assert base_checksum(dep) == selinux_bases["selinux2"].commit, "the base is deployed as composed"
    after = ostree(f"--repo={host.sysroot / 'ostree/repo'}", "rev-parse", ref).strip()
    assert after != before, "the package commit was rewritten with the new policy's labels"
    policy = ostree(f"--repo={host.sysroot / 'ostree/repo'}", "show", "--print-metadata-key=reconcile.sepolicy", after)
    assert policy.strip().strip("'") != ""
    tree = host.deployment_path(dep)
    assert label_of(tree / "usr/share/labelled/data") == "system_u:object_r:etc_t:s0"
    assert label_of(tree / "usr/bin/labelled-tool") == "system_u:object_r:bin_t:s0"


def test_a_path_the_policy_cannot_label_is_an_error(selinux_host: Host) -> None:
    host = selinux_host
    host.publish([NOLABEL])
    host.write_origin(["nolabel"], base="example/selinux2")
    before = host.state()
    result = host.run("apply")
    assert result.code == 1, result.stderr
    assert "no label for /usr/share/nolabel" in result.stderr
    assert host.state() == before


SCRIPTED = Package(
    "labelled-scripted",
    files=(File("/usr/share/labelled-scripted/seed", "x\n"),),
    scripts={"post": "mkdir -p /usr/libexec/made-by-script && echo x > /usr/libexec/made-by-script/tool"},
)


def test_files_scripts_make_are_labelled_too(selinux_host: Host) -> None:
    host = selinux_host
    host.publish([SCRIPTED])
    host.write_origin(["labelled-scripted"], base="example/selinux")
    host.apply_ok()
    tree = host.deployment_path(host.default())
    contexts = file_contexts(tree)
    for rel in ("usr/libexec/made-by-script", "usr/libexec/made-by-script/tool"):
        assert label_of(tree / rel) == libselinux_label(contexts, "/" + rel, os.lstat(tree / rel).st_mode), rel


# -- policy modules --------------------------------------------------------------------------------------------
SEMANAGE_TOOLS = (
    "/usr/sbin/semodule",
    "/usr/sbin/setfiles",
    "/usr/sbin/sefcontext_compile",
    "/usr/libexec/selinux/hll/pp",
)
MODULE_TE = """module mymod 1.0;
require {
\tattribute file_type;
}
type mymod_data_t;
typeattribute mymod_data_t file_type;
"""
MODULE_FC = "/usr/share/mymod(/.*)?\tsystem_u:object_r:mymod_data_t:s0\n"


def shared_libraries(programs: tuple[str, ...]) -> list[str]:
    libs: set[str] = set()
    for program in programs:
        out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
        libs |= {word for line in out.splitlines() for word in line.split() if word.startswith("/")}
    return sorted(libs)


def store_policy_spec() -> str:
    """A policy with its module store and the tools to build it, as a Fedora base has them: Debian's semodule,
    setfiles, sefcontext_compile and the .pp compiler with their libraries, the store under /etc/selinux
    (`store-root`, as Fedora and rpm-ostree keep it), Debian's compiled policy beside it."""
    installs = []
    for path in [*SEMANAGE_TOOLS, *shared_libraries(SEMANAGE_TOOLS)]:
        if path.startswith("/lib64/"):
            dest = "/usr/lib64/" + os.path.basename(path)
        elif path.startswith("/lib/"):
            dest = "/usr" + path
        else:
            dest = path
        installs.append(f"install -D -m 0755 {os.path.realpath(path)} %{{buildroot}}{dest}")
        installs.append(f"echo {dest} >> files.list")
    return f"""Name: example-selinux-policy
Version: 3.0
Release: 1
Summary: SELinux policy for ExampleOS, with its module store
License: GPL-2.0-or-later
AutoReqProv: no
%global debug_package %{{nil}}
%global __os_install_post %{{nil}}
%description
The reference policy, as Debian builds it, with its module store and semodule.
%install
rm -f files.list
mkdir -p %{{buildroot}}/etc/selinux
cp -a {HOST_POLICY} %{{buildroot}}/etc/selinux/
cp -a /var/lib/selinux/default/active %{{buildroot}}/etc/selinux/default/
printf 'SELINUX=enforcing\\nSELINUXTYPE=default\\n' > %{{buildroot}}/etc/selinux/config
printf 'module-store = direct\\nstore-root = /etc/selinux\\n' > %{{buildroot}}/etc/selinux/semanage.conf
echo 'expand-check = 0' >> %{{buildroot}}/etc/selinux/semanage.conf
{chr(10).join(installs)}
%files -f files.list
/etc/selinux
"""


def policy_module() -> bytes:
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"mymod-{os.getpid()}"
    work.mkdir(exist_ok=True)
    (work / "mymod.te").write_text(MODULE_TE)
    (work / "mymod.fc").write_text(MODULE_FC)
    subprocess.run(
        ["checkmodule", "-M", "-m", "-o", "mymod.mod", "mymod.te"], cwd=work, check=True, capture_output=True
    )
    subprocess.run(["semodule_package", "-o", "mymod.pp", "-m", "mymod.mod", "-f", "mymod.fc"], cwd=work, check=True)
    return (work / "mymod.pp").read_bytes()


needs_policy_tools = pytest.mark.skipif(
    not all(Path(p).exists() for p in (*SEMANAGE_TOOLS, "/usr/bin/checkmodule", "/usr/bin/semodule_package"))
    or not os.access("/var/lib/selinux/default/active", os.R_OK | os.X_OK),
    reason="needs policycoreutils, checkpolicy and semodule-utils (make test installs them)",
)


@needs_policy_tools
def test_a_package_that_loads_a_policy_module_is_labelled_by_the_new_policy(
    selinux_host: Host, session_dir: Path, rpms: RpmFactory, example_rpms: list[Path]
) -> None:
    host = selinux_host
    policy = rpms.build_spec("example-selinux-policy", store_policy_spec(), arch="native")
    repo = exampleos.make_repo([*example_rpms, policy], session_dir / "selinux-store-repo")
    reposdir = session_dir / "selinux-store.repos.d"
    exampleos.write_repo_file(reposdir, "exampleos", f"file://{repo}")
    packages = [*exampleos.BASE_PACKAGES, "example-selinux-policy"]
    base = compose_base(session_dir / "compose-selinux-store", "example/selinux-store", reposdir, packages)
    exampleos.pull_base(host.sysroot, base.repo, base.ref)

    module = Package(
        "mymod-selinux",
        files=(
            File("/usr/share/selinux/packages/mymod.pp", policy_module()),
            Dir("/usr/share/mymod"),
            File("/usr/share/mymod/data", "x\n"),
            File("/usr/share/mymod-doc/readme", "r\n"),
        ),
        scripts={"post": "semodule -n -X 200 -i /usr/share/selinux/packages/mymod.pp"},
    )
    host.publish([module])
    host.write_origin(["mymod-selinux"], base=base.ref)
    host.apply_ok()
    dep = host.default()
    tree = host.deployment_path(dep)
    assert "mymod_data_t" in file_contexts(tree).read_text(), "the new tree's policy has the module"
    assert label_of(tree / "usr/share/mymod/data") == "system_u:object_r:mymod_data_t:s0"
    assert label_of(tree / "usr/share/mymod") == "system_u:object_r:mymod_data_t:s0"
    assert label_of(tree / "usr/share/mymod-doc/readme") == "system_u:object_r:usr_t:s0", "the rest as before"

    sysrepo = f"--repo={host.sysroot / 'ostree/repo'}"
    pkg = ostree(sysrepo, "rev-parse", "reconcile/pkg/mymod-selinux/1.0-1.noarch").strip()
    recorded = ostree(sysrepo, "show", "--print-metadata-key=reconcile.sepolicy", pkg).strip().strip("'")
    base_policy = ostree(sysrepo, "ls", "-d", "-C", base.commit, "/usr/etc/selinux").split()[4]
    new_policy = ostree(sysrepo, "ls", "-d", "-C", dep["checksum"], "/usr/etc/selinux").split()[4]
    assert recorded == new_policy != base_policy, "the package commit names the policy that labelled it"


def test_hard_links_the_policy_labels_differently_are_separate_objects(selinux_host: Host) -> None:
    """One inode in the package, two labels in the policy (bin_t and usr_t): each path gets its own object."""
    host = selinux_host
    linked = Package(
        "linked",
        files=(File("/usr/bin/linked", "#!/bin/sh\n", mode=0o755), Hardlink("/usr/share/linked", "/usr/bin/linked")),
    )
    host.publish([linked])
    host.write_origin(["linked"], base="example/selinux")
    host.apply_ok()
    tree = host.deployment_path(host.default())
    contexts = file_contexts(tree)
    for rel in ("usr/bin/linked", "usr/share/linked"):
        assert label_of(tree / rel) == libselinux_label(contexts, "/" + rel, os.lstat(tree / rel).st_mode), rel
    assert label_of(tree / "usr/bin/linked") != label_of(tree / "usr/share/linked")
    assert (tree / "usr/share/linked").read_text() == "#!/bin/sh\n"
