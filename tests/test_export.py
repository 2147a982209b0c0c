"""`reconcile export --format containerfile`: real plans of real hosts rendered as Containerfiles, held against
golden files (UPDATE_GOLDEN=1 rewrites them), parsed instruction by instruction, each RUN checked by `sh -n`."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import Host
from support import RECONCILE, File, Package, Result, Symlink, exampleos, reconcile
from test_container_base import SIGNED, image_host, write_image_origin
from test_kargs import kargs_table
from test_replace import LIBS_3

from reconcile.export import KARGS_FILE, LOCAL_MOUNT, pins_digest
from reconcile.planner.model import Plan

GOLDEN = Path(__file__).parent / "golden" / "containerfile"
IMAGE = "quay.io/example/exampleos-bootc:1"
ARCH = os.uname().machine
RELEASE_2 = Package("example-release", version="2", requires=("example-filesystem",))
MYTOOL = Package("mytool", requires=("/bin/sh",))
LIBS_REBUILT = dataclasses.replace(  # the base's own NEVRA, another build
    LIBS_3,
    version="2.1",
    files=(
        File("/usr/lib64/libexample.so.1.2.1", "rebuilt\n", mode=0o755),
        Symlink("/usr/lib64/libexample.so.1", "libexample.so.1.2.1"),
    ),
)
RELEASE_OLD = Package("example-release", version="0.9", requires=("example-filesystem",))
INSTRUCTIONS = {"FROM", "RUN", "COPY"}  # all the renderer writes


def export(host: Host, *args: str | Path) -> Result:
    """Run in the host's directory with the origin named relatively, as a user would: the header names it so."""
    argv = [RECONCILE, "export", "--sysroot", host.sysroot, "--origin", "origin.toml", "--reposdir", host.reposdir]
    proc = subprocess.run(
        [*map(str, argv), *map(str, args)],
        capture_output=True,
        text=True,
        env=exampleos.sysroot_env(),
        cwd=host.root,
        check=False,
        timeout=600,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def stable(host: Host, text: str) -> str:
    """The values a test session makes anew (the composed base, rpmbuild's checksums) as names, each checked
    against the plan of the same host: the digest is over what it pins, the commit is its base."""
    plan = host.run("plan", "--json").json()
    target = plan["target"]
    digest = pins_digest(Plan.model_validate(plan))
    assert f"# Pins:   sha256:{digest}\n" in text, text
    text = text.replace(digest, "<pins-digest>").replace(target["base_checksum"], "<base-commit>")
    pinned = target["packages"] + [r["package"] for r in target["replace_base"]]
    for p in pinned:
        if p["repo"] == "@local":
            text = text.replace(p["checksum"].removeprefix("sha256:"), f"<sha256 of {p['nevra']}>")
    return text.replace(ARCH, "<arch>")


def check_golden(name: str, text: str) -> None:
    golden = GOLDEN / f"{name}.Containerfile"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} is missing: run with UPDATE_GOLDEN=1 to write it"
    assert text == golden.read_text(), f"{golden} differs (UPDATE_GOLDEN=1 rewrites it after a review)"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) as a builder reads them: comments dropped, `\\` continuations joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.startswith("#")):
            continue
        current += line[:-1] if line.endswith("\\") else line  # the builder joins them into one line
        if not line.endswith("\\"):
            keyword, _, rest = current.partition(" ")
            out.append((keyword, rest))
            current = ""
    assert not current, "a continuation runs off the end"
    return out


def check_syntax(text: str) -> list[tuple[str, str]]:
    """Every instruction known, FROM first and once, the lint last; each RUN a valid /bin/sh script."""
    parsed = instructions(text)
    assert [k for k, _ in parsed if k not in INSTRUCTIONS] == [], parsed
    assert parsed[0][0] == "FROM" and [k for k, _ in parsed].count("FROM") == 1, parsed
    assert parsed[-1] == ("RUN", "bootc container lint"), parsed
    for keyword, rest in parsed:
        if keyword == "RUN":
            script = re.sub(r"^(--mount=\S+ )+", "", rest)
            sh = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False)
            assert sh.returncode == 0, (script, sh.stderr)
        if keyword == "COPY":
            assert len(shlex.split(rest)) == 2, rest
    return parsed


def kargs_written(text: str) -> list[str] | None:
    """The kargs.d file the RUN writes, read back as bootc reads it (TOML)."""
    for keyword, rest in instructions(text):
        if keyword == "RUN" and KARGS_FILE in rest:
            words = shlex.split(rest)
            assert words[-2:] == [">", KARGS_FILE], words
            return tomllib.loads(words[-3])["kargs"]
    return None


