# `make demo` sets everything up and runs the demo; `make test` runs the test suite (what .ci/run calls).
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test setup schemas

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(VENV)/bin/fcmon demo

test: $(STAMP)
	$(VENV)/bin/pytest

schemas: $(STAMP)
	$(VENV)/bin/python -m pipeline.schemas
