# Two entry points for a new machine: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SNNX   := $(VENV)/bin/snnx

.PHONY: setup demo test test-fast clean

setup: $(VENV)/.snnx-installed

# Re-installs when pyproject.toml changes. Lava needs its own installer (it declares Python < 3.11).
$(VENV)/.snnx-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,interop,dev]"
	# Sinabs pins nir<=1.0.4 and Rockpool would pull its own stack: both --no-deps, at the versions the
	# interop profiles were verified with; what they import at runtime comes from the "interop" extra.
	$(PY) -m pip install --quiet --no-deps "sinabs==3.1.3" "rockpool==3.1.0"
	$(SNNX) install lava
	touch $@

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo.sh

# The whole suite, slow tests included. pytest exit 5 (no tests collected) is a failure, not a pass.
test: setup
	$(VENV)/bin/ruff check snnx tests examples benchmarks
	@$(PY) -m pytest -n 2 --dist loadgroup -ra; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-fast: setup
	$(PY) -m pytest -n 2 -m "not slow" -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