def built_in_a_root(host: Host, text: str, context: Path, root: Path) -> list[str]:
    """What the Containerfile's COPY and package RUN leave, run by this machine's dnf and rpm against a root
    holding the base's RPMs instead of in an image (no podman here): `rpm -qa` of that root, sorted."""
    env = {**os.environ, "HOME": "/var/lib"}  # Debian's rpm keeps its database under ~: inside the root, then
    base = [str(r) for r in host.example_rpms if r.name.rsplit("-", 2)[0] in exampleos.BASE_PACKAGES]
    subprocess.run(["rpm", f"--root={root}", "-i", "--nodeps", *base], check=True, capture_output=True, env=env)
    dnf = f"--installroot={root} --releasever=1 --setopt=reposdir={root}/etc/yum.repos.d --disableplugin=local"
    for keyword, rest in instructions(text):
        if keyword == "COPY":
            source, target = shlex.split(rest)
            (root / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (root / target.lstrip("/")).write_bytes((context / source).read_bytes())
        elif keyword == "RUN" and "dnf" in rest:
            script = re.sub(r"^--mount=\S+ ", "", rest).replace(LOCAL_MOUNT, str(context / "local"))
            script = script.replace("dnf -y ", f"dnf -y {dnf} ").replace("dnf clean", f"dnf {dnf} clean")
            script = script.replace("rpm -e ", f"rpm --root={root} -e ")
            done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, check=False)
            assert done.returncode == 0, (script, done.stdout, done.stderr)
    qa = subprocess.run(["rpm", f"--root={root}", "-qa"], capture_output=True, text=True, env=env, check=True)
    return sorted(qa.stdout.split())


def planned_tree(host: Host) -> list[str]:
    """The NEVRAs the plan says the tree holds: the base's, less removals and replaced ones, plus the target."""
    plan = host.run("plan", "--json").json()["target"]
    base = [
        r.name.removesuffix(".rpm") for r in host.example_rpms if r.name.rsplit("-", 2)[0] in exampleos.BASE_PACKAGES
    ]
    gone = set(plan["remove_base"]) | {r["before"] for r in plan["replace_base"]}
    added = [p["nevra"] for p in plan["packages"]] + [r["after"] for r in plan["replace_base"]]
    return sorted([n for n in base if n not in gone] + added)


needs_dnf = pytest.mark.skipif(shutil.which("dnf") is None, reason="needs dnf (the Makefile installs it)")


