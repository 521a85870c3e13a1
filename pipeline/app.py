"""The application: settings, data directory and the backends opened from them, once per process."""
from __future__ import annotations

from functools import cached_property

from pipeline.audit import AuditLog, LocalAuditLog
from pipeline.bus import Bus, open_bus
from pipeline.datadir import DataDir, require_data_dir
from pipeline.errors import FcmonError, Forbidden
from pipeline.index import Index, open_index
from pipeline.review import QueryReviews
from pipeline.settings import Settings
from pipeline.state import State, User


class App:
    def __init__(self, settings: Settings, acting_user: str | None = None):
        self.settings = settings
        self.acting_user_name = acting_user or settings.user

    @cached_property
    def data_dir(self) -> DataDir:
        return require_data_dir(self.settings)

    @cached_property
    def state(self) -> State:
        return State(self.data_dir.state_db)

    @cached_property
    def bus(self) -> Bus:
        return open_bus(self.settings, self.data_dir)

    @cached_property
    def index(self) -> Index:
        return open_index(self.settings, self.data_dir)

    @cached_property
    def audit(self) -> AuditLog:
        local = LocalAuditLog(self.data_dir.audit_db, self.data_dir.audit_head, fsync=self.settings.audit_fsync)
        if self.settings.bus == "kafka":  # every entry is mirrored to fcm.audit (pipeline/audit_mirror.py)
            from pipeline.audit_mirror import MirroredAuditLog
            return MirroredAuditLog(local, lambda: self.bus)
        return local

    @cached_property
    def query_reviews(self) -> QueryReviews:
        return QueryReviews(self.state, self.audit, self.settings)

    def acting_user(self, *roles: str) -> User:
        """The user this command acts as, who must hold one of `roles` (any role when none are given)."""
        if not self.acting_user_name:
            raise FcmonError("no acting user", "pass --as NAME or set FCMON_USER")
        user = self.state.user(self.acting_user_name)
        if roles and user.role not in roles:
            raise Forbidden(f"{user.name} is {user.role}; this needs the role {' or '.join(roles)}")
        return user

    def close(self) -> None:
        for name in ("bus", "index"):
            if name in self.__dict__:
                self.__dict__[name].close()
