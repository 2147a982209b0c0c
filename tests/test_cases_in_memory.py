"""The resolution cases of tests/cases/, run again in memory: the real planner and libsolv, over the in-memory
system and source of tests/inmemory.py. The same case.toml and expected.json as test_cases.py (the real
end-to-end twin: rpmbuild, createrepo_c, libostree, apply), without root, in milliseconds a case."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from inmemory import MemoryPackage, MemorySource, MemorySystem, from_spec
from support import Package, exampleos
from test_cases import CASES, _key, _load_expected, _package, project

from reconcile.errors import ReconcileError
from reconcile.origin import load_origin
from reconcile.planner.plan import plan_with
from reconcile.planner.resolution import Ports
from reconcile.planner.solver import Solver

ARCH = os.uname().machine
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "case.toml").exists())


@pytest.fixture(scope="module")
def examples() -> list[MemoryPackage]:
    """The example distribution's specs, parsed (the real tier builds them)."""
    return [p for spec in sorted(exampleos.SPECS.glob("*.spec")) for p in from_spec(spec.read_text())]


def _memory(pkg: Package) -> MemoryPackage:
    target = None if pkg.arch in ("noarch", "native") else pkg.arch
    return from_spec(pkg.spec(), target)[0]


def _name(p: MemoryPackage) -> str:
    return p.nevra.rsplit("-", 2)[0]


def _bases(case: dict[str, Any], packages: dict[str, MemoryPackage], examples: list[MemoryPackage]) -> dict:
    """The example base, and each `[base.ALIAS]`: its packages plus `add`, same names replacing."""
    bases = {exampleos.BASE_REF: [p for p in examples if _name(p) in exampleos.BASE_PACKAGES]}
    for alias, spec in case.get("base", {}).items():
        extra = [packages[k] for k in spec["add"]]
        names = set(exampleos.BASE_PACKAGES) | {_name(p) for p in extra}
        kept = [p for p in examples if _name(p) in names and _name(p) not in {_name(e) for e in extra}]
        bases[f"example/{alias}"] = kept + extra
    return bases


def _error_text(e: ReconcileError) -> str:
    return " ".join([e.message, *getattr(e, "problems", []), e.hint or ""])


@pytest.mark.parametrize("name", NAMES)
def test_case_in_memory(name: str, examples: list[MemoryPackage], tmp_path: Path) -> None:
    case = tomllib.loads((CASES / name / "case.toml").read_text())
    expected = _load_expected(CASES / name / "expected.json")
    specs = {_key(p): _package(p) for p in case.get("package", [])}
    packages = {key: _memory(pkg) for key, pkg in specs.items()}
    system = MemorySystem(ARCH, _bases(case, packages, examples), exampleos.BASE_REF)
    system.known.update({p.nevra: p for p in [*examples, *packages.values()]})
    steps = case["step"]
    for i, step in enumerate(steps):
        published = [packages[k] for k in step.get("publish", packages)] + examples
        items = ", ".join(f'"{r}"' for r in step.get("requested", []))
        base = f"example/{step['base']}" if "base" in step else exampleos.BASE_REF
        text = f'[origin]\nbaserefspec = "{base}"\n\n[packages]\nrequested = [{items}]\n'
        text += (f"\n[options]\n{step['options']}\n" if "options" in step else "") + step.get("origin_extra", "")
        origin = tmp_path / "origin.toml"
        origin.write_text(text)
        ports = Ports(system, lambda *_args, published=published: MemorySource(published), Solver(ARCH))
        update = "--update" in step.get("args", [])
        last = i == len(steps) - 1
        if last and "error" in expected:
            with pytest.raises(ReconcileError) as refused:
                plan_with(ports, load_origin(origin), None, update=update)
            for needle in expected["error"]:
                assert needle in _error_text(refused.value), (needle, _error_text(refused.value))
            return
        plan = plan_with(ports, load_origin(origin), None, update=update)
        if not last:
            assert plan.applyable, (name, i, plan.errors)
            if step.get("command", "apply") == "apply":
                system.deploy(plan)
            continue
        assert project(plan.model_dump(mode="json")) == expected
