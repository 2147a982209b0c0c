"""The Ansible collection (ansible/ansible_collections/reconcile/layering): real ansible-playbook runs, over a local
connection, against a test sysroot. The module runs `reconcile` as a program, as it would on a managed host."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ComposedBase, Host, hosted
from support import RECONCILE, RpmFactory, exampleos

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / "ansible"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
ORIGIN_MODULE = "reconcile.layering.reconcile_origin"
# The default callback at -v prints each task's result as one line of JSON after `=>`.
RESULT_LINE = re.compile(r"^(ok|changed|fatal|skipping): \[localhost\](?:: FAILED!)? => (\{.*\})$", re.M)
RECAP = re.compile(r"^localhost\s+:\s+(.*)$", re.M)


@pytest.fixture(scope="module")
def shared_host(
    tmp_path_factory: pytest.TempPathFactory, base: ComposedBase, rpms: RpmFactory, example_rpms: list[Path]
) -> Iterator[Host]:
    """One sysroot for the module (ansible-playbook takes a second or two to start; each test says what it
    needs of the origin file and uses packages no other test deploys)."""
    with hosted(tmp_path_factory.mktemp("ansible-host"), base, rpms, example_rpms) as h:
        h.publish([])
        yield h


@dataclass
class Playbook:
    code: int
    stdout: str
    stderr: str

    def results(self) -> list[dict]:
        """Each task's result, with `status` the word the line starts with (ok, changed, fatal)."""
        return [{**json.loads(m[2]), "status": m[1]} for m in RESULT_LINE.finditer(self.stdout)]

    def recap(self) -> dict[str, int]:
        (line,) = RECAP.findall(self.stdout)
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


def playbook(host: Host, tmp_path: Path, tasks: list[dict], *flags: str) -> Playbook:
    """ansible-playbook from the venv; everything it writes stays in tmp_path (JSON is YAML)."""
    path = tmp_path / "playbook.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], indent=1))
    env = {
        **exampleos.sysroot_env(),
        "ANSIBLE_CONFIG": str(tmp_path / "no-ansible.cfg"),  # not one from the working directory or home
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote-tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_CALLBACK_FORMAT_PRETTY": "0",
    }
    argv = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-v", path, *flags]
    argv += ["-e", f"ansible_python_interpreter={sys.executable}"]
    proc = subprocess.run(
        list(map(str, argv)), capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False
    )
    return Playbook(proc.returncode, proc.stdout, proc.stderr)


def origin_task(host: Host, **params: object) -> dict:
    where = {"sysroot": host.sysroot, "origin_path": host.origin, "reposdir": host.reposdir, "reconcile": RECONCILE}
    return {"name": "layer", ORIGIN_MODULE: {**{k: str(v) for k, v in where.items()}, **params}}


def start_origin(host: Host) -> bytes:
    """The origin every test starts from: the deployed base, no requests, a comment to keep."""
    host.origin.write_text(
        f'# kept by the module\n[origin]\nbaserefspec = "{exampleos.BASE_REF}"\n\n[packages]\nrequested = []\n'
    )
    return host.origin.read_bytes()


def test_the_same_playbook_twice_is_changed_then_ok_with_one_deployment(shared_host: Host, tmp_path: Path) -> None:
    host = shared_host
    start_origin(host)
    deployments = host.state()["deployments"]
    tasks = [origin_task(host, packages=["hello"])]
    first = playbook(host, tmp_path, tasks)
    assert first.code == 0, first.stdout + first.stderr
    assert first.recap()["changed"] == 1
    (result,) = first.results()
    assert result["changed"] is True and result["reboot_required"] is True and result["deploy_method"] == "written"
    assert result["deployment"] == f"{host.default()['checksum']}.{host.default()['serial']}"
    assert "hello-1.2-1.noarch" in host.default()["reconcile"]["layered_packages"]
    assert host.origin.read_text().startswith("# kept by the module\n") and '"hello"' in host.origin.read_text()
    after_first = host.state()
    assert len(after_first["deployments"]) == len(deployments) + 1

    second = playbook(host, tmp_path, tasks)
    assert second.code == 0, second.stdout + second.stderr
    assert second.recap()["changed"] == 0 and second.recap()["ok"] == 1
    (again,) = second.results()
    assert again["changed"] is False and again["reboot_required"] is False and "deployment" not in again
    assert host.state() == after_first, "no second deployment, the origin file as the first run left it"


