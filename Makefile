# `make demo` sets everything up and runs the demo; `make lint` runs the security lint and the dependency audit,
# `make test` the test suite (.ci/run calls both, lint first).
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test lint setup schemas browser stack-deps

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test,lint]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(VENV)/bin/fcmon demo

test: $(STAMP) browser stack-deps
	$(VENV)/bin/pytest

# ruff's flake8-bandit rules (pyproject.toml [tool.ruff.lint]), then pip-audit over .venv (scripts/audit_deps.py,
# allow-list config/security/pip-audit-allow.txt); no vulnerability service reachable fails it (docs/security.md).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python scripts/audit_deps.py $(AUDIT_FLAGS)

# The web console's tests drive Debian's Chromium (Playwright never downloads a browser here).
browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; }; } || \
	  echo "make: no Chromium at $(CHROMIUM): the browser tests will be skipped (install the chromium package)"

# Apache Kafka and Elasticsearch run in the tests (pipeline/stack fetches them from Maven Central): Java 17 and Maven.
stack-deps:
	@{ command -v java >/dev/null && command -v mvn >/dev/null; } || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null 2>&1; }; }; } || \
	  echo "make: no Java 17 or Maven: the Kafka and Elasticsearch tests will be skipped (install openjdk-17-jdk-headless and maven)"

schemas: $(STAMP)
	$(VENV)/bin/python -m pipeline.schemas
