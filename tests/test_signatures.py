"""gpgcheck, repo_gpgcheck and localpkg_gpgcheck: packages signed in the test with rpmsign and a throwaway
key, checked by rpm before anything is imported; every refusal names the package, the repo and the key id,
deploys nothing, moves no ref and leaves no package behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import Host
from signing import SigningKey, damage_header, damage_payload, sign_detached, sign_rpms
from support import File, Package, exampleos
from test_bad_input import assert_failed_cleanly

SIGNED = Package("signed-tool", files=(File("/usr/share/signed-tool/data", "payload of signed-tool\n" * 200),))
HELPER = Package("signed-helper", files=(File("/usr/share/signed-helper/data", "helper\n"),))
NEEDS_HELPER = Package("signed-app", requires=("signed-helper",), files=(File("/usr/share/signed-app/a", "a\n"),))


def publish_signed(
    host: Host, packages: list[tuple[Package, SigningKey | None]], key: SigningKey, **options: object
) -> tuple[Path, Path]:
    """A repo [signed] whose packages are signed by the key given for each (None: unsigned), listing `key`."""
    repo = host.root / "signed-repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    for pkg, signer in packages:
        copy = repo / host.rpms.build(pkg).name
        shutil.copy2(host.rpms.build(pkg), copy)
        if signer is not None:
            sign_rpms(signer, [copy])
    exampleos.make_repo([], repo)
    defaults = {"gpgcheck": 1, "gpgkey": f"file://{key.public}"}
    path = exampleos.write_repo_file(host.reposdir, "signed", f"file://{repo}", **{**defaults, **options})
    return repo, path


def republish(repo: Path) -> None:
    """Regenerate the metadata, as a mirror that serves altered packages would."""
    exampleos.make_repo([], repo)


def test_signed_packages_are_layered_and_their_key_is_shown_once(host: Host, keys: dict[str, SigningKey]) -> None:
    publish_signed(host, [(NEEDS_HELPER, keys["trusted"]), (HELPER, keys["trusted"])], keys["trusted"])
    host.write_origin(["signed-app"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    [key] = plan.json()["keys"]
    assert key["fingerprint"] == keys["trusted"].fingerprint
    assert key["user_ids"] == ["trusted signer <trusted@example.test>"] and key["new"] is True
    assert key["packages"] == ["signed-app-1.0-1.noarch", "signed-helper-1.0-1.noarch"]
    text = host.run("plan")
    spaced = " ".join(keys["trusted"].fingerprint[i : i + 4] for i in range(0, 40, 4))
    assert spaced in text.stdout and "NEW, used for the first time" in text.stdout, text.stdout
    host.apply_ok()
    assert host.downloaded() == [], "imported packages leave the download cache"
    host.write_origin(["signed-app", "signed-tool"])
    publish_signed(
        host, [(NEEDS_HELPER, keys["trusted"]), (HELPER, keys["trusted"]), (SIGNED, keys["trusted"])], keys["trusted"]
    )
    again = host.run("plan", "--json").json()
    assert [k["new"] for k in again["keys"]] == [False], "a key an apply used is no longer new"


REFUSALS = {
    "unsigned": (None, "it is not signed", False),
    "other-key": ("other", "not one of the repo's keys", True),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_refused_signatures(host: Host, keys: dict[str, SigningKey], case: tuple, command: str) -> None:
    signer, needle, names_other_key = case
    _repo, repo_file = publish_signed(host, [(SIGNED, keys[signer] if signer else None)], keys["trusted"])
    host.write_origin(["signed-tool"])
    before = host.state()
    result = host.run(command)
    needles = ["signed-tool-1.0-1.noarch", "[signed]", str(repo_file), needle, keys["trusted"].key_id]
    if names_other_key:
        needles.append(f"key id {keys['other'].key_id}")
    assert_failed_cleanly(host, before, result, 1, *needles)
    assert host.downloaded() == []


def test_gpgkey_may_list_several_keys(host: Host, keys: dict[str, SigningKey]) -> None:
    both = f"file://{keys['trusted'].public} file://{keys['other'].public}"
    publish_signed(host, [(SIGNED, keys["other"]), (HELPER, keys["trusted"])], keys["trusted"], gpgkey=both)
    host.write_origin(["signed-tool", "signed-helper"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    signers = {k["fingerprint"]: k["packages"] for k in plan.json()["keys"]}
    assert signers == {
        keys["other"].fingerprint: ["signed-tool-1.0-1.noarch"],
        keys["trusted"].fingerprint: ["signed-helper-1.0-1.noarch"],
    }
    host.apply_ok()


def test_kept_packages_are_checked_when_their_repo_turns_gpgcheck_on(host: Host, keys: dict[str, SigningKey]) -> None:
    """An unsigned package layered while its repo had gpgcheck off is not reused once it has it on."""
    publish_signed(host, [(HELPER, None), (SIGNED, keys["trusted"])], keys["trusted"], gpgcheck=0)
    host.write_origin(["signed-helper"])
    host.apply_ok()
    publish_signed(host, [(HELPER, None), (SIGNED, keys["trusted"])], keys["trusted"])
    host.write_origin(["signed-helper", "signed-tool"])
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, "signed-helper-1.0-1.noarch", "[signed]", "it is not signed")


def test_a_bad_header_signature_is_refused_at_plan_time(host: Host, keys: dict[str, SigningKey]) -> None:
    repo, _ = publish_signed(host, [(SIGNED, keys["trusted"])], keys["trusted"])
    damage_header(next(repo.glob("signed-tool-*.rpm")))
    republish(repo)
    host.write_origin(["signed-tool"])
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, "signed-tool-1.0-1.noarch", "[signed]", "does not verify")
    assert f"key id {keys['trusted'].key_id}" in result.stderr


def test_a_tampered_payload_is_refused_before_import(host: Host, keys: dict[str, SigningKey]) -> None:
    """The header (and so its signature) is intact, so the plan passes; rpm's whole-file check at apply
    refuses the package before it is imported, and the bad file is not kept."""
    repo, _ = publish_signed(host, [(SIGNED, keys["trusted"])], keys["trusted"])
    damage_payload(next(repo.glob("signed-tool-*.rpm")))
    republish(repo)  # a mirror that controls the metadata too: the repodata checksum matches
    host.write_origin(["signed-tool"])
    assert host.run("plan").code == 0
    before = host.state()
    result = host.run("apply")
    needles = ("signed-tool-1.0-1.noarch", "[signed]", "fails its signature check", "digest does not match")
    assert_failed_cleanly(host, before, result, 1, *needles)
    assert host.downloaded() == []
    assert not any("signed-tool" in ref for ref in host.state()["refs"])


def test_gpgcheck_without_gpgkey_is_a_config_error(host: Host, keys: dict[str, SigningKey]) -> None:
    _repo, repo_file = publish_signed(host, [(SIGNED, keys["trusted"])], keys["trusted"], gpgkey=None)
    host.write_origin(["signed-tool"])
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, f"{repo_file}:5", "gpgcheck=1 but no gpgkey")  # its gpgcheck line


def test_keys_from_http_are_fetched_once(host: Host, keys: dict[str, SigningKey]) -> None:
    from servers import serve

    with serve(keys["trusted"].public.parent) as keyserver:
        url = f"{keyserver.url}/{keys['trusted'].public.name}"
        publish_signed(host, [(SIGNED, keys["trusted"])], keys["trusted"], gpgkey=url)
        host.write_origin(["signed-tool"])
        for _ in range(2):
            plan = host.run("plan", "--json")
            assert plan.code == 0, plan.stderr
            assert [k["fingerprint"] for k in plan.json()["keys"]] == [keys["trusted"].fingerprint]
        assert any("plain http" in w for w in plan.json()["warnings"]), plan.json()["warnings"]
        fetched = lambda: [path for path, _range in keyserver.faults.log if path.endswith(".asc")]  # noqa: E731
        assert len(fetched()) == 1, keyserver.faults.log
        assert host.run("plan", "--refresh").code == 0  # a repo may rotate its key: --refresh asks again
        assert len(fetched()) == 2
    assert (host.cachedir / "keys" / f"{keys['trusted'].fingerprint}.asc").exists()


def test_repo_gpgcheck(host: Host, keys: dict[str, SigningKey]) -> None:
    repo, _ = publish_signed(host, [(SIGNED, keys["trusted"])], keys["trusted"], repo_gpgcheck=1)
    repomd = repo / "repodata" / "repomd.xml"
    host.write_origin(["signed-tool"])
    before = host.state()
    missing = host.run("plan")
    assert_failed_cleanly(host, before, missing, 1, "[signed]", "repo_gpgcheck")

    sign_detached(keys["trusted"], repomd)
    assert host.run("plan").code == 0

    sign_detached(keys["other"], repomd)
    wrong_key = host.run("plan")
    assert_failed_cleanly(host, before, wrong_key, 1, "[signed]", "repo_gpgcheck")

    sign_detached(keys["trusted"], repomd)
    repomd.write_text(repomd.read_text().replace("<revision>", "<revision>1"))  # content no longer signed
    tampered = host.run("plan")
    assert_failed_cleanly(host, before, tampered, 1, "[signed]", "repo_gpgcheck")


LOCAL = Package("local-tool", files=(File("/usr/share/local-tool/a", "local\n"),))


@pytest.mark.parametrize("check", [None, "true"])
def test_local_packages_follow_localpkg_gpgcheck(host: Host, keys: dict[str, SigningKey], check: str | None) -> None:
    publish_signed(host, [(SIGNED, keys["trusted"])], keys["trusted"])
    local = host.root / "local" / "local-tool-1.0-1.noarch.rpm"
    local.parent.mkdir()
    shutil.copy2(host.rpms.build(LOCAL), local)
    options = f"\n[options]\nlocalpkg_gpgcheck = {check}\n" if check else ""
    host.write_origin([], extra=f'local = ["{local}"]\n{options}')
    before = host.state()
    result = host.run("apply")
    if check is None:  # dnf's default: local packages are not checked
        assert result.code == 0, result.stderr
        return
    assert_failed_cleanly(host, before, result, 1, "local-tool-1.0-1.noarch", "packages.local", "it is not signed")
    sign_rpms(keys["trusted"], [local])
    assert host.run("apply").code == 0
