# Two entry points for a fresh Debian 12 machine (as root): `make demo` and `make test`.
# Both install what they need first; that step is quick and quiet once done.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3 python3-venv python3-dev gcc pkg-config libgirepository1.0-dev libcairo2-dev \
	gir1.2-ostree-1.0 ostree libarchive13 rpm createrepo-c bubblewrap busybox-static e2fsprogs mount \
	libcap2-bin selinux-policy-default selinux-utils policycoreutils checkpolicy semodule-utils cpio dnf \
	dnf-plugins-core python3-librepo python3-rpm python3-solv gpg gpg-agent gpgconf openssl zstd xz-utils bzip2 \
	systemd man-db
# The distribution's own bindings, as a Fedora host has them: librepo, rpm and libsolv (which reads every
# metadata compression; the PyPI solv wheel reads only gzip). Linked into the venv, nothing else of dist-packages.
DISTRO_BINDINGS := librepo rpm solv.py _solv.cpython-*.so

.PHONY: reliability demo test lint unit pure bench deps clean

deps: $(VENV)/.installed

.apt-installed: Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || printf '%s ' $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

$(VENV)/.installed: .apt-installed pyproject.toml Makefile
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	@echo "Installing Python dependencies into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@# compat: a plain path in a .pth; the default editable finder costs every command ~15 ms at start (P1).
	@# A step of its own: --config-settings reaches every package pip builds, and pygobject's backend refuses it.
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e . --config-settings editable_mode=compat
	@$(PY) -m pip uninstall -q -y solv 2>/dev/null || true  # an older venv's wheel would shadow the distribution's
	@mkdir -p $(VENV)/distro-bindings
	@cd /usr/lib/python3/dist-packages && for b in $(DISTRO_BINDINGS); do ln -sfn "$$PWD/$$b" $(CURDIR)/$(VENV)/distro-bindings/; done
	@echo "$(CURDIR)/$(VENV)/distro-bindings" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/distro-bindings.pth"
	@$(PY) -c 'import librepo, rpm, solv' || { echo "the distribution bindings are not importable"; exit 1; }
	@touch $@

demo: deps
	@$(VENV)/bin/python examples/demo.py

bench: deps
	@$(PY) -m benchmarks

lint: deps
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy benchmarks --ignore-missing-imports

# Every tier runs here (as root): a test whose probe fails (root, libostree, bubblewrap) fails instead of skipping.
# Two workers, a test file each (module-scoped hosts stay whole): most tests wait on subprocesses, not the CPU.
unit: deps
	RECONCILE_TEST_TIERS=all $(VENV)/bin/pytest -q -n 2 --dist loadfile

# The pure tier: no root, no sysroot, no sandbox (any user; about 20 s).
pure: deps
	$(VENV)/bin/pytest -q -m "not root and not ostree and not sandbox"

test: lint unit

# The long runs behind docs/reliability.md (kills at every step, concurrency at scale, 2,000+ fuzzed origins);
# `make test` runs a smoke of each. The figures are appended to build/reliability.txt.
reliability: deps
	mkdir -p build
	RECONCILE_RELIABILITY=full RECONCILE_RELIABILITY_REPORT=$(CURDIR)/build/reliability.txt RECONCILE_TEST_TIERS=all \
		$(VENV)/bin/pytest -q tests/test_reliability.py tests/test_faults.py tests/test_origin_fuzz.py tests/test_concurrency.py \
		tests/test_signals.py tests/test_hostile.py tests/test_repos.py tests/test_sandbox_walls.py

clean:
	-$(PY) -c 'import sys; sys.path.insert(0, "examples"); import exampleos, pathlib; exampleos.teardown_sysroot(pathlib.Path("build/demo/sysroot"))'
	rm -rf build .apt-installed

docs/plan.schema.json docs/status.schema.json docs/apply.schema.json: reconcile/planner/model.py reconcile/status.py reconcile/api.py
	$(PY) -m reconcile.schema plan > docs/plan.schema.json
	$(PY) -m reconcile.schema status > docs/status.schema.json
	$(PY) -m reconcile.schema apply > docs/apply.schema.json
