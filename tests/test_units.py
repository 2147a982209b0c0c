"""Small pure functions: version comparison, cache ref names, path rules, origin file locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.errors import InvalidInputError
from reconcile.origin import load_origin
from reconcile.rpm.nevra import Nevra, pkgcache_ref, rpmvercmp
from reconcile.rpm.treerules import PathRefused, Placement, place


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("1.0", "1.0", 0),
        ("1.0", "1.1", -1),
        ("2.0", "10", -1),
        ("1.0a", "1.0", 1),
        ("1.001", "1.1", 0),
        ("1.0~rc1", "1.0", -1),
        ("1.0~rc1", "1.0~rc2", -1),
        ("1.0^1", "1.0", 1),
        ("1.0^1", "1.0.1", -1),
        ("5.5p1", "5.5p10", -1),
        ("a", "1", -1),
    ],
)
def test_rpmvercmp(a: str, b: str, want: int) -> None:
    assert rpmvercmp(a, b) == want
    assert rpmvercmp(b, a) == -want


def test_pkgcache_ref_escapes_like_rpm_ostree() -> None:
    assert (
        pkgcache_ref(Nevra("git", 0, "1.8.3.1", "6.el7_2.1", "x86_64"))
        == "reconcile/pkg/git/1.8.3.1-6.el7__2.1.x86__64"
    )
    assert (
        pkgcache_ref(Nevra("perl", 4, "5.16.3", "291.el7", "x86_64")) == "reconcile/pkg/perl/4_3A5.16.3-291.el7.x86__64"
    )
    assert str(Nevra("perl", 4, "5.16.3", "291.el7", "x86_64")) == "perl-4:5.16.3-291.el7.x86_64"


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/usr/bin/x", ("tree", "usr/bin/x")),
        ("/etc/x.conf", ("tree", "usr/etc/x.conf")),
        ("/boot/vmlinuz", ("tree", "usr/lib/ostree-boot/vmlinuz")),
        ("/opt/app/bin", ("tree", "usr/lib/opt/app/bin")),
        ("/var/lib/x", ("tmpfiles", "/var/lib/x")),
        ("/run/x", ("tmpfiles", "/run/x")),
        ("/bin/sh", ("tree", "usr/bin/sh")),
        ("/bin", ("toplevel", "bin")),
    ],
)
def test_path_rules(path: str, want: tuple[str, str]) -> None:
    assert place(path, allow_skeleton=False) == (Placement(want[0]), want[1])


@pytest.mark.parametrize("path", ["/srv/x", "/home/user/x", "/usr/../etc/x", "relative/x", "/proc"])
def test_refused_paths(path: str) -> None:
    with pytest.raises(PathRefused):
        place(path, allow_skeleton=False)


def test_origin_keeps_requests_as_a_set(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('[origin]\nbaserefspec = "r"\n[packages]\nrequested = ["x", "y >= 2"]\n')
    b.write_text('# comment\n[origin]\nbaserefspec = "r"\n[packages]\nrequested = ["y >= 2", "x"]\n')
    assert load_origin(a).desired.normalized() == load_origin(b).desired.normalized()
    assert load_origin(a).sha256 != load_origin(b).sha256


def test_rpm_ostree_origin_keyfile_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "host.origin"
    f.write_text("[origin]\nbaserefspec=fedora:fedora/41/x86_64/silverblue\n\n[packages]\nrequested=htop;tmux;\n")
    desired = load_origin(f).desired
    assert desired.origin.baserefspec == "fedora:fedora/41/x86_64/silverblue"
    assert desired.packages.requested == ["htop", "tmux"]


def test_origin_errors_name_missing_tables(tmp_path: Path) -> None:
    f = tmp_path / "o.toml"
    f.write_text("[packages]\nrequested = 'htop'\n")
    with pytest.raises(InvalidInputError) as e:
        load_origin(f)
    text = "\n".join(e.value.problems)
    assert "origin: required key is missing" in text
    assert f"{f}:2 packages.requested: Input should be a valid list" in text


def test_add_creates_the_packages_table_and_keeps_comments() -> None:
    from reconcile.origin_edit import edit_requested

    text = '# mine\n[origin]\nbaserefspec = "example/base"  # the base\n'
    new, done = edit_requested(Path("o.toml"), text, ["hello"], [])
    assert done == ["+ hello"]
    assert new.startswith(text)
    assert load_origin_text(new) == ["hello"]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [('packages = "hello"\n', "[packages] is not a table"), ('[packages]\nrequested = "hello"\n', "not a list")],
)
def test_add_refuses_a_wrongly_typed_origin(text: str, complaint: str) -> None:
    from reconcile.origin_edit import edit_requested

    with pytest.raises(InvalidInputError) as err:
        edit_requested(Path("/etc/o.toml"), text, ["hello"], [])
    assert "/etc/o.toml" in str(err.value) and complaint in str(err.value)


def load_origin_text(text: str) -> list[str]:
    import tomllib

    return list(tomllib.loads(text)["packages"]["requested"])


def test_the_origin_keyfile_codec_round_trips_and_keeps_other_keys(tmp_path: Path) -> None:
    from reconcile import ostree
    from reconcile.origin_keyfile import read_origin_keyfile, write_origin_keyfile

    f = tmp_path / "o.toml"
    f.write_text(
        '[origin]\nbaserefspec = "r"\n[packages]\nrequested = ["b", "a"]\n[overrides]\nremove = ["x"]\n'
        '[options]\nrecommends = false\nignore_scripts = ["a.%post"]\nreleasever = "41"\nlocalpkg_gpgcheck = true\n'
    )
    desired = load_origin(f).desired
    previous = ostree.keyfile_from_text(
        "[origin]\nrefspec=old\ncustom-description=mine\n[libostree-transient]\npinned=1\n"
    )
    kf = write_origin_keyfile(desired, ["0" * 64 + ":l-1-1.noarch"], previous, new_deployment=True)
    fields = read_origin_keyfile(kf)
    assert (fields.refspec, fields.requested, fields.removals, fields.local) == (
        "r",
        ["a", "b"],
        ["x"],
        ["0" * 64 + ":l-1-1.noarch"],
    )
    assert (fields.recommends, fields.ignore_scripts, fields.releasever, fields.localpkg_gpgcheck) == (
        False,
        ["a.%post"],
        "41",
        True,
    )
    assert ostree.keyfile_get(kf, "origin", "custom-description") == "mine", "keys reconcile does not own stay"
    assert ostree.keyfile_get(kf, "origin", "refspec") is None and not kf.has_group("libostree-transient")
    assert fields.unsupported == []


def test_a_key_given_twice_is_an_origin_error_with_its_line(tmp_path: Path) -> None:
    origin = tmp_path / "origin.toml"
    origin.write_text('[origin]\nbaserefspec = "a"\n[packages]\nrequested = ["x"]\nrequested = ["y"]\n')
    with pytest.raises(InvalidInputError) as refused:
        load_origin(origin)
    assert refused.value.exit_code == 65
    [problem] = refused.value.problems
    assert problem.startswith(f"{origin}:5 ") and problem.endswith('Key "requested" already exists.'), problem


def test_a_long_list_of_problems_is_cut_to_fifty_lines_in_text(tmp_path: Path) -> None:
    """The text names the first 50 problems and how many more; the JSON error document lists every one."""
    from support import reconcile

    origin = tmp_path / "origin.toml"
    items = ", ".join('"pkg"' for _ in range(200))
    origin.write_text(f'[origin]\nbaserefspec = "a"\n[packages]\nrequested = [{items}]\n')
    text = reconcile("plan", "--sysroot", tmp_path / "none", "--origin", origin)
    assert text.code == 65, text.stderr
    shown = [line for line in text.stderr.splitlines() if "is listed twice" in line]
    assert len(shown) == 50 and "  … and 149 more" in text.stderr.splitlines()
    doc = reconcile("plan", "--sysroot", tmp_path / "none", "--origin", origin, "--json")
    assert len(doc.json()["error"]["problems"]) == 199
