"""The decisions for one authenticated request (class Gateway), and the pooled, timed connections to Elasticsearch
they forward through (Upstream)."""
from __future__ import annotations

import base64
import json
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from pipeline.audit import AuditLog
from pipeline.errors import AuditUnavailable, FcmonError, Forbidden
from pipeline.gateway.answers import Handles, authenticate_answer, continued_handles, foreign_docs, json_or_none, \
    opened_handles, records_resolved
from pipeline.gateway.body import Body, parse_body
from pipeline.gateway.confine import restrict_body
from pipeline.gateway.ledger import MAX_LOGGED_NAME, logged_name, logged_terms, request_terms, response_hits
from pipeline.gateway.policy import AUDIT_LISTINGS, GET_ONLY, HOUSEKEEPING_PARAMS, MSEARCH_HEADER_KEYS, \
    TASKING_HEADER, Route, continuation, decoded, is_scroll, kibana_cluster_call, matches, query_params, resolved, \
    route, segments, unrestricted_read
from pipeline.gateway.privileges import privileges_answer
from pipeline.gateway.upstream import Upstream, UpstreamDown
from pipeline.passwords import BasicAuth, FailedSignIns, SignInRefused, Throttled
from pipeline.review import AUDIT_READERS
from pipeline.search import SEARCH_ROLES, close_query, new_event, open_query, refuse_query
from pipeline.state import State, User

COMPATIBLE_WITH = re.compile(r"vnd\.elasticsearch\+[\w-]+;\s*compatible-with=(\d+)", re.IGNORECASE)
# Only these request headers go upstream: not the user's credentials, nor Elasticsearch's run-as, secondary or client
# authentication headers, nor anything else fcmon does not know.
FORWARDED_HEADERS = frozenset({"content-type", "user-agent", "x-opaque-id", "x-elastic-product-origin",
                               "x-elastic-client-meta", "traceparent", "tracestate", "elastic-api-version"})