def test_check_mode_changes_nothing_reports_changed_and_diff_shows_the_package(
    shared_host: Host, tmp_path: Path
) -> None:
    host = shared_host
    start_origin(host)
    before = host.state()
    run = playbook(host, tmp_path, [origin_task(host, packages=["frob"])], "--check", "--diff")
    assert run.code == 0, run.stdout + run.stderr
    assert host.state() == before, "check mode wrote nothing: origin file, deployments, refs"
    assert run.recap()["changed"] == 1
    (result,) = run.results()
    assert result["changed"] is True and result["plan"]["has_changes"] is True and result["reboot_required"] is True
    assert re.search(r'^\+requested = \["frob"\]$', run.stdout, re.M), run.stdout  # the origin file's diff
    assert "+ frob-3.0-2.x86_64" in run.stdout and "libfrob-2.4-1.x86_64" in run.stdout  # the plan's packages


def test_the_origin_d_fragments_stay_part_of_the_plan(shared_host: Host, tmp_path: Path) -> None:
    """The module plans an edited copy: the real file's origin.d fragments must come with it, or the plan would
    drop what another role's fragment asks for."""
    host = shared_host
    start_origin(host)
    fragment = host.origin.parent / "origin.d" / "50-team.toml"
    fragment.parent.mkdir()
    try:
        fragment.write_text('[packages]\nrequested = ["hello"]\n')
        before = host.state()
        run = playbook(host, tmp_path, [origin_task(host, packages=["frob"])], "--check")
        assert run.code == 0, run.stdout + run.stderr
        (result,) = run.results()
        planned = {p["name"] for p in result["plan"]["target"]["packages"]}
        assert {"hello", "frob"} <= planned, planned
        assert host.state() == before
    finally:
        fragment.unlink()
        fragment.parent.rmdir()


def test_a_bad_request_fails_the_task_with_reconciles_message(shared_host: Host, tmp_path: Path) -> None:
    host = shared_host
    start_origin(host)
    before = host.state()
    tasks = [
        {**origin_task(host, packages=["no-such-package"]), "ignore_errors": True},
        {**origin_task(host, packages=["bad spec!"]), "ignore_errors": True},
    ]
    run = playbook(host, tmp_path, tasks)
    assert run.recap()["ignored"] == 2, run.stdout
    unknown, bad_spec = run.results()
    assert unknown["status"] == "fatal" and "no-such-package" in unknown["msg"] and unknown["rc"] == 1, unknown["msg"]
    assert (
        bad_spec["status"] == "fatal"
        and "is not a package spec" in bad_spec["msg"]
        and "origin.toml:" in bad_spec["msg"]
    ), bad_spec["msg"]
    assert bad_spec["rc"] == 65
    assert host.state() == before, "a bad request leaves the origin file and the deployments as they were"


def test_a_held_sysroot_lock_is_a_clear_failure(shared_host: Host, tmp_path: Path) -> None:
    host = shared_host
    start = start_origin(host)
    with host.sysroot_locked():
        before = host.state()
        run = playbook(host, tmp_path, [origin_task(host, packages=["frob"], lock_timeout=1)])
    assert run.code != 0 and run.recap()["failed"] == 1
    (result,) = run.results()
    assert result["rc"] == 4 and "the lock was not free within lock_timeout" in result["msg"], result["msg"]
    assert "did not release it within 1 s" in result["msg"], "reconcile's own message is in it"
    assert host.state() == before and host.origin.read_bytes() == start, "the origin does not claim frob"


def test_the_facts_module_returns_the_status(shared_host: Host, tmp_path: Path) -> None:
    host = shared_host
    task = {"reconcile.layering.reconcile_facts": {"sysroot": str(host.sysroot), "reconcile": RECONCILE}}
    run = playbook(host, tmp_path, [task], "--check")
    assert run.code == 0, run.stdout + run.stderr
    (result,) = run.results()
    assert result["changed"] is False
    assert result["ansible_facts"]["reconcile"] == host.status()


@pytest.mark.parametrize("module", ["reconcile_origin", "reconcile_facts"])
def test_ansible_doc_reads_the_documentation(module: str, tmp_path: Path) -> None:
    """DOCUMENTATION (with the shared doc fragment), EXAMPLES and RETURN parse as Ansible reads them."""
    env = {**exampleos.sysroot_env(), "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_HOME": str(tmp_path)}
    argv = [str(ANSIBLE_PLAYBOOK.parent / "ansible-doc"), "--json", f"reconcile.layering.{module}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout).values()
    assert {"sysroot", "reconcile"} <= set(doc["doc"]["options"]), "the shared options come from the fragment"
    assert doc["examples"] and (doc["return"] or module == "reconcile_facts")
