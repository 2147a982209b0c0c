"""%transfiletriggerin sees what rpm gives it: every matching path, directories included, and for a trigger
whose package is being installed, the matching paths already installed (the base's too). Each case is run
by reconcile and by `rpm --root REF -i` (scripts on) on a copy of the same base, and the inputs compared."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ComposedBase, Host, needs_sandbox
from support import Dir, File, Package, ostree
from test_reference import reference_root

pytestmark = needs_sandbox
PREFIX = "/usr/share/watched"


def trigger(name: str) -> Package:
    return Package(
        name,
        files=(File(f"/usr/share/{name}/marker", "m\n"),),
        scripts={f"transfiletriggerin -- {PREFIX}": f"sort > /usr/share/{name}/saw"},
    )


BASE_WATCHED = Package(
    "base-watched",
    files=(Dir(PREFIX), Dir(f"{PREFIX}/basedir"), File(f"{PREFIX}/basedir/base-file", "b\n")),
)
NEW_WATCHED = Package(
    "new-watched",
    files=(Dir(f"{PREFIX}/newdir"), File(f"{PREFIX}/newdir/one", "1\n"), File(f"{PREFIX}/two", "2\n")),
)
BASE_TRIGGER = trigger("base-trigger")
NEW_TRIGGER = trigger("new-trigger")

CASES = {
    # a trigger layered with new files: new and base paths, directories too
    "layered-trigger-and-files": ([BASE_WATCHED], [NEW_TRIGGER, NEW_WATCHED], ["new-trigger"]),
    # a trigger layered alone: the base's matching paths
    "layered-trigger-alone": ([BASE_WATCHED], [NEW_TRIGGER], ["new-trigger"]),
}


@pytest.mark.parametrize("case", CASES)
def test_transfiletriggerin_input_equals_rpms(host: Host, tmp_path: Path, case: str) -> None:
    base_extra, layered, triggers = CASES[case]
    base = host.add_base("watch", base_extra)
    host.publish(layered)
    host.write_origin([p.name for p in layered], base=base.ref)
    host.apply_ok()
    tree = host.deployment_path(host.default())
    ref = reference_root(base, [host.rpms.build(p) for p in layered], tmp_path / "ref", scripts=True)
    for name in triggers:
        saw = f"usr/share/{name}/saw"
        rpm_saw = (ref / saw).read_text()
        assert rpm_saw, f"rpm ran {name}'s trigger with no input"
        assert (tree / saw).read_text() == rpm_saw, (name, rpm_saw)


def test_a_base_packages_trigger_is_given_only_what_the_transaction_adds(host: Host, tmp_path: Path) -> None:
    """A base with a trigger in it: a layered commit that holds base-trigger, made the base of the next one."""
    host.publish([BASE_WATCHED, BASE_TRIGGER, NEW_WATCHED])
    host.write_origin(["base-watched", "base-trigger"])
    host.apply_ok()
    repo = host.sysroot / "ostree/repo"
    commit = host.default()["checksum"]
    ostree(f"--repo={repo}", "refs", "--create=example/with-trigger", commit)
    base = ComposedBase(repo, "example/with-trigger", commit)

    host.write_origin(["new-watched"], base=base.ref)
    host.apply_ok()
    tree = host.deployment_path(host.default())
    ref = reference_root(base, [host.rpms.build(NEW_WATCHED)], tmp_path / "ref", scripts=True)
    saw = "usr/share/base-trigger/saw"
    rpm_saw = (ref / saw).read_text()
    assert "/usr/share/watched/newdir\n" in rpm_saw and "basedir" not in rpm_saw, rpm_saw
    assert (tree / saw).read_text() == rpm_saw
