"""`reconcile init`: the origin file written from the default deployment, so that the next plan is a no-op."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

from conftest import Host
from support import Package, Result, exampleos, reconcile

KEY_LINE = re.compile(r"^\s*[A-Za-z0-9_-]+\s*=")


def init(host: Host, origin: Path, *args: str) -> Result:
    return reconcile("init", "--sysroot", host.sysroot, "--origin", origin, *args)


def plan_json(host: Host, origin: Path) -> dict:
    result = reconcile("plan", "--sysroot", host.sysroot, "--origin", origin, "--reposdir", host.reposdir, "--json")
    assert result.code == 0, result.stderr
    return result.json()


def init_then_plan(host: Host, tmp_path: Path) -> tuple[Path, dict, dict]:
    """init into a new file; its TOML, and the plan made from it."""
    written = tmp_path / "etc" / "reconcile" / "origin.toml"  # the parent is created
    result = init(host, written)
    assert result.code == 0, result.stderr
    assert f"Wrote {written}" in result.stdout
    return written, tomllib.loads(written.read_text()), plan_json(host, written)


def assert_no_op(plan: dict) -> None:
    assert plan["has_changes"] is False, (plan["changes"], plan["origin"]["desired"])
    assert plan["target"]["needs_deployment"] is False and plan["target"]["needs_origin_update"] is False
    assert all(c["actions"] == ["no-op"] for c in plan["changes"]), plan["changes"]  # an inactive request says so


def assert_every_key_commented(text: str) -> None:
    keys = [line for line in text.splitlines() if KEY_LINE.match(line)]
    assert keys, text
    uncommented = [line for line in keys if " # " not in line]
    assert not uncommented, text


def test_a_layered_deployment_with_an_inactive_request_gives_a_no_op_plan(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin(["hello", "frob", "example-libs"], extra="\n[options]\nrecommends = false\n")
    host.apply_ok()
    assert host.default()["reconcile"]["inactive_requests"] == ["example-libs"]
    written, doc, plan = init_then_plan(host, tmp_path)
    assert doc["origin"] == {"baserefspec": exampleos.BASE_REF}
    assert doc["packages"] == {"requested": ["example-libs", "frob", "hello"]}
    assert doc["options"] == {"recommends": False}
    assert "kargs" not in doc, "a plan without [kargs] keeps the deployment's kernel arguments"
    assert_no_op(plan)
    text = written.read_text()
    assert_every_key_commented(text)
    dep = host.default()
    assert text.startswith("# Written by `reconcile init` on ")
    assert f"{dep['checksum']}.{dep['serial']}" in text.splitlines()[1] and "layered by reconcile" in text


def test_a_local_package_is_declared_by_its_pin_and_found_in_the_package_cache(host: Host, tmp_path: Path) -> None:
    host.publish([])
    rpm = tmp_path / "mytool.rpm"
    rpm.write_bytes(host.rpms.build(Package("mytool")).read_bytes())
    host.write_origin(["hello"], extra=f'local = ["{rpm}"]\n')
    host.apply_ok()
    rpm.unlink()  # the pin is resolved against the package cache, never opened as a path
    pin = f"{hashlib.sha256(host.rpms.build(Package('mytool')).read_bytes()).hexdigest()}:mytool-1.0-1.noarch"
    written, doc, plan = init_then_plan(host, tmp_path)
    assert doc["packages"] == {"requested": ["hello"], "local": [pin]}
    assert_no_op(plan)
    assert_every_key_commented(written.read_text())

    # The pin form is a request like a path: dropping it from the file is a change.
    written.write_text(written.read_text().replace(f'"{pin}"', ""))
    changed = plan_json(host, written)
    assert [c["address"] for c in changed["changes"]] == ["local/mytool"]


def test_base_removals_are_declared(host: Host, tmp_path: Path) -> None:
    host.write_origin([], extra='[overrides]\nremove = ["example-libs"]\n')
    host.apply_ok()
    written, doc, plan = init_then_plan(host, tmp_path)
    assert doc["overrides"] == {"remove": ["example-libs"]}
    assert set(doc) == {"origin", "overrides"}
    assert_no_op(plan)
    assert_every_key_commented(written.read_text())


def test_a_plain_base_declares_only_the_base(host: Host, tmp_path: Path) -> None:
    host.publish([])
    written, doc, plan = init_then_plan(host, tmp_path)
    assert doc == {"origin": {"baserefspec": exampleos.BASE_REF}}
    assert "a plain base" in written.read_text()
    assert_no_op(plan)
    assert_every_key_commented(written.read_text())


def test_an_existing_file_is_kept_unless_forced(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    mine = tmp_path / "mine.toml"
    mine.write_text("# my own\n")
    refused = init(host, mine)
    assert refused.code == 1 and str(mine) in refused.stderr and "--force" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert mine.read_text() == "# my own\n"
    forced = init(host, mine, "--force")
    assert forced.code == 0, forced.stderr
    assert tomllib.loads(mine.read_text())["packages"] == {"requested": ["hello"]}
    assert_no_op(plan_json(host, mine))


def test_an_origin_with_settings_reconcile_cannot_honour_is_refused(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    dep = host.default()
    deployed_origin = host.deployed_origin(dep)
    deployed_origin.write_text(deployed_origin.read_text() + "\n[rpmostree]\ninitramfs-args=--add;foo;\n")
    written = tmp_path / "new" / "origin.toml"
    for force in ([], ["--force"]):
        refused = init(host, written, *force)
        assert refused.code == 65, refused.stderr
        assert "[rpmostree] initramfs-args" in refused.stderr and dep["checksum"] in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not written.parent.exists(), "nothing is written, not even the directory"


def test_a_keyfile_name_is_refused(host: Host, tmp_path: Path) -> None:
    refused = init(host, tmp_path / "host.origin")
    assert refused.code == 64 and "host.origin" in refused.stderr, refused.stderr
    assert not (tmp_path / "host.origin").exists()


def test_a_malformed_pin_in_a_toml_origin_is_an_error_with_its_line(host: Host, tmp_path: Path) -> None:
    origin = tmp_path / "origin.toml"
    origin.write_text(f'[origin]\nbaserefspec = "{exampleos.BASE_REF}"\n[packages]\nlocal = ["{"a" * 64}:gone"]\n')
    result = reconcile("validate", "--origin", origin)
    assert result.code == 65 and f"{origin}:4 packages.local[0]" in result.stderr, result.stderr


def test_rollback_compares_a_pinned_local_package_with_the_deployment(host: Host, tmp_path: Path) -> None:
    host.publish([])
    rpm = tmp_path / "mytool.rpm"
    rpm.write_bytes(host.rpms.build(Package("mytool")).read_bytes())
    host.write_origin([], extra=f'local = ["{rpm}"]\n')
    host.apply_ok()
    written, _doc, _plan = init_then_plan(host, tmp_path)  # asks for this deployment, by pin
    host.write_origin(["hello"], extra=f'local = ["{rpm}"]\n')
    host.apply_ok()
    result = reconcile("rollback", "--sysroot", host.sysroot, "--origin", written, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["origin_matches"] is True, result.json()["message"]


def test_a_pin_the_package_cache_does_not_hold_is_written_with_a_warning(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    dep = host.default()
    deployed_origin = host.deployed_origin(dep)
    gone = f"{'a' * 64}:gone-1-1.noarch"  # as rpm-ostree records a local RPM it keeps in its own cache
    deployed_origin.write_text(
        deployed_origin.read_text().replace("[packages]\n", f"[packages]\nrequested-local={gone};\n")
    )
    written = tmp_path / "new.toml"
    result = init(host, written)
    assert result.code == 0, result.stderr
    assert "warning: the local package gone-1-1.noarch" in result.stderr and str(written) in result.stderr
    assert tomllib.loads(written.read_text())["packages"]["local"] == [gone]
