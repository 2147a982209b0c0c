"""rpm-ostree `.origin` files as input: pins resolved against the package cache, tree-changing keys refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import Host
from support import Package, exampleos, reconcile


def run(host: Host, command: str, origin: Path, *args: str) -> tuple[int, str]:
    result = reconcile(command, "--sysroot", host.sysroot, "--origin", origin, "--reposdir", host.reposdir, *args)
    return result.code, result.stdout + result.stderr


def layer_a_local_package(host: Host, tmp_path: Path) -> tuple[Path, str]:
    """Layer mytool from a file through a TOML origin; return the file and rpm-ostree's pin for it."""
    host.publish([])
    rpm = tmp_path / "mytool.rpm"
    rpm.write_bytes(host.rpms.build(Package("mytool")).read_bytes())
    host.write_origin([], extra=f'local = ["{rpm}"]\n')
    host.apply_ok()
    return rpm, f"{hashlib.sha256(rpm.read_bytes()).hexdigest()}:mytool-1.0-1.noarch"


def test_requested_local_pins_are_resolved_against_the_package_cache(host: Host, tmp_path: Path) -> None:
    rpm, pin = layer_a_local_package(host, tmp_path)
    rpm.unlink()  # a pin is never opened as a path
    origin = tmp_path / "host.origin"
    origin.write_text(f"[origin]\nbaserefspec={exampleos.BASE_REF}\n\n[packages]\nrequested-local={pin};\n")
    code, out = run(host, "plan", origin)
    assert code == 0, out
    assert "No changes" in out

    origin.write_text(
        f"[origin]\nbaserefspec={exampleos.BASE_REF}\n\n[packages]\nrequested=hello;\nrequested-local={pin};\n"
    )
    code, out = run(host, "apply", origin, "--yes")
    assert code == 0, out
    assert {"mytool-1.0-1.noarch", "hello-1.2-1.noarch"} <= set(host.default()["reconcile"]["layered_packages"])


def test_a_pin_the_package_cache_does_not_hold_is_a_clear_error(host: Host, tmp_path: Path) -> None:
    host.publish([])
    origin = tmp_path / "host.origin"
    origin.write_text(
        f"[origin]\nbaserefspec={exampleos.BASE_REF}\n[packages]\nrequested-local={'a' * 64}:gone-1-1.noarch;\n"
    )
    before = host.state()
    code, out = run(host, "plan", origin)
    assert code != 0 and "gone-1-1.noarch" in out and "not in the package cache" in out, out
    assert "Traceback" not in out
    origin.write_text(f"[origin]\nbaserefspec={exampleos.BASE_REF}\n[packages]\nrequested-local=/tmp/x.rpm;\n")
    code, out = run(host, "plan", origin)
    assert code == 65 and "is not `<sha256>:<nevra>`" in out, out
    assert host.state() == before


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"modules": ["enable=foo:2.0;"]}, ["[modules] enable"]),
        ({"packages": ["requested-local-fileoverride=x;", "colour=blue"]},
         ["[packages] requested-local-fileoverride", "[packages] colour"]),
        ({"rpmostree": ["regenerate-initramfs=true", "initramfs-args=--add;foo;"]},
         ["[rpmostree] regenerate-initramfs", "[rpmostree] initramfs-args"]),
    ],
)  # fmt: skip
def test_tree_changing_keys_reconcile_does_not_implement_are_refused(
    host: Host, tmp_path: Path, extra: dict[str, list[str]], named: list[str]
) -> None:
    host.publish([])
    groups = {"origin": [f"baserefspec={exampleos.BASE_REF}"], "packages": ["requested=hello;"]}
    for group, lines in extra.items():
        groups.setdefault(group, []).extend(lines)
    origin = tmp_path / "host.origin"
    origin.write_text("\n".join(f"[{g}]\n" + "\n".join(lines) + "\n" for g, lines in groups.items()))
    before = host.state()
    for command in ("plan", "apply"):
        code, out = run(host, command, origin, *(["--yes"] if command == "apply" else []))
        assert code == 65, out
        for key in named:
            assert key in out, (key, out)
        assert "Traceback" not in out
    assert host.state() == before


def test_harmless_keys_and_false_switches_are_accepted(host: Host, tmp_path: Path) -> None:
    host.publish([])
    origin = tmp_path / "host.origin"
    origin.write_text(
        f"[origin]\nbaserefspec={exampleos.BASE_REF}\ncustom-description=my host\n\n"
        "[packages]\nrequested=hello;\n\n[rpmostree]\nregenerate-initramfs=false\n"
    )
    code, out = run(host, "plan", origin)
    assert code == 0, out


def test_a_deployment_whose_origin_has_such_keys_is_not_rebuilt_without_them(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    dep = host.default()
    deployed_origin = host.deployed_origin(dep)
    deployed_origin.write_text(deployed_origin.read_text() + "\n[rpmostree]\nregenerate-initramfs=true\n")
    before = host.state()
    result = host.run("apply")
    assert result.code == 65, result.stderr
    assert "[rpmostree] regenerate-initramfs" in result.stderr and dep["checksum"] in result.stderr
    assert host.state() == before


def test_add_and_remove_edit_only_toml_origins(host: Host, tmp_path: Path) -> None:
    host.publish([])
    origin = tmp_path / "host.origin"
    text = f"[origin]\nbaserefspec={exampleos.BASE_REF}\n\n[packages]\nrequested=hello;\n"
    origin.write_text(text)
    for command in ("add", "remove"):
        code, out = run(host, command, origin, "frob")
        assert code == 65, out
        assert "edit only TOML origin files" in out and f"{tmp_path / 'host.toml'}" in out, out
        assert 'baserefspec = "example/base"' in out and 'requested = ["hello"]' in out, out
    assert origin.read_text() == text
