"""Fixtures every test module may use without importing them."""
from tests.stack import es_node  # noqa: F401  (the session's Elasticsearch)
