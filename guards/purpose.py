"""Rule 1, lawful purpose: no tasking, no storage."""
from __future__ import annotations

from guards.base import GuardContext, Stage, Verdict
from guards.scope import uncovered
from pipeline.models import CollectedItem


class LawfulPurpose(Stage):
    rule = "lawful_purpose"
    clause = "D3.IV.A.11.a; D3.IV.B.2.d; 28CFR23.20(a)"

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        tasking = context.tasking_for(item)
        if tasking is None:
            return self.rejected(f"no tasking {item.tasking_id!r}: nothing is stored without a lawful purpose")
        if tasking.revoked:
            return self.rejected(f"tasking {tasking.id} was revoked")
        if tasking.expires_at <= context.now:
            return self.rejected(f"tasking {tasking.id} expired at {tasking.expires_at.isoformat()}")
        if not tasking.approved_by or not tasking.approved_at:
            return self.rejected(f"tasking {tasking.id} is not approved by a supervisor")
        if tasking.approved_by == tasking.requested_by:
            return self.rejected(f"tasking {tasking.id} was approved by its own requester")
        approver_role = None if context.roles is None else context.roles.get(tasking.approved_by)
        if approver_role != "supervisor":
            return self.rejected(f"tasking {tasking.id} approver {tasking.approved_by} does not hold the supervisor role")
        outside = uncovered(tasking.scope, item)
        if outside:
            return self.rejected(f"out of the scope of tasking {tasking.id}: {outside}")
        return self.passed(f"approved tasking {tasking.id} covers the item")
