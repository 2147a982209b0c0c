"""The pure parts of the repository layer, without a sysroot: dnf's variable syntax, the .repo dialect
(lines, continuation, duplicates), option types, and key parsing held against GnuPG's own listing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from signing import SigningKey

from reconcile.errors import ReconcileError
from reconcile.openpgp import KeyFormatError, read_keys
from reconcile.repos.config import RepoConfigError, load_repo_configs, read_main
from reconcile.repos.ini import read_ini
from reconcile.repos.variables import Variables, basearch

VARS = Variables({"releasever": "41", "basearch": "x86_64", "arch": "x86_64", "empty": ""})


@pytest.mark.parametrize(
    ("text", "expected", "unknown"),
    [
        ("$releasever/$basearch", "41/x86_64", []),
        ("${releasever}x", "41x", []),
        ("$archive", "$archive", ["archive"]),  # the longest name, not $arch + "ive"
        ("${nothere:-fallback}", "fallback", []),
        ("${empty:-fallback}", "fallback", []),
        ("${releasever:+set}", "set", []),
        ("${nothere:+set}", "", []),
        ("${nothere}", "${nothere}", ["nothere"]),
        ("cost $ 5", "cost $ 5", []),
        ("${unclosed", "${unclosed", []),
    ],
)
def test_variable_substitution(text: str, expected: str, unknown: list[str]) -> None:
    assert VARS.substitute(text) == (expected, unknown)


def test_basearch_and_vars_files(tmp_path: Path) -> None:
    assert basearch("i686") == "i386" and basearch("armv7hl") == "armhfp" and basearch("x86_64") == "x86_64"
    (tmp_path / "dnf" / "vars").mkdir(parents=True)
    (tmp_path / "dnf" / "vars" / "releasever").write_text("40.1\nignored\n")
    (tmp_path / "yum" / "vars").mkdir(parents=True)
    (tmp_path / "yum" / "vars" / "contentdir").write_text("pub\n")
    values = Variables.for_host("x86_64", "39", tmp_path).values
    assert values["releasever"] == "40.1", "a vars file overrides the detected value, as in dnf"
    assert (values["releasever_major"], values["releasever_minor"], values["contentdir"]) == ("40", "1", "pub")
    pinned = Variables.for_host("x86_64", "39", tmp_path, override="8.2").values
    assert (pinned["releasever"], pinned["releasever_major"]) == ("8.2", "8"), "the origin's releasever wins"


def test_ini_dialect(tmp_path: Path) -> None:
    path = tmp_path / "a.repo"
    path.write_text("# comment\n[one]\nbaseurl = http://a/\n  http://b/\n; other comment\nName: One\n\n[two]\nx=1\n")
    one, two = read_ini(path)
    assert one.options["baseurl"].text == "http://a/\nhttp://b/" and one.options["baseurl"].line == 3
    assert one.options["name"].text == "One" and two.where("x") == f"{path}:9"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[a]\nx=1\nx=2\n", ":3: [a] sets x twice (first on line 2)"),
        ("[a]\n[a]\n", ":2: the section [a] appears twice"),
        ("x=1\n", ":1: a line outside any [section]"),
        ("[a]\njust words\n", ":2: not a `key=value` line"),
    ],
)
def test_ini_errors_name_the_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.repo"
    path.write_text(text)
    with pytest.raises(ReconcileError, match=re.escape(needle)):
        read_ini(path)


def _configs(tmp_path: Path, text: str, main: str = ""):  # type: ignore[no-untyped-def]
    reposdir = tmp_path / "repos.d"
    reposdir.mkdir(exist_ok=True)
    (reposdir / "t.repo").write_text(text)
    conf = tmp_path / "dnf.conf"
    conf.write_text(main)
    return load_repo_configs([reposdir], VARS, read_main(conf, VARS))


def test_option_types_and_main_defaults(tmp_path: Path) -> None:
    configs = _configs(
        tmp_path,
        "[r]\nbaseurl=http://a/$releasever, http://b/\nmetadata_expire=6h\nminrate=2k\ntimeout=5\n"
        "priority=5\nexclude=foo* bar\nproxy=_none_\ngpgcheck=Off\n"
        "[off]\nenabled=no\nbaseurl=http://c/\n",
        "[main]\nretries=3\nmax_parallel_downloads=7\nskip_if_unavailable=True\nexcludepkgs=global\n",
    )
    [cfg] = configs.repos
    assert cfg.baseurls == ("http://a/41", "http://b/")
    assert (cfg.metadata_expire, cfg.minrate, cfg.timeout, cfg.priority) == (6 * 3600, 2048, 5, 5)
    assert cfg.excludepkgs == ("foo*", "bar", "global") and cfg.proxy == "" and cfg.gpgcheck is False
    assert (cfg.retries, cfg.max_parallel_downloads, cfg.skip_if_unavailable) == (3, 7, True)


def test_every_problem_of_the_repo_files_at_once(tmp_path: Path) -> None:
    with pytest.raises(RepoConfigError) as caught:
        _configs(tmp_path, "[r]\nbaseurl=http://a/\npriority=high\nmetadata_expire=soon\ntype=yast2\n[empty]\nname=x\n")
    problems = "\n".join(caught.value.problems)
    for needle in (
        ":3: [r] priority='high' is not an integer",
        ":4: [r] metadata_expire='soon'",
        ":5: [r] has type=yast2",
        ":6: [empty] has no baseurl, mirrorlist or metalink",
    ):
        assert needle in problems, problems


def test_keys_match_gnupg(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch"]
    subprocess.run(
        [*gpg, "--passphrase", "", "--quick-gen-key", "Sub Keyed <sub@example.test>"], check=True, capture_output=True
    )
    listing = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True).stdout
    armored = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True).stdout
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)
    [key] = read_keys(armored)
    fingerprints = re.findall(r"^fpr:+([0-9A-F]{40}):", listing, re.MULTILINE)
    assert key.fingerprint == fingerprints[0] and len(fingerprints) == 2
    assert key.key_ids == tuple(f[-16:].lower() for f in fingerprints), "the primary key, then its subkey"
    assert key.user_ids == ("Sub Keyed <sub@example.test>",)
    both = read_keys(keys["trusted"].public.read_bytes() + keys["other"].public.read_bytes())
    assert [k.fingerprint for k in both] == [keys["trusted"].fingerprint, keys["other"].fingerprint]
    assert read_keys(key.binary)[0].fingerprint == key.fingerprint
    with pytest.raises(KeyFormatError):
        read_keys(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n")
    for truncated in (b"\xc6\xc0", b"\xc6", key.binary[:40], b"\x99\x01"):
        with pytest.raises(KeyFormatError):
            read_keys(truncated)


@pytest.mark.parametrize(
    ("main", "repo", "expected"),
    [
        ("[main]\ngpgcheck=0\n", "pkg_gpgcheck=1\n", True),  # the repo's own setting wins over [main]'s
        ("[main]\npkg_gpgcheck=1\n", "", True),  # dnf5's spelling in [main] is a default too
        ("[main]\ngpgcheck=1\n", "gpgcheck=0\n", False),
        ("", "", False),
    ],
)
def test_gpgcheck_and_its_alias(tmp_path: Path, main: str, repo: str, expected: bool) -> None:
    gpgkey = "gpgkey=file:///k.asc\n"
    [cfg] = _configs(tmp_path, f"[r]\nbaseurl=http://a/\n{gpgkey}{repo}", main).repos
    assert cfg.gpgcheck is expected
