# grokexp: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch is installed first so that the open range in pyproject
# does not pull a CUDA build; override TORCH_SPEC to choose another build.
TORCH_SPEC ?= torch==2.13.0
SPEC ?= specs/quickstart.toml
STAMP := $(VENV)/.installed

.PHONY: install run test docs lint typecheck bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,postgres,browser,docs]"
	touch $(STAMP)

run: install
	$(VENV)/bin/grokexp run $(SPEC)

# The browser and PostgreSQL tests need their services set up first. Under CI (CI set, as
# .ci/run is run) a set-up that fails fails `make test`; elsewhere it is reported and the tests
# that need it skip, each printing why (pytest -rs), unless GROKEXP_REQUIRE_SERVICES=1.
SERVICE_FAILED = { test -z "$$CI" && echo "make test: $(1) set-up failed (see above): its tests will skip"; }

# The docs are built first, in strict mode: a broken link, page or included file fails the tests.
test: install
	$(MAKE) docs
	bash tests/services/browser.sh $(PY) || $(call SERVICE_FAILED,browser)
	bash tests/services/postgres.sh install || $(call SERVICE_FAILED,PostgreSQL)
	$(PY) -m pytest

# The documentation site (mkdocs.yml, docs/) into site/.
docs: install
	$(VENV)/bin/mkdocs build --strict --site-dir site

lint: install
	$(VENV)/bin/ruff check grokexp tests benchmarks

typecheck: install
	$(VENV)/bin/mypy grokexp

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
