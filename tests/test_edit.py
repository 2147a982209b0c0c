"""`reconcile edit`: the origin file made to say what the flags ask, comments kept, the whole result validated;
in place under the file's lock, or to --output (what the Ansible module plans before the file changes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from support import reconcile

ORIGIN = """\
# the fleet's origin
[origin]
baserefspec = "example/base"   # the base

[packages]
requested = [
  "hello",      # greeting
  "frob >= 2",  # frob, new enough
]

[overrides]
remove = ["example-libs"]
"""


def test_the_edits_keep_comments_and_replace_a_spec_by_its_name(tmp_path: Path) -> None:
    origin = tmp_path / "origin.toml"
    origin.write_text(ORIGIN)
    result = reconcile(
        "edit", "--origin", origin, "--present", "frob >= 3", "--present", "tool", "--absent", "hello",
        "--restore-base", "example-libs", "--replace-base", "libfoo >= 1.1",
        "--option", "recommends=false", "--option", "releasever=41", "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    text = origin.read_text()
    assert text == result.json()["after"] and result.json()["before"] == ORIGIN
    assert text.startswith("# the fleet's origin\n") and '"frob >= 3",  # frob, new enough' in text
    assert "hello" not in text and '"tool"' in text and 'remove = []\nreplace = ["libfoo >= 1.1"]' in text
    assert 'recommends = false\nreleasever = "41"' in text, "a bare number is a string: no option is a number"
    again = reconcile("edit", "--origin", origin, "--present", "frob >= 3", "--json")
    assert again.code == 0 and again.json()["changed"] is False and origin.read_text() == text


def test_output_leaves_the_origin_alone_and_a_bad_result_is_written_nowhere(tmp_path: Path) -> None:
    origin, out = tmp_path / "origin.toml", tmp_path / "copy" / "origin.toml"
    origin.write_text(ORIGIN)
    copied = reconcile("edit", "--origin", origin, "--present", "tool", "--output", out, "--json")
    assert copied.code == 0, copied.stderr
    assert origin.read_text() == ORIGIN and '"tool"' in out.read_text()
    assert not (tmp_path / ".origin.toml.lock").exists(), "no write beside the origin (check mode relies on it)"
    bad = reconcile("edit", "--origin", origin, "--present", "bad spec!", "--output", tmp_path / "bad.toml")
    assert bad.code == 65 and f"{origin}:9 packages.requested[2]: 'bad spec!' is not a package spec" in bad.stderr
    assert origin.read_text() == ORIGIN and not (tmp_path / "bad.toml").exists()


def test_expect_sha256_refuses_a_file_that_changed(tmp_path: Path) -> None:
    origin = tmp_path / "origin.toml"
    origin.write_text(ORIGIN)
    seen = hashlib.sha256(ORIGIN.encode()).hexdigest()
    origin.write_text(ORIGIN + "# edited by someone else\n")
    stale = reconcile("edit", "--origin", origin, "--present", "tool", "--expect-sha256", seen)
    assert stale.code == 3 and "changed since it was read" in stale.stderr, stale.stderr
    assert origin.read_text() == ORIGIN + "# edited by someone else\n"


def test_usage_errors_and_a_new_file(tmp_path: Path) -> None:
    origin = tmp_path / "etc" / "origin.toml"
    both = reconcile("edit", "--origin", origin, "--set-base", "example/base", "--present", "a", "--absent", "a")
    assert both.code == 64 and "both present and absent: requested a" in both.stderr
    unknown = reconcile("edit", "--origin", origin, "--set-base", "example/base", "--option", "colour=blue")
    assert unknown.code == 64 and "NAME one of ignore_scripts, localpkg_gpgcheck" in unknown.stderr
    missing = reconcile("edit", "--origin", origin, "--present", "hello")
    assert missing.code == 65 and "does not exist" in missing.stderr
    created = reconcile("edit", "--origin", origin, "--set-base", "example/base", "--present", "hello")
    assert created.code == 0, created.stderr
    assert origin.read_text() == '[origin]\nbaserefspec = "example/base"\n\n[packages]\nrequested = ["hello"]\n'