def test_requested_packages_with_their_dependencies_pinned(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin(["hello", "frob"])
    result = export(host, "--from", IMAGE)
    assert result.code == 0, result.stderr
    check_syntax(result.stdout)
    check_golden("requested", stable(host, result.stdout))
    assert export(host, "--from", IMAGE).stdout == result.stdout, "the same inputs give the same text"
    out = tmp_path / "Containerfile"
    assert export(host, "--from", IMAGE, "-o", out).code == 0 and out.read_text() == result.stdout
    host.apply_ok()  # the Containerfile is the declaration, not the host's diff: the same once applied
    after = export(host, "--from", IMAGE)
    assert after.code == 0 and stable(host, after.stdout) == stable_golden("requested"), after.stdout


def stable_golden(name: str) -> str:
    return (GOLDEN / f"{name}.Containerfile").read_text()


@needs_dnf
def test_base_removals_and_replacements(host: Host, tmp_path: Path) -> None:
    host.publish([RELEASE_2])
    extra = '[overrides]\nremove = ["example-libs"]\nreplace = ["example-release >= 2"]\n'
    host.write_origin(["hello"], extra=extra)
    result = export(host, "--from", IMAGE, "--context", tmp_path / "context")
    assert result.code == 0, result.stderr
    check_syntax(result.stdout)
    check_golden("removals-replacements", stable(host, result.stdout))
    built = built_in_a_root(host, result.stdout, tmp_path / "context", tmp_path / "root")
    assert built == planned_tree(host) and "example-release-2-1.noarch" in built, built


def test_kernel_arguments_become_a_bootc_kargs_d_file(host: Host) -> None:
    host.write_origin([], extra=kargs_table(append=["quiet", "console=ttyS0,115200", 'x="a"'], delete=["rhgb"]))
    result = export(host, "--from", IMAGE)
    assert result.code == 0, result.stderr
    check_syntax(result.stdout)
    assert kargs_written(result.stdout) == ["quiet", "console=ttyS0,115200", 'x="a"']
    assert 'warning: kargs.delete ["rhgb"]' in result.stderr, result.stderr
    check_golden("kargs", stable(host, result.stdout))


@needs_dnf
def test_local_packages_come_from_the_build_context_checked_by_sha256(host: Host, tmp_path: Path) -> None:
    host.publish([])
    tool, libs = host.root / "rpms/mytool.rpm", host.root / "rpms/example-libs-3.rpm"  # beside the origin
    tool.parent.mkdir()
    tool.write_bytes(host.rpms.build(MYTOOL).read_bytes())
    libs.write_bytes(host.rpms.build(LIBS_3).read_bytes())
    host.write_origin(
        ["hello"], extra='local = ["rpms/mytool.rpm"]\n[overrides]\nreplace-local = ["rpms/example-libs-3.rpm"]\n'
    )
    context = tmp_path / "context"
    result = export(host, "--from", IMAGE, "--context", context)
    assert result.code == 0, result.stderr
    check_syntax(result.stdout)
    check_golden("local", stable(host, result.stdout))
    copied = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
    assert copied == ["local/example-libs-3.rpm", "local/mytool.rpm", "yum.repos.d/test.repo"], copied
    assert (context / "local/mytool.rpm").read_bytes() == tool.read_bytes()
    assert (context / "yum.repos.d/test.repo").read_bytes() == (host.reposdir / "test.repo").read_bytes()
    checked = subprocess.run(  # the build's own check, run against the context as the mount would show it
        ["sha256sum", "--check", "-"],
        input="".join(
            f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in (context / "local").iterdir()
        ),
        cwd=context / "local",
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0 and all(
        hashlib.sha256(p.read_bytes()).hexdigest() in result.stdout for p in (tool, libs)
    ), result.stdout
    bare = export(host, "--from", IMAGE)
    assert bare.stdout == result.stdout and "The build context needs: yum.repos.d/test.repo" in bare.stderr
    assert built_in_a_root(host, result.stdout, context, tmp_path / "root") == planned_tree(host)


@needs_dnf
def test_replace_local_downgrades_and_rebuilds_of_the_base_version(host: Host, tmp_path: Path) -> None:
    host.publish([])
    (host.root / "rpms").mkdir()
    for name, package in (("libs-rebuilt.rpm", LIBS_REBUILT), ("release-0.9.rpm", RELEASE_OLD)):
        (host.root / "rpms" / name).write_bytes(host.rpms.build(package).read_bytes())
    host.write_origin([], extra='[overrides]\nreplace-local = ["rpms/libs-rebuilt.rpm", "rpms/release-0.9.rpm"]\n')
    context = tmp_path / "context"
    result = export(host, "--from", IMAGE, "--context", context)
    assert result.code == 0, result.stderr
    check_syntax(result.stdout)
    check_golden("replace-local", stable(host, result.stdout))
    root = tmp_path / "root"
    assert built_in_a_root(host, result.stdout, context, root) == planned_tree(host)
    assert (root / "usr/lib64/libexample.so.1.2.1").read_text() == "rebuilt\n", "dnf install would have kept the base's"


def test_the_image_comes_from_container_image_unless_from_overrides_it(host: Host) -> None:
    image_host(host, SIGNED)
    host.publish([])
    write_image_origin(host, SIGNED, ["hello"])
    result = export(host)
    assert result.code == 0, result.stderr
    check_syntax(result.stdout)
    check_golden("container-image", stable(host, result.stdout))
    assert "\nFROM quay.io/x/y:41\n" in result.stdout
    other = export(host, "--from", "localhost/mine:2")
    assert other.code == 0, other.stderr
    assert other.stdout == result.stdout.replace("\nFROM quay.io/x/y:41\n", "\nFROM localhost/mine:2\n")


def test_no_image_to_build_from_is_a_usage_error_before_any_planning(tmp_path: Path) -> None:
    out = tmp_path / "Containerfile"
    origin = Path(exampleos.__file__).with_name("origin.toml")
    result = reconcile("export", "--sysroot", tmp_path / "no-sysroot", "--origin", origin, "-o", out)
    assert result.code == 64, result
    assert result.stdout == "" and not out.exists()
    assert f"No image to build FROM: {origin} has no [origin] container-image and --from was not given." in (
        result.stderr
    )
    assert "hint: Pass --from IMAGE" in result.stderr and "Traceback" not in result.stderr
    assert "no-sysroot" not in result.stderr, "the sysroot is never opened"


def test_an_image_name_that_would_start_another_instruction_is_refused(tmp_path: Path) -> None:
    origin = Path(exampleos.__file__).with_name("origin.toml")
    result = reconcile("export", "--sysroot", tmp_path, "--origin", origin, "--from", "img\nRUN rm -rf /")
    assert result.code == 64 and result.stdout == "", result
    assert "--from 'img\\nRUN rm -rf /' is not an image name" in result.stderr, result.stderr


def test_a_repo_file_name_a_copy_would_split_is_refused(host: Host) -> None:
    host.publish([])
    (host.reposdir / "test.repo").rename(host.reposdir / "my test.repo")
    host.write_origin(["hello"])
    result = export(host, "--from", IMAGE)
    assert result.code == 1 and result.stdout == "", result
    assert "Cannot write a Containerfile: repo file " in result.stderr and "my test.repo" in result.stderr, result
    assert "Traceback" not in result.stderr
