"""Fixtures every test module may use without importing them, and a clean environment for fcmon's settings."""
import os

from tests.stack import es_node  # noqa: F401  (the session's Elasticsearch)

# A shell that ran `eval "$(scripts/stack up)"` exports FCMON_BUS, FCMON_INDEX, ...: those would change the settings of
# every test. Tests choose their backends themselves; the stack itself is found through FCMON_STACK_DIR (tests/stack.py).
KEPT = {"FCMON_STACK_DIR", "FCMON_STACK_CACHE", "FCMON_REQUIRE_STACK", "FCMON_REQUIRE_BROWSER"}
for name in [n for n in os.environ if n.startswith("FCMON_") and n not in KEPT]:
    del os.environ[name]
