"""`fcmon gateway`: the one audited door between Kibana and Elasticsearch.

Kibana uses the gateway as its Elasticsearch host. Every request is authenticated against fcmon's
users (the Basic credentials Kibana forwards). What happens next depends on what the request is:

- data reads (`_search`, `_msearch`, `_async_search`, `_count`, `_field_caps`, `_mget`, document and
  source GETs, scroll and point-in-time): need the tasking in `X-Fcmon-Tasking`, may only target the
  records alias, are authorized as any search is (pipeline.search), written to the audit log as a
  QueryEvent with interface "kibana" BEFORE they are forwarded, restricted to the tasking (a filter on
  fcm.tasking_id is added to every query, the query itself made a filter beside it, so no hit is scored: scores are
  computed over every tasking's documents; documents of other taskings come back as not found), and
  their hit counts and returned ids are appended after. What would step around that filter is refused
  and logged as a refused query: other read APIs (`_terms_enum`, `_explain`, `_termvectors`, SQL, ...),
  the `q` and `source` URL parameters (they replace the body's query), search-body keys that reach past
  the query (`suggest`, `knn`, `retriever`, `explain`, ...), clauses that fetch a stored document (terms
  lookups, more_like_this, anything naming an `_index`), clauses whose matches depend on scores (`rescore`, a
  `min_score` of function_score or script_score) and `global` aggregations; significant
  terms and text are compared with the tasking's documents (their background filter is the tasking's); so are
  URL parameters not known to shape a read (QUERY_PARAMS: `filter_path` and `format` would change the answer the
  not-found check and the hit count read), terms aggregations that list every term (`min_doc_count: 0`), and bodies
  that are not JSON (Elasticsearch also reads YAML, CBOR and Smile) or nest deeper than MAX_BODY_DEPTH;
- continuations (async search results, scroll, point-in-time searches) and their cleanups: only for the user who
  opened the search context, under its tasking (Handles; upstream every request is one service account);
- reads of the audit index: supervisors and administrators only, naming no other index, logged as `audit.read` first;
- Kibana's housekeeping (cluster info, nodes, license, mappings, index resolution): forwarded
  for any authenticated user, since it carries no record content; naming another index or listing every index is
  for audit readers, except index resolution (Kibana's data views and its has-data check resolve `*`), whose answer
  shows others the records' names alone;
- Kibana's own work in its system indices (`.kibana*`, ...): only for Kibana's account (gateway_kibana_account,
  an fcmon user with the password Kibana logs in with), forwarded with Kibana's own credentials;
- writes and deletes anywhere else: only for fcmon's service account; anything else is refused with 403.
- `_security/_authenticate` and `_security/user/_has_privileges` are answered by the gateway for fcmon's users (they
  have no Elasticsearch account; privileges.py says what each role is granted).

An endpoint is one only where Elasticsearch routes it (after the index, or first): `/fcmon-records/_create/_search`
creates a document whose id is `_search`. A request target that is not a path of printable ASCII is refused (400).
If the audit log cannot be written the answer is 503 and nothing is forwarded. Upstream, the gateway
authenticates as fcmon's Elasticsearch service account, never with the user's credentials, and sends only the
request headers in FORWARDED_HEADERS (never run-as, secondary or client authentication).

A newcomer's map: server.py runs the HTTP side (uvicorn, the order of checks, limits); proxy.py decides each request
(class Gateway) and forwards through upstream.py's pooled connections; policy.py says what a request is and which
endpoints, URL parameters, body keys and clauses pass; body.py parses a body once; confine.py adds the tasking
filter; ledger.py extracts the search terms and hits the audit log holds; answers.py checks and changes what
Elasticsearch answers (other taskings' documents, index resolution, search contexts); privileges.py answers Kibana's
privileges question per fcmon role.
"""
from __future__ import annotations

from pipeline.gateway.body import parse_body
from pipeline.gateway.ledger import request_terms, response_hits
from pipeline.gateway.policy import ANSWERED_HERE, FORWARDED_READS, READ_ENDPOINTS, ROUTE_KINDS, TASKING_HEADER, route
from pipeline.gateway.proxy import Gateway, Refusal
from pipeline.gateway.server import GATEWAY_IDLE_TIMEOUT_S, Server, serve

__all__ = ["ANSWERED_HERE", "FORWARDED_READS", "GATEWAY_IDLE_TIMEOUT_S", "READ_ENDPOINTS", "ROUTE_KINDS", "TASKING_HEADER",
           "Gateway", "Refusal", "Server", "parse_body", "request_terms", "response_hits", "route", "serve"]
