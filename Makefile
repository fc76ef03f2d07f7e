# ONNX and Beyond: one entry point. `make course` opens the course, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8888
# the stamp changes when the pins or the package metadata change, and only then is pip run again
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
# run after the suite by `make test` (SITE_TEST= skips it, e.g. with a PYTEST_ARGS that runs few lessons)
SITE_TEST ?= tests/test_site.py
# tools installed in the venv (nbgrader calls alembic, jupyter finds its kernels) come first
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup artefacts course test lint format notebooks release check-release environment.yml benchmarks mutation site pytriton-env clean help

help:
	@echo "make course   set up (first time: a few minutes) and open JupyterLab on the student notebooks"
	@echo "make test     set up and run the whole test suite (lint, unit tests, every lesson graded)"
	@echo "make notebooks / make release   rebuild source/ from lessons/, release/ from source/"
	@echo "make site     build the course website into build/site/ (every lesson executed)"

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): | $(PY)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name onnx-and-beyond --display-name "Python 3 (ONNX and Beyond)" >/dev/null
	$(VENV)/bin/jupyter labextension enable @jupyter/nbgrader @jupyter-widgets/jupyterlab-manager >/dev/null
	$(VENV)/bin/jupyter server extension list 2>&1 | grep -q "validate_assignment.*enabled" \
		|| { echo "nbgrader's server extensions are not enabled"; exit 1; }
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

# the costly artefacts the lessons load (transformers exported to ONNX, ...), built once into the
# course cache; the tests build their own from nothing into a private cache
artefacts: setup
	$(PY) -m course.artefacts

course: artefacts
	@echo "Opening the course at start-here.ipynb; the student notebooks are in release/ (Ctrl-C stops the server)."
	$(VENV)/bin/jupyter lab --ServerApp.ip=$(HOST) --ServerApp.port=$(PORT) \
		--ServerApp.root_dir=$(CURDIR) --ServerApp.default_url=/lab/tree/start-here.ipynb \
		--ServerApp.open_browser=False

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m tools.notebooks check
	$(PY) -m pytest -n 2 --dist loadgroup --cov=course --cov-report=term --cov-fail-under=90 \
		--ignore=tests/test_site.py $(PYTEST_ARGS)
# the website last: it reuses the lessons the run above executed (build/executed/)
	$(if $(SITE_TEST),$(PY) -m pytest -p no:cacheprovider $(SITE_TEST))

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

notebooks: setup
	$(PY) -m tools.notebooks build

release: notebooks
	@for d in source/*/; do a=$$(basename $$d); $(VENV)/bin/nbgrader generate_assignment $$a --force --log-level=WARN || exit 1; done

environment.yml: requirements.txt tools/environment.py
	$(PY) -m tools.environment > environment.yml

# the course website: build/site/, from build/executed/ where the tests left a matching run
site: artefacts
	$(PY) -m tools.site build

# the serving benchmark adds a real Triton (PyTriton) when `make pytriton-env` has built its side environment
benchmarks: setup
	$(PY) -m benchmarks
	$(PY) -m benchmarks.serve_bench $(if $(wildcard build/pytriton-venv/bin/python),--pytriton build/pytriton-venv/bin/python)

# every exercise's tests against automatic mutants of its solution; writes tests/mutation/report.md
MUTATION_ARGS ?=
mutation: setup
	$(PY) tests/mutants.py $(MUTATION_ARGS)

# the Triton side of `python -m benchmarks.serve_bench --pytriton build/pytriton-venv/bin/python`
PYTRITON_PYTHON ?= python3.12
pytriton-env: build/pytriton-venv/.installed
build/pytriton-venv/.installed: benchmarks/pytriton-requirements.txt
	$(PYTRITON_PYTHON) -m venv build/pytriton-venv
	build/pytriton-venv/bin/pip install --quiet -r benchmarks/pytriton-requirements.txt
	touch $@

clean:
	rm -rf build .pytest_cache .ruff_cache gradebook.db submitted autograded feedback grading exchange
