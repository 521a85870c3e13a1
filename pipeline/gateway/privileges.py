"""What the gateway answers to Kibana's `POST /_security/user/_has_privileges` for an fcmon user.

Upstream every request is fcmon's one service account, so Elasticsearch would answer for that account, not for the
user who asks: Kibana would grant every user what the service account may do. The gateway answers it itself, as it
answers `_security/_authenticate`, from the user's fcmon role:

- `login:` and `version:...` (Kibana's checks that a user may use Kibana at all): every fcmon user;
- read-only features, for the roles that read through the gateway (searching roles: the records; supervisors and
  administrators: the audit index): the apps in READ_APPS (`app:discover`, ...), their `ui:` capabilities in
  READ_CAPABILITIES (`ui:discover/show`, `ui:navLinks/discover`, `ui:catalogue/...`; with or without Kibana 7's
  version segment), and the read operations of SAVED_OBJECT_READS on the saved-object types in READ_TYPES
  (data views, saved searches, visualizations, Lens, dashboards, advanced settings, queries, tags, short URLs);
- nothing else: no saving or deleting saved objects (fcmon's are imported from config/kibana), no `api:` action,
  no management, alerting, cases, machine learning or spaces features; cluster privileges none;
- index privileges: `read` and `view_index_metadata` on the records alias for searching roles, on the audit alias
  for audit readers; nothing on any other name.
"""
from __future__ import annotations

import re
from typing import Any

from pipeline.review import AUDIT_READERS
from pipeline.search import SEARCH_ROLES
from pipeline.state import User

READ_APPS = frozenset({"kibana", "home", "discover", "dashboards", "visualize", "lens"})
READ_FEATURES = frozenset({"discover", "dashboard", "visualize"})
READ_CAPABILITIES = frozenset({"show"})
READ_TYPES = frozenset({"index-pattern", "search", "visualization", "lens", "dashboard", "config", "config-global",
                        "query", "tag", "url"})
SAVED_OBJECT_READS = frozenset({"get", "bulk_get", "find", "resolve", "bulk_resolve", "open_point_in_time",
                                "close_point_in_time"})
INDEX_READS = frozenset({"read", "view_index_metadata"})
UI_ACTION = re.compile(r"^ui:(?:\d+\.\d+\.\d+:)?([^/]+)/(.+)$")
SAVED_OBJECT_ACTION = re.compile(r"^saved_object:(?:\d+\.\d+\.\d+:)?([^/]+)/(.+)$")


def granted(role: str, action: str) -> bool:
    """Whether an fcmon role has one Kibana application privilege (an action string Kibana asks about)."""
    if action == "login:" or action.startswith("version:"):
        return True
    if role not in SEARCH_ROLES and role not in AUDIT_READERS:
        return False
    if action.startswith("app:"):
        return action[4:] in READ_APPS
    ui = UI_ACTION.match(action)
    if ui:
        feature, capability = ui.groups()
        return ((feature in READ_FEATURES and capability in READ_CAPABILITIES)
                or (feature == "navLinks" and capability in READ_APPS)
                or (feature == "catalogue" and capability in READ_FEATURES))
    saved = SAVED_OBJECT_ACTION.match(action)
    return bool(saved) and saved.group(1) in READ_TYPES and saved.group(2) in SAVED_OBJECT_READS


def index_granted(role: str, name: str, privilege: str, records: Any, audit: Any) -> bool:
    """`records(name)` and `audit(name)` say whether a name is the records' or the audit index's."""
    if privilege not in INDEX_READS:
        return False
    return (records(name) and role in SEARCH_ROLES) or (audit(name) and role in AUDIT_READERS)


def privileges_answer(user: User, asked: Any, records: Any, audit: Any) -> dict[str, Any]:
    """Elasticsearch's answer to _has_privileges for this user; ValueError for a question that is not its shape."""
    if not isinstance(asked, dict) or not all(isinstance(asked.get(k, []), list) for k in ("cluster", "index", "application")):
        raise ValueError("a _has_privileges body is a JSON object of cluster, index and application lists")
    cluster = {str(p): False for p in asked.get("cluster", [])}
    index: dict[str, dict[str, bool]] = {}
    for entry in asked.get("index", []):
        entry = entry if isinstance(entry, dict) else {}
        for name in _strings(entry.get("names")):
            index.setdefault(name, {}).update({p: index_granted(user.role, name, p, records, audit)
                                               for p in _strings(entry.get("privileges"))})
    application: dict[str, dict[str, dict[str, bool]]] = {}
    for entry in asked.get("application", []):
        entry = entry if isinstance(entry, dict) else {}
        app = str(entry.get("application", ""))
        for resource in _strings(entry.get("resources")):
            application.setdefault(app, {}).setdefault(resource, {}).update(
                {p: app.startswith("kibana-") and granted(user.role, p) for p in _strings(entry.get("privileges"))})
    everything = [*cluster.values(), *(v for i in index.values() for v in i.values()),
                  *(v for a in application.values() for r in a.values() for v in r.values())]
    return {"username": user.name, "has_all_requested": all(everything), "cluster": cluster, "index": index,
            "application": application}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