class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Gateway:
    def __init__(self, state: State, audit: AuditLog, upstream: str, *, records_alias: str, service_account: str,
                 kibana_account: str = "kibana_system", upstream_auth: tuple[str, str] | None = None,
                 audit_alias: str = "fcmon-audit", timeout: float = 60, max_body_bytes: int = 100 * 1024 * 1024):
        self.state, self.audit = state, audit
        self.max_body_bytes = max_body_bytes  # the server refuses a longer body (413) before reading it
        self.upstream = Upstream(upstream, timeout)
        self.records_alias, self.audit_alias = records_alias, audit_alias
        self.service_account, self.kibana_account = service_account, kibana_account
        self.upstream_auth = "Basic " + base64.b64encode(":".join(upstream_auth).encode()).decode() if upstream_auth else None
        self.handles = Handles()
        self.lock = threading.Lock()  # one SQLite connection each for state and audit, shared by the handler threads
        # every user signs in through Kibana's one address, so failures count per user name, not per client
        self.basic = BasicAuth(state.password_hash, self.lock, FailedSignIns())

    # authentication
    def authenticate(self, header: str | None, client: str) -> User:
        try:
            name = self.basic.user_name(header)
        except SignInRefused as exc:  # audited, as the console's are: a supervisor sees the guessing
            throttled = isinstance(exc, Throttled)
            if not throttled or self.basic.failures is None or self.basic.failures.first_refusal(exc.name):
                shown = logged_name(exc.name)  # once a window when throttled: a throttled try costs nothing to repeat
                self._append("gateway.login.refused", shown or "(none)",
                             {"user": shown, "client": client, "reason": "throttled" if throttled else str(exc)})
            raise Refusal(429 if throttled else 401, str(exc) if len(exc.name) <= MAX_LOGGED_NAME
                          else str(exc).replace(exc.name, logged_name(exc.name))) from exc
        except ValueError as exc:
            raise Refusal(401, f"{exc}" if header else "authentication required: Kibana must forward the user's Basic credentials") from exc
        with self.lock:
            return self.state.user(name)

    # the decision for one request, from an authenticated user
    def handle(self, user: User, method: str, path: str, headers: dict[str, str], body: bytes, client: str
               ) -> tuple[int, dict[str, str], bytes]:
        where = route(method, path, self.records_alias, self.audit_alias)
        service, kibana = user.name == self.service_account, user.name == self.kibana_account
        if kibana and (where.kind in ("system", "housekeeping") or kibana_cluster_call(where, path, body)):
            return self.forward(method, path, headers, body, own_credentials=True)
        if where.kind == "housekeeping" and body.strip() and method in ("GET", "HEAD"):
            raise Refusal(400, f"{method} {decoded(path)} carries no body through fcmon's gateway")
        if where.kind == "housekeeping" and decoded(path) == "/_security/_authenticate":
            return 200, {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}, \
                json.dumps(authenticate_answer(user)).encode()
        if where.kind == "housekeeping" and decoded(path) == "/_security/user/_has_privileges":
            parsed = parse_body(None, body, headers.get("content-type"))  # answered for the user, not the service account
            try:
                if parsed.problem:
                    raise ValueError(parsed.problem)
                answer = privileges_answer(user, parsed.value, lambda n: matches(n, self.records_alias),
                                           lambda n: matches(n, self.audit_alias))
            except ValueError as exc:
                raise Refusal(400, f"the privileges asked cannot be read: {exc}") from exc
            return 200, {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}, json.dumps(answer).encode()
        if where.kind == "read":
            return self._read(user, where, method, path, headers, body, client)
        if method == "DELETE" and where.kind == "housekeeping":  # freeing a search context: only its owner's
            return self._free(user, path, headers, body)
        if where.kind == "housekeeping" and set(dict(query_params(path))) - HOUSEKEEPING_PARAMS:
            raise Refusal(403, f"{decoded(path)}: a URL parameter fcmon's gateway does not forward there "
                               f"(it takes {', '.join(sorted(HOUSEKEEPING_PARAMS))})")
        # housekeeping that names anything but the records index (a pattern can match the audit index's concrete
        # name), or lists every index, is for those who may see the audit index
        names_audit = where.kind == "audit-read" or (where.kind == "housekeeping" and (
            any(not matches(i, self.records_alias) for i in where.indices) or AUDIT_LISTINGS.match(decoded(path)) is not None))
        names = resolved(path) if where.kind == "housekeeping" else None
        if names is not None and user.role not in AUDIT_READERS and not all(matches(n, self.records_alias) for n in names):
            status, out_headers, payload = self.forward("GET", path, headers, body)  # a HEAD too: its status would tell
            return 200, out_headers, records_resolved(status, payload, self.records_alias)
        if names_audit and user.role not in AUDIT_READERS:
            raise Refusal(403, f"{user.name} is {user.role}; the audit index is for supervisors and administrators")
        if where.kind == "audit-read":
            parsed = parse_body(where.endpoint, body, headers.get("content-type"))
            try:
                self._check_targets(where, path, method, parsed, self.audit_alias)
                unrestricted = unrestricted_read(where.endpoint, path, method, parsed)  # lookups reach the records too
                if unrestricted:
                    raise Forbidden(unrestricted)
            except Forbidden as refusal:
                raise Refusal(403, str(refusal)) from refusal
            if parsed.problem:
                raise Refusal(400, f"the request body cannot be used: {parsed.problem}")
            kept, cut = logged_terms(request_terms(where.endpoint, parsed))
            self._append("audit.read", user.name, {"method": method, "path": path, "client": client, "terms": kept,
                                                   **({"terms_cut": cut} if cut else {})})
            return self.forward(method, path, headers, body)
        if where.kind == "system":
            raise Refusal(403, f"{', '.join(where.indices)}: Kibana's system indices are for Kibana's own account only")
        if where.kind == "housekeeping" or service:
            return self.forward(method, path, headers, body)
        if method in ("GET", "HEAD"):
            raise Refusal(403, f"{method} {urlsplit(path).path} is not something Kibana needs through fcmon's gateway")
        raise Refusal(403, f"{method} {urlsplit(path).path}: writes and deletes are for fcmon's service account only")

    def _read(self, user: User, where: Route, method: str, path: str, headers: dict[str, str], raw: bytes,
              client: str) -> tuple[int, dict[str, str], bytes]:
        tasking_id = headers.get(TASKING_HEADER.lower(), "").strip()
        body = parse_body(where.endpoint, raw, headers.get("content-type"))
        terms = request_terms(where.endpoint, body)
        kept, cut = logged_terms(terms)
        # the body whole: the audit log cuts it to MAX_AUDIT_STRING characters and records its length and SHA-256
        filters = {"method": method, "path": path, "endpoint": where.endpoint, "terms": kept,
                   "body": raw.decode(errors="replace"), **({"terms_cut": cut} if cut else {})}
        event = new_event(user, tasking_id, " ".join(terms), filters, "kibana", client)
        try:
            if user.role not in SEARCH_ROLES:
                raise Forbidden(f"{user.name} is {user.role}; searching needs the role analyst, detective or supervisor")
            if not tasking_id:
                raise Forbidden(f"no tasking: Kibana must send the {TASKING_HEADER} header",
                                "set it per space or per user in Kibana's custom headers")
            self._check_targets(where, path, method, body, self.records_alias)
            unrestricted = unrestricted_read(where.endpoint, path, method, body)
            if unrestricted:
                raise Forbidden(unrestricted)
            if continuation(where.endpoint, path, method, body):
                owned = self.handles.refusal(continued_handles(path, body), user.name, tasking_id)
                if owned:
                    raise Forbidden(owned)
        except Forbidden as refusal:
            self._locked(refuse_query, self.audit, event, refusal)
            raise Refusal(403, str(refusal)) from refusal
        try:
            event = self._locked(open_query, self.state, self.audit, user, event)
        except AuditUnavailable:
            raise
        except FcmonError as refusal:
            raise Refusal(403, str(refusal)) from refusal
        try:
            status, out_headers, payload, total, ids = self._forward_read(user, where, method, path, headers, body,
                                                                          tasking_id)
        except BaseException:
            self._locked(close_query, self.audit, event, 0, [])  # whatever went wrong, the logged query is closed
            raise
        self._locked(close_query, self.audit, event, total, ids)
        return status, out_headers, payload

    def _forward_read(self, user: User, where: Route, method: str, path: str, headers: dict[str, str], body: Body,
                      tasking_id: str) -> tuple[int, dict[str, str], bytes, int, list[str]]:
        try:
            if body.problem:  # whatever the endpoint: scroll bodies are forwarded as they are, so they must be JSON too
                raise ValueError(body.problem)
            restricted = body.raw if is_scroll(path) else restrict_body(where.endpoint or "", body, tasking_id)
        except ValueError as exc:
            raise Refusal(400, f"the request body cannot be used: {exc}") from exc
        # a HEAD would answer 200 for another tasking's document: ask for it, and answer as the GET would
        forwarded = "GET" if method == "HEAD" and where.endpoint in GET_ONLY else method
        status, out_headers, payload = self.forward(forwarded, path, headers, restricted)
        parsed = json_or_none(payload)
        if status < 300 and parsed is None:  # YAML, CBOR, ...: an answer the checks below cannot read is not passed on
            raise Refusal(502, "Elasticsearch answered in a form fcmon's gateway cannot check; nothing was passed on")
        if where.endpoint in ("_doc", "_source", "_mget") and status < 300:
            parsed = foreign_docs(where.endpoint, parsed, tasking_id)
            if parsed is None or (where.endpoint == "_doc" and parsed.get("found") is False):
                status = 404
            payload = json.dumps(parsed if parsed is not None else {"found": False}).encode()
        if status >= 300:
            return status, out_headers, payload, 0, []
        self.handles.remember(opened_handles(where.endpoint, parsed), user.name, tasking_id)
        total, ids = response_hits(where.endpoint, parsed)
        if where.endpoint == "_source":  # the answer is the document's source alone: its id is the path's
            total, ids = 1, [segments(path)[-1]]
        return status, out_headers, payload, total, ids

    def _check_targets(self, where: Route, path: str, method: str, body: Body, alias: str) -> None:
        """Every index the request names, in its path or its body, is `alias` (the records', or for an audit read the
        audit index's)."""
        which = "audit" if alias == self.audit_alias else "records"
        targets = list(where.indices)
        if where.endpoint == "_msearch":
            if body.problem:
                raise Forbidden(f"the _msearch body cannot be used: {body.problem}")
            for header in (body.value or [])[0::2]:
                unknown = sorted(set(header) - MSEARCH_HEADER_KEYS)
                if unknown:
                    raise Forbidden(f"the _msearch header key {unknown[0]!r} is not forwarded: it may name another index, "
                                    "or fcmon does not know it")
                named = [i for i in str(header.get("index", "")).split(",") if i]
                if "index" in header and not named:  # "" or ",": Elasticsearch reads every index, not the path's
                    raise Forbidden("an _msearch header's index names no index (Elasticsearch would search every index)")
                if not named and not where.indices:
                    raise Forbidden(f"every _msearch header must name the {which} index ({alias})")
                targets += named
        if where.endpoint == "_mget":  # each document may name its own index
            docs = body.value.get("docs") if isinstance(body.value, dict) else None
            if isinstance(docs, list):
                targets += [str(d["_index"]) for d in docs if isinstance(d, dict) and d.get("_index")]
        if not targets:
            if continuation(where.endpoint, path, method, body):
                return  # scroll, async-search results, point-in-time searches: continuations of a gated search
            raise Forbidden(f"name the {which} index ({alias}) in the request", "searches across every index are not forwarded")
        outside = [i for i in targets if not matches(i, alias)]
        if outside:
            raise Forbidden(f"{', '.join(outside)}: only {alias} may be searched through the gateway")

    def _free(self, user: User, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        body = parse_body(None, raw, headers.get("content-type"))
        if body.problem or query_params(path):  # a body Elasticsearch reads otherwise, or `source=` in its place
            raise Refusal(400, "freeing a search context takes its ids in the path or a JSON body, and no URL parameters")
        handles = continued_handles(path, body)
        refusal = self.handles.refusal(handles, user.name)
        if refusal:
            raise Refusal(403, refusal)
        answer = self.forward("DELETE", path, headers, raw)
        if answer[0] < 300:
            self.handles.forget(handles)
        return answer

    def _append(self, kind: str, actor: str, payload: dict[str, Any]) -> None:
        self._locked(self.audit.append, kind, actor, payload)

    def _locked(self, fn: Any, *args: Any) -> Any:
        with self.lock:
            return fn(*args)

    # forwarding
    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes, *, own_credentials: bool = False
                ) -> tuple[int, dict[str, str], bytes]:
        out = {k: v for k, v in headers.items() if k.lower() in FORWARDED_HEADERS}
        # never the client's Accept: the answers are checked and counted as JSON. Elasticsearch 8 wants a versioned
        # Accept when the Content-Type is versioned (Kibana's client sends compatible-with=8), and answers JSON to both.
        version = COMPATIBLE_WITH.search(headers.get("content-type", ""))
        out["Accept"] = f"application/vnd.elasticsearch+json; compatible-with={version.group(1)}" if version else "application/json"
        if own_credentials and headers.get("authorization"):
            out["Authorization"] = headers["authorization"]
        elif self.upstream_auth:
            out["Authorization"] = self.upstream_auth
        data = body if body or method in ("POST", "PUT") else None
        if data is not None and not any(k.lower() == "content-type" for k in out):
            # a body the gateway added (the tasking filter of a bodiless count or field caps): without a Content-Type
            # Elasticsearch refuses it with 406
            out["Content-Type"] = "application/json"
        try:
            return self.upstream.send(method, path, out, data)
        except UpstreamDown as exc:
            raise Refusal(502, str(exc)) from exc
