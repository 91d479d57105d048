# The two set-up commands of README.md are `make lab` and `make test`; both
# create the local virtual environment .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# pytest workers for the suite; notebooks of one file stay on one worker.
JOBS ?= 2

.PHONY: lab test test-fast lint sync book slides bench grade clean venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## Open the chapters in JupyterLab (http://127.0.0.1:8888).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/chapters $(ROOT_FLAG)

## Lint the whole tree (package, tests, scripts, benchmarks, notebooks) with ruff; config in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

## Run the whole test suite: lint, unit tests, notebook pairing, every notebook executed.
test: lint
	$(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-cell-timeout=600 $(PYTEST_ARGS)

## The same with step counts shrunk (SCORELAB_FAST=1), for a quick local loop.
test-fast: lint
	SCORELAB_FAST=1 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-cell-timeout=600 $(PYTEST_ARGS)

## Re-pair every notebook after editing its .md (or .ipynb) source.
sync: $(STAMP)
	$(VENV)/bin/jupytext --sync chapters/*.md exercises/*.md solutions/*.md 2>/dev/null || $(VENV)/bin/jupytext --sync chapters/*.md

## Build the static book: every chapter, exercise and solution executed with the full
## settings, warnings as errors, offline (book/_build/html/index.html). BOOK_EXECUTE=cache
## reuses the outputs of unchanged notebooks; SCORELAB_FAST=1 shrinks step counts.
book: $(STAMP)
	$(PY) scripts/book.py book

## Export every chapter as a reveal.js deck that opens offline (book/_slides/*.slides.html),
## reusing the notebooks `make book` executed when they are still fresh.
slides: $(STAMP)
	$(PY) scripts/book.py slides

## Grade a class in a sandbox: every notebook under SUBMISSIONS run on a throw-away copy, its answers
## checked by a fresh process (with hidden checks); grades.csv, one HTML report per notebook and a
## class summary in <OUT>-reports/. make grade SUBMISSIONS=path [OUT=grades.csv] [GRADE_JOBS=2]
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || (echo "usage: make grade SUBMISSIONS=<folder or notebooks> [OUT=grades.csv]"; exit 2)
	$(PY) -m scorelab.grade $(SUBMISSIONS) --out $(or $(OUT),grades.csv) --jobs $(or $(GRADE_JOBS),2)

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf book/_build book/_slides artifacts .pytest_cache
