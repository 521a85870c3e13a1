"""The console's and the API's standing queries, alerts and collection status: each method calls the domain code
(pipeline.watches: the search gate, audit entries and ledger of `fcmon watch`; crawlers.cursors: what
`fcmon monitor status` shows) under the console's lock, as console.py does for the other pages."""
from __future__ import annotations

import threading
from datetime import datetime, time, timedelta, timezone
from typing import Any

from pipeline.app import App
from pipeline.charts import Chart, bars
from pipeline.errors import FcmonError, Forbidden
from pipeline.models import Interface, utcnow
from pipeline.search import SEARCH_ROLES
from pipeline.state import User
from pipeline.watches import LIST_ROLES, Watch, Watches
from pipeline.web.forms import Refusal

COLLECTION_CHART_DAYS = 30
MONITOR_READERS = ("supervisor", "admin")  # the collection page: supervisors, and administrators read-only
ALERTS_SHOWN = 100  # the inbox shows the newest alerts, as `fcmon watch alerts` does by default


class WatchDesk:
    """Watches, alerts and the monitor's status for the console's users (one Watches over the app's state.db)."""

    def __init__(self, app: App, lock: threading.Lock):
        self.app, self.lock = app, lock
        self._watches: Watches | None = None

    def _domain(self) -> Watches:  # with the lock held
        if self._watches is None:
            self._watches = Watches(self.app.state, self.app.audit, self.app.settings)
        return self._watches

    @property
    def webhook_allow(self) -> list[str]:
        return list(self.app.settings.watch_webhook_allow)

    def listed(self, user: User) -> list[Watch]:
        """The user's watches; a supervisor's or administrator's listing has everyone's (as `fcmon watch list`)."""
        _needs(user, LIST_ROLES, "listing watches")
        with self.lock:
            return self._domain().listed(user)

    def add(self, user: User, tasking_id: str, query: str, webhook: str, interface: Interface, client: str) -> Watch:
        """Watches.add: the search gate (role, team, active tasking), the QueryEvent and watch.add entries first."""
        if not tasking_id.strip():
            raise Refusal(400, "no tasking: every watch serves a tasking", "choose the tasking this watch is for")
        with self.lock:
            return self._domain().add(user, tasking_id.strip(), query, webhook.strip() or None, client, interface)

    def remove(self, user: User, watch_id: str, reason: str) -> Watch:
        """Watches.remove: its owner or a supervisor, with a reason (watch.end)."""
        _needs(user, SEARCH_ROLES, "ending a watch")
        if not reason.strip():
            raise Refusal(400, "the reason is empty", "say why the watch ends; the reason is audited")
        with self.lock:
            return self._domain().remove(user, watch_id.strip(), reason)

    def alerts(self, user: User, limit: int = ALERTS_SHOWN) -> list[dict[str, Any]]:
        """The user's alerts, newest first, each marked `new` until read (as `fcmon watch alerts`, not audited: each
        delivery was audited as the records returned to that user when it was made)."""
        _needs(user, SEARCH_ROLES, "alerts")
        with self.lock:
            found = self._domain().alerts(user, limit)
            unread = self._domain().unread(user, [a["id"] for a in found])
        return [a | {"new": a["id"] in unread} for a in found]

    def mark_read(self, user: User, alert_ids: list[str]) -> int:
        _needs(user, SEARCH_ROLES, "alerts")
        with self.lock:
            return self._domain().mark_read(user, alert_ids)

    def unread_count(self, user: User | None) -> int | None:
        """The header's count of new alerts; None for users who cannot have watches (or while state is unreadable)."""
        if user is None or user.role not in SEARCH_ROLES:
            return None
        try:
            with self.lock:
                return self._domain().unread_count(user)
        except FcmonError:
            return None

    def sources(self, user: User) -> list[dict[str, Any]]:
        """Each monitored source's status and freshness, as `fcmon monitor status --json` (not audited: no crawled
        content, like the quarantine list)."""
        from crawlers.cursors import source_statuses

        _needs(user, MONITOR_READERS, "the collection status")
        with self.lock:
            return source_statuses(self.app.data_dir.monitor_db, self.app.index)


    def collected(self, user: User, days: int = COLLECTION_CHART_DAYS) -> Chart:
        """Posts first seen per source per day over the last `days` days, as a chart with its numbers."""
        from crawlers.cursors import collected_per_day

        _needs(user, MONITOR_READERS, "the collection status")
        end = datetime.combine(utcnow().date() + timedelta(days=1), time(), timezone.utc)
        with self.lock:
            categories, counts = collected_per_day(self.app.data_dir.monitor_db, end - timedelta(days=days), end)
        return bars("collected", "Posts collected per source", f"posts first seen per source per day (UTC), the last "
                    f"{days} days, before the guards decide on them", "day", categories, counts or {"no source": [0] * len(categories)})


def header(desk: WatchDesk, user: User | None) -> dict[str, Any]:
    """What every page's header shows about watches: the new-alert count and who sees the collection page."""
    return {"alerts_new": desk.unread_count(user), "monitor_readers": MONITOR_READERS}


def _needs(user: User, roles: tuple[str, ...], what: str) -> None:
    if user.role not in roles:
        raise Forbidden(f"{user.name} is {user.role}; {what} needs the role {' or '.join(roles)}")
