# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Each creates or refreshes the local virtual environment .venv by itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nerfseg-installed
DEMO_DIR ?= demo_out

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

demo: $(STAMP)
	$(VENV)/bin/nerfseg demo --out $(DEMO_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR)
