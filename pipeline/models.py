"""The interchange format: what flows between crawler, bus, guards, index and audit log.

Every model here has a JSON Schema exported into config/schemas/ (see pipeline.schemas);
a test fails when the two drift apart.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from w3lib.url import canonicalize_url

SCHEMA_VERSION = 1

TaskingKind = Literal["criminal_predicate", "information_gathering", "public_safety"]
SourceKind = Literal[
    "web_page", "feed_entry", "forum_post", "mastodon_post", "bluesky_post",
    "reddit_post", "telegram_post", "youtube_video",
]
PUBLIC_SOURCE_KINDS: frozenset[str] = frozenset(SourceKind.__args__)  # type: ignore[attr-defined]
Role = Literal["analyst", "detective", "supervisor", "admin"]
Outcome = Literal["indexed", "quarantined", "rejected"]
Interface = Literal["cli", "web", "api", "kibana"]

# The 4x4 source/content evaluation scale of the national criminal intelligence standards
# (28CFR23.20(g)): reliability of the source crossed with validity of the content.
SourceReliability = Literal["reliable", "usually_reliable", "unreliable", "unknown"]
ContentValidity = Literal["confirmed", "probably_true", "doubtful", "cannot_be_judged"]
Sensitivity = Literal["public", "sensitive_but_unclassified", "law_enforcement_sensitive"]
ReviewStatus = Literal["unreviewed", "reviewed"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TaskingScope(Strict):
    domains: list[str] = Field(default_factory=list, description="Host names the tasking covers (a host matches itself and its subdomains).")
    keywords: list[str] = Field(default_factory=list, description="Words or hashtags an item must mention.")
    accounts: list[str] = Field(default_factory=list, description="Author handles the tasking covers.")

    @field_validator("domains", "keywords", "accounts")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [v.strip().lower() for v in values if v.strip()]


class Tasking(Strict):
    """A lawful purpose: a criminal predicate, an information-gathering assignment or a public-safety need."""
    model_config = ConfigDict(frozen=True)  # a change is a model_copy stored again: State shares parsed taskings
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    kind: TaskingKind
    title: str = ""
    case_number: str | None = None
    predicate: str | None = Field(None, description="The reasonable-suspicion statement (28CFR23.20(c)).")
    criminal_activity: str | None = None
    requested_by: str
    team: list[str] = Field(default_factory=list, description="Users besides the requester who work this tasking.")
    approved_by: str | None = None
    approved_at: AwareDatetime | None = None
    expires_at: AwareDatetime
    scope: TaskingScope = Field(default_factory=TaskingScope)
    revoked: bool = False
    revoked_by: str | None = None
    revoked_at: AwareDatetime | None = None
    created_at: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _criminal_predicate_is_complete(self) -> Tasking:
        if self.kind == "criminal_predicate":
            missing = [f for f in ("case_number", "predicate", "criminal_activity") if not getattr(self, f)]
            if missing:
                raise ValueError(f"a criminal_predicate tasking must state {', '.join(missing)} (28CFR23.20(c))")
        return self

    def status(self, now: datetime) -> str:
        if self.revoked:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if not self.approved_by:
            return "pending"
        return "active"


class RequestRecord(Strict):
    method: str
    headers: dict[str, str] = Field(default_factory=dict, description="Headers exactly as sent on the wire.")
    url: str = Field("", description="The URL this request was sent to (for an API post: the API call, not the post's permalink).")


class ResponseRecord(Strict):
    status: int
    headers: dict[str, str] = Field(default_factory=dict)
    body_sha256: str | None = None
    url: str = Field("", description="The URL that answered, after redirects.")


class CollectedItem(Strict):
    """One piece of public content with the provenance that proves how it was obtained."""
    schema_version: int = SCHEMA_VERSION
    id: str = ""
    tasking_id: str
    source_kind: str
    source_id: str = ""
    spider: str = ""
    url: str
    final_url: str = ""
    fetched_at: AwareDatetime
    request: RequestRecord
    response: ResponseRecord
    robots_allowed: bool
    login_wall_detected: bool
    login_wall_reason: str | None = None
    title: str = ""
    text: str = ""
    author: str | None = None
    published_at: AwareDatetime | None = None
    content_sha256: str = ""
    handle: str | None = Field(None, description="The author's account handle where the source has one (e.g. @name@instance).")
    engagement: dict[str, int] = Field(default_factory=dict, description="Public counts where the source shows them: replies, reposts, likes, views.")

    @model_validator(mode="after")
    def _derive_ids(self) -> CollectedItem:
        if not self.final_url:
            self.final_url = self.url
        if not self.content_sha256:
            self.content_sha256 = content_hash(self.title, self.text)
        if not self.id:
            self.id = record_id(self.tasking_id, self.final_url, self.content_sha256)
        return self


def content_hash(title: str, text: str) -> str:
    return sha256_hex(f"{title}\n{text}")


def record_id(tasking_id: str, url: str, content_sha256: str) -> str:
    """Deterministic: the same content at the same URL under the same tasking is one record, however often replayed."""
    return sha256_hex(f"{tasking_id}\n{canonicalize_url(url)}\n{content_sha256}")[:32]


class Reason(Strict):
    rule: str
    clause: str
    message: str
    signals: list[str] = Field(default_factory=list, description="What fired: words, patterns or fields.")


class Labels(Strict):
    """28CFR23.20(g)-(h) labels carried by every stored record."""
    sensitivity: Sensitivity
    source_reliability: SourceReliability
    content_validity: ContentValidity
    submitting_agency: str
    control_official: str
    criminal_intelligence: bool
    review_status: ReviewStatus = "unreviewed"
    review_by: date
    purge_by: date


class RecordedPredicate(Strict):
    tasking_id: str
    kind: TaskingKind
    case_number: str | None = None
    predicate: str | None = None
    criminal_activity: str | None = None
    approved_by: str
    approved_at: AwareDatetime


class GuardDecision(Strict):
    schema_version: int = SCHEMA_VERSION
    item_id: str
    tasking_id: str | None = None
    decision: Outcome
    reasons: list[Reason] = Field(default_factory=list)
    labels: Labels | None = None
    predicate: RecordedPredicate | None = None
    content_sha256: str | None = None
    decided_at: AwareDatetime = Field(default_factory=utcnow)
    pii_masked: dict[str, int] = Field(default_factory=dict, description="PII masked in the stored text, by kind (email, phone, address, account, author) (D3.IV.A.11.a).")
    non_subject_identifiers: list[str] = Field(default_factory=list, description="Accounts mentioned who are not the subject: labelled, never counted toward a predicate.")


class IndexedRecord(Strict):
    """What the index holds: public content, its provenance summary, its labels and the predicate it was stored under."""
    schema_version: int = SCHEMA_VERSION
    id: str
    tasking_id: str
    source_kind: str
    source_id: str = ""
    url: str
    final_url: str
    title: str = ""
    text: str = ""
    author: str | None = None
    published_at: AwareDatetime | None = None
    fetched_at: AwareDatetime
    content_sha256: str
    labels: Labels
    predicate: RecordedPredicate
    indexed_at: AwareDatetime = Field(default_factory=utcnow)
    pii_masked: dict[str, int] = Field(default_factory=dict, description="PII masked in the stored text, by kind (D3.IV.A.11.a, D1.IV.B.6).")
    non_subject_identifiers: list[str] = Field(default_factory=list, description="Accounts mentioned who are not the subject (never counted toward a predicate).")
    released_by: str | None = Field(None, description="The supervisor who released this record from quarantine, if it was held.")
    release_reason: str | None = Field(None, description="Why the supervisor kept the quarantined item.")
    reviewed_by: str | None = Field(None, description="The analyst who reviewed and submitted this record: its 28 CFR Part 23 submitter.")
    reviewed_at: AwareDatetime | None = Field(None, description="When the analyst's review was recorded.")
    review_note: str | None = Field(None, description="The analyst's reason for the review's evaluation.")

    @property
    def timestamp(self) -> datetime:
        return self.published_at or self.fetched_at


class QueryEvent(Strict):
    """Written to the audit log before a query runs (fail closed: no log, no query)."""
    id: str
    at: AwareDatetime
    user: str
    role: Role
    tasking_id: str
    case_number: str | None = None
    query: str
    filters: dict[str, Any] = Field(default_factory=dict)
    client: str = "local"
    interface: Interface


class QueryResult(Strict):
    """Written to the audit log after a query ran: what came back."""
    query_id: str
    at: AwareDatetime
    hits_total: int
    returned_ids: list[str]


class DisseminationEvent(Strict):
    id: str
    at: AwareDatetime
    packet_id: str
    tasking_id: str
    disseminated_by: str
    approved_by: str
    recipient: str
    recipient_agency: str
    need_to_know: str
    right_to_know: str
    record_ids: list[str]


class UserRole(Strict):
    """One line of `fcmon guard-check --users U.jsonl`: who holds which role (proves a tasking's approver)."""
    name: str
    role: Role


INTERCHANGE_MODELS: dict[str, type[BaseModel]] = {
    "tasking": Tasking,
    "collected-item": CollectedItem,
    "guard-decision": GuardDecision,
    "indexed-record": IndexedRecord,
    "query-event": QueryEvent,
    "query-result": QueryResult,
    "dissemination-event": DisseminationEvent,
    "user-role": UserRole,
}
