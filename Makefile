# Two entry points for a fresh Debian 12 machine (as root): `make demo` and `make test`.
# Both install what they need first; that step is quick and quiet once done.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3 python3-venv python3-dev gcc pkg-config libgirepository1.0-dev libcairo2-dev \
	gir1.2-ostree-1.0 ostree libarchive13 rpm createrepo-c bubblewrap busybox-static e2fsprogs mount \
	libcap2-bin selinux-policy-default selinux-utils cpio dnf

.PHONY: demo test lint unit bench deps clean

deps: $(VENV)/.installed

.apt-installed: Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || printf '%s ' $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

$(VENV)/.installed: .apt-installed pyproject.toml
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	@echo "Installing Python dependencies into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
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

unit: deps
	$(VENV)/bin/pytest -q

test: lint unit

clean:
	-$(PY) -c 'import sys; sys.path.insert(0, "examples"); import exampleos, pathlib; exampleos.teardown_sysroot(pathlib.Path("build/demo/sysroot"))'
	rm -rf build .apt-installed

docs/plan.schema.json: reconcile/planner/model.py
	$(PY) -m reconcile.planner.schema > $@
