"""`origin.d/*.toml` fragments: merged with the origin file (unions, one value per setting), contradictions refused
naming both files and lines, the plan naming the fragment of each request, and saved plans going stale when a
fragment changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import Host
from support import Package, reconcile

from reconcile.errors import InvalidInputError
from reconcile.origin import load_origin, parse_origin

MAIN = """[origin]
baserefspec = "example/base"

[packages]
requested = ["hello"]
"""
WEB = """# owned by the web team
[packages]
requested = [
  "nginx",
  "hello",
]
"""


def write(root: Path, main: str, **fragments: str) -> Path:
    """`root/origin.toml`, and `root/origin.d/NAME.toml` for each fragment (`_10_web` is `10-web.toml`)."""
    origin = root / "origin.toml"
    origin.write_text(main)
    for name, text in fragments.items():
        (root / "origin.d").mkdir(exist_ok=True)
        (root / "origin.d" / f"{name.lstrip('_').replace('_', '-')}.toml").write_text(text)
    return origin


def refused(origin: Path, command: str = "validate") -> str:
    """The CLI refuses the origin with exit 65, in one paragraph without a traceback; its stderr."""
    args = ["--sysroot", origin.parent / "no-sysroot", "--reposdir", origin.parent] if command == "plan" else []
    result = reconcile(command, "--origin", origin, *args)
    assert result.code == 65, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return result.stderr


# -- the merge, pure ------------------------------------------------------------------------------------------
def test_lists_are_unions_in_name_order_and_each_item_names_its_file_and_line(tmp_path: Path) -> None:
    db = '[packages]\nrequested = ["psql", "nginx"]\nlocal = ["tools/x.rpm"]\n\n[kargs]\nappend = ["quiet"]\n'
    origin = write(tmp_path, MAIN, _20_db=db, _10_web=WEB)
    (tmp_path / "origin.d" / ".10-web.toml.swp.toml").write_text("not toml at all [")  # a dot file: ignored
    loaded = load_origin(origin)
    assert loaded.desired.packages.requested == ["hello", "nginx", "psql"], "origin file first, then by name"
    assert loaded.desired.packages.local == [str(tmp_path / "origin.d" / "tools" / "x.rpm")], "relative to it"
    assert loaded.desired.kargs.append == ["quiet"]
    assert [p.name for p, _sha in loaded.fragments] == ["10-web.toml", "20-db.toml"]
    fragments = tmp_path / "origin.d"
    assert loaded.source_of("packages.requested", "hello") == f"{origin}:5", "the first declaration wins"
    assert loaded.source_of("packages.requested", "nginx") == f"{fragments / '10-web.toml'}:4"
    assert loaded.source_of("packages.requested", "psql") == f"{fragments / '20-db.toml'}:2"
    assert loaded.source_of("kargs.append", "quiet") == f"{fragments / '20-db.toml'}:6"


def test_without_fragments_the_digest_is_the_files_own_so_older_plans_stay_valid(tmp_path: Path) -> None:
    origin = write(tmp_path, MAIN)
    loaded = load_origin(origin)
    assert loaded.sha256 == hashlib.sha256(MAIN.encode()).hexdigest()
    assert loaded.fragments == ()
    assert loaded.source_of("packages.requested", "hello") == f"{origin}:5"


def test_the_digest_covers_every_fragment(tmp_path: Path) -> None:
    origin = write(tmp_path, MAIN, _10_web=WEB)
    digests = {load_origin(origin).sha256}
    (tmp_path / "origin.d" / "10-web.toml").write_text(WEB + "# a comment\n")
    digests.add(load_origin(origin).sha256)
    (tmp_path / "origin.d" / "10-web.toml").rename(tmp_path / "origin.d" / "11-web.toml")
    digests.add(load_origin(origin).sha256)
    (tmp_path / "origin.d" / "11-web.toml").unlink()
    digests.add(load_origin(origin).sha256)
    assert len(digests) == 4, "an edited, renamed or removed fragment each gives another digest"


def test_a_setting_repeated_with_the_same_value_is_fine_and_one_set_only_in_a_fragment_applies(
    tmp_path: Path,
) -> None:
    same = '[origin]\nbaserefspec = "example/base"\n\n[options]\nrecommends = false\nreleasever = "41"\n'
    origin = write(tmp_path, MAIN + "\n[options]\nrecommends = false\n", _10_same=same)
    options = load_origin(origin).desired.options
    assert (options.recommends, options.releasever) == (False, "41")


CONFLICTS = [
    pytest.param(
        {"_10_web": WEB, "_20_db": '# the db team\n[overrides]\nremove = ["nginx"]\n'},
        ["origin.d/20-db.toml:3 overrides.remove[0]: 'nginx' is removed", "origin.d/10-web.toml:4"],
        id="requested-and-removed",
    ),
    pytest.param(
        {"_10_other": '[origin]\nbaserefspec = "example/other"\n'},
        ['origin.d/10-other.toml:2 origin.baserefspec: "example/other" here', "origin.toml:2 sets"],
        id="two-bases",
    ),
    pytest.param(
        {"_10_a": "[options]\nrecommends = false\n", "_20_b": "\n[options]\nrecommends = true\n"},
        ["origin.d/20-b.toml:3 options.recommends: true here", "origin.d/10-a.toml:2 sets options.recommends"],
        id="an-option-with-two-values",
    ),
    pytest.param(
        {"_10_a": '[kargs]\nappend = ["console=ttyS0"]\n', "_20_b": '[kargs]\ndelete = ["console"]\n'},
        ["origin.d/20-b.toml:2 kargs.delete[0]: 'console' would delete 'console=ttyS0'", "origin.d/10-a.toml:2"],
        id="contradictory-kargs",
    ),
    pytest.param(
        {
            "_10_a": '[origin]\nbaserefspec = "example/base"\ncommit = "' + "a" * 64 + '"\n',
            "_20_b": '[origin]\nbaserefspec = "example/base"\nversion = "41.1"\n',
        },
        ['origin.d/20-b.toml:3 origin.version: "41.1" here', "origin.d/10-a.toml:3 sets origin.commit"],
        id="two-pins",
    ),
]


@pytest.mark.parametrize(("fragments", "phrases"), CONFLICTS)
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_conflict_is_one_error_naming_both_files_and_lines(
    tmp_path: Path, fragments: dict[str, str], phrases: list[str], command: str
) -> None:
    stderr = refused(write(tmp_path, MAIN, **fragments), command)
    assert "conflict (1 problem)" in stderr and str(tmp_path / "origin.d") in stderr, stderr
    problem = next(line for line in stderr.splitlines() if phrases[0] in line)
    for phrase in phrases[1:]:
        assert phrase in problem, f"the one problem line names both places: {problem}"


def test_within_one_file_a_request_and_a_removal_are_left_to_the_files_own_rules(tmp_path: Path) -> None:
    both = '[packages]\nrequested = ["nginx"]\n\n[overrides]\nremove = ["nginx"]\n'
    loaded = load_origin(write(tmp_path, MAIN, _10_web=both))
    assert "nginx" in loaded.desired.overrides.remove, "only contradictions between files are the merge's business"


def test_every_problem_of_every_file_at_once_each_with_its_file_and_line(tmp_path: Path) -> None:
    origin = write(
        tmp_path,
        MAIN.replace('["hello"]', '["hello", ""]'),
        _10_bad_key='[packages]\nrequested = ["x"]\nwanted = ["y"]\n',
        _20_syntax="[packages\n",
        _30_no_base='[origin]\ncommit = "' + "b" * 64 + '"\n',
    )
    stderr = refused(origin)
    assert "with its fragments 10-bad-key.toml, 20-syntax.toml, 30-no-base.toml" in stderr, stderr
    for phrase in (
        "origin.toml:5 packages.requested[1]: empty package name",
        "origin.d/10-bad-key.toml:3 packages.wanted: unknown key",
        "origin.d/20-syntax.toml:1",
        "origin.d/30-no-base.toml:1 origin: give exactly one of baserefspec and container-image",
    ):
        assert phrase in stderr, stderr


def test_a_fragment_without_the_origin_file_is_not_enough(tmp_path: Path) -> None:
    write(tmp_path, MAIN, _10_web=WEB)
    (tmp_path / "origin.toml").unlink()
    with pytest.raises(InvalidInputError, match="does not exist") as raised:
        load_origin(tmp_path / "origin.toml")
    assert raised.value.hint and "the origin file, which names the base, is required" in raised.value.hint


def test_validate_names_the_fragments(tmp_path: Path) -> None:
    result = reconcile("validate", "--origin", write(tmp_path, MAIN, _10_web=WEB))
    assert result.code == 0, result.stderr
    assert "with 1 fragment(s) (10-web.toml) is valid" in result.stdout and "2 requested" in result.stdout


# -- on a real sysroot ----------------------------------------------------------------------------------------
NGINX = Package("nginx", requires=("nginx-core",))
NGINX_CORE = Package("nginx-core")


def test_a_package_only_a_fragment_requests_is_planned_applied_and_named_in_the_plan(
    host: Host, tmp_path: Path
) -> None:
    host.publish([NGINX, NGINX_CORE])
    host.write_origin(["hello"])
    write(host.root, host.origin.read_text(), _10_web='# the web team\n[packages]\nrequested = ["nginx"]\n')
    fragment = host.root / "origin.d" / "10-web.toml"
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    doc = plan.json()
    assert doc["format_version"] == "1.5"
    assert doc["origin"]["fragments"] == [
        {"path": str(fragment), "sha256": hashlib.sha256(fragment.read_bytes()).hexdigest()}
    ]
    changes = {c["address"]: c for c in doc["changes"]}
    assert changes["package/nginx"]["source"] == f"{fragment}:3"
    assert changes["package/hello"]["source"] == f"{host.origin}:5"
    added = {e["name"]: e for e in doc["resolution"]["added"]}
    assert added["nginx"]["source"] == f"{fragment}:3" and added["nginx"]["reason"] == "requested"
    assert added["nginx-core"]["source"] is None, "a dependency has no declaration of its own"
    text = host.run("plan").stdout
    assert "+ package/nginx  requested (from origin.d/10-web.toml:3)" in text, text
    assert "nginx-1.0-1.noarch [test] (requested, from origin.d/10-web.toml:3)" in text, text
    assert "+ package/hello  requested\n" in text, "the origin file's own requests are not annotated"
    markdown = host.run("plan", "--format", "markdown").stdout
    assert "| `package/nginx` | requested (from `origin.d/10-web.toml:3`) |" in markdown, markdown
    host.apply_ok()
    assert "nginx-1.0-1.noarch" in host.default()["reconcile"]["layered_packages"]
    again = host.run("plan", "--detailed-exitcode")
    assert again.code == 0, "converged with the fragment: " + again.stdout


def test_a_saved_plan_goes_stale_when_a_fragment_is_edited_or_added(host: Host, tmp_path: Path) -> None:
    host.publish([NGINX, NGINX_CORE])
    host.write_origin(["hello"])
    write(host.root, host.origin.read_text(), _10_web='[packages]\nrequested = ["nginx"]\n')
    fragment = host.root / "origin.d" / "10-web.toml"
    saved = tmp_path / "plan.json"
    assert host.run("plan", "-o", saved).code == 0
    original = fragment.read_text()
    before = host.state()
    for change, why in (
        (lambda: fragment.write_text(original + "# reviewed? no\n"), "10-web.toml edited"),
        (lambda: (host.root / "origin.d" / "20-db.toml").write_text("[packages]\n"), "20-db.toml added"),
    ):
        change()
        result = host.run("apply", saved)
        assert result.code == 3, result.stderr
        assert f"its fragments in {host.root / 'origin.d'} changed" in result.stderr and why in result.stderr
        assert host.state() == before, "a stale plan changes nothing"
        fragment.write_text(original)
        (host.root / "origin.d" / "20-db.toml").unlink(missing_ok=True)
    assert json.loads(saved.read_text())["origin"]["sha256"] == load_origin(host.origin).sha256
    host.apply_ok(str(saved))  # the same set of files again: the plan applies
    assert "nginx-1.0-1.noarch" in host.default()["reconcile"]["layered_packages"]


def test_remove_edits_only_the_origin_file_and_says_a_fragment_still_asks(host: Host) -> None:
    host.publish([NGINX, NGINX_CORE])
    host.write_origin(["hello", "nginx"])
    write(host.root, host.origin.read_text(), _10_web='[packages]\nrequested = ["nginx"]\n')
    result = host.run("remove", "nginx", "--origin", host.origin, "--reposdir", host.reposdir)
    assert result.code == 0, result.stderr
    assert parse_origin(host.origin, host.origin.read_bytes()).desired.packages.requested == ["hello"]
    assert f"warning: nginx stays requested by {host.root / 'origin.d' / '10-web.toml'}:2" in result.stderr
    assert (host.root / "origin.d" / "10-web.toml").read_text() == '[packages]\nrequested = ["nginx"]\n'
